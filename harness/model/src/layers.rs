//! Layers shared by the model file and the adapters that modify it (a leaf module, so that
//! `qwen2` and `lora` do not import each other).

use tch::Tensor;

use crate::error::Result;

/// The adapter of one linear layer.
#[derive(Debug)]
pub(crate) struct LoraLayer {
    pub(crate) a: Tensor,
    pub(crate) b: Tensor,
    pub(crate) scaling: f64,
}

impl LoraLayer {
    /// `scaling * B (A x)`, computed in the adapter's kind and returned in `x`'s kind.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let xk = x.f_to_kind(self.a.kind())?;
        let y = xk
            .f_linear::<Tensor>(&self.a, None)?
            .f_linear::<Tensor>(&self.b, None)?;
        Ok(y.f_mul_scalar(self.scaling)?.f_to_kind(x.kind())?)
    }
}
