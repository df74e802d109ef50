//! Training methods: the part of a step that turns logits into a loss.
//!
//! The host (the [`crate::trainer`]) owns models, optimizer, sampling and timing; a method only
//! sees the batch, the student logits and, when it asks for them, the teacher logits. Losses are
//! *sums* over target tokens divided by `norm_tokens`, the target-token count of the whole global
//! batch, so gradient accumulation gives the same gradient however the batch is split.

use tch::{Kind, Reduction, Tensor};

use crate::data::{Batch, IGNORE};
use crate::TrainError;

/// What a method gets to compute its loss from.
pub struct LossInput<'a> {
    pub batch: &'a Batch,
    /// `[B, T, V]` student logits.
    pub student_logits: &'a Tensor,
    /// `[B, T, V]` teacher logits, when [`Method::needs_teacher_logits`].
    pub teacher_logits: Option<&'a Tensor>,
    /// Target tokens of the whole global batch (all micro-batches together).
    pub norm_tokens: f64,
}

pub trait Method: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether the host must run the teacher forward on each batch.
    fn needs_teacher_logits(&self) -> bool {
        false
    }
    /// The (scalar) loss of this micro-batch, already divided by `norm_tokens`.
    fn loss(&self, input: &LossInput<'_>) -> anyhow::Result<Tensor>;
}

/// Supervised fine-tuning: token cross-entropy on the gold SQL.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sft;

impl Method for Sft {
    fn name(&self) -> &'static str {
        "sft"
    }

    fn loss(&self, input: &LossInput<'_>) -> anyhow::Result<Tensor> {
        token_ce_sum(input.student_logits, &input.batch.labels).map(|s| s / input.norm_tokens)
    }
}

/// Summed token cross-entropy over the positions whose label is not [`IGNORE`].
pub fn token_ce_sum(logits: &Tensor, labels: &Tensor) -> anyhow::Result<Tensor> {
    let size = logits.size();
    let (b, t, v) = match size.as_slice() {
        [b, t, v] => (*b, *t, *v),
        _ => anyhow::bail!("logits must be [batch, time, vocab], got {size:?}"),
    };
    if labels.size() != [b, t] {
        anyhow::bail!("labels {:?} do not match logits {size:?}", labels.size());
    }
    Ok(logits
        .to_kind(Kind::Float)
        .view([b * t, v])
        .cross_entropy_loss::<Tensor>(&labels.view([b * t]), None, Reduction::Sum, IGNORE, 0.0))
}

/// Method names `kidbench run --methods` accepts.
pub const METHODS: &[&str] = &["sft"];

/// A method by name.
pub fn by_name(name: &str) -> Result<Box<dyn Method>, TrainError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "sft" => Ok(Box::new(Sft)),
        _ => Err(TrainError::UnknownMethod {
            name: name.to_string(),
            available: METHODS.iter().map(|s| s.to_string()).collect(),
        }),
    }
}
