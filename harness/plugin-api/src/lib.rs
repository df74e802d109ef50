//! The boundary between kidbench (the host) and a knowledge-distillation method plugin (a cdylib).
//!
//! Only ABI-stable types cross: `#[repr(C)]` structs deriving [`StableAbi`], `RString`, `RVec`,
//! `RResult`, `extern "C"` function pointers, and libtorch tensors as raw handles (tch's
//! `*mut C_tensor`, i.e. a heap `at::Tensor*`).
//!
//! # Tensor ownership
//! - [`TensorRef`]: **borrowed**. Valid only during the call it is passed to; the receiver never
//!   frees it. To use it, the receiver makes its own handle with [`TensorRef::to_tensor`] (a
//!   shallow clone: same storage, same autograd graph) and frees that one (by dropping it).
//! - [`TensorOwned`]: **transferred**. The sender gives up its handle; the receiver frees it
//!   exactly once, by [`TensorOwned::into_tensor`] (then dropping the `Tensor`) or by dropping the
//!   `TensorOwned`. Return values (a loss, logits, sampled batches) are always owned.
//!
//! Both sides free handles with `at_free` of their own copy of tch's C wrapper, which is sound
//! because both link the same libtorch: the host refuses plugins whose [`LIBTORCH_VERSION`] or
//! [`TCH_VERSION`] differ from its own.
//!
//! # Errors and panics
//! Fallible calls return `RResult<_, RString>`. Plugin entry points catch panics and return them
//! as `RErr`; so do the host's callbacks.

use std::ffi::c_void;

use abi_stable::library::RootModule;
use abi_stable::package_version_strings;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{ROption, RResult, RString, RVec, Tuple2};
use abi_stable::StableAbi;

/// Bumped on any change of meaning that the layout check cannot see.
///
/// - 1: first version.
/// - 2: `DataRequest::student_logits` (the host runs the student forward on the batch only when
///   asked) and `HostCtx::student_logits` is optional.
/// - 3: `HostCtx::student_logits` / `teacher_logits` are exact only on the batch's loss rows
///   (`loss_mask != 0`) and 0 elsewhere (the host skips the LM head on prompt and padding).
/// - 4: `HostCtx::forward` takes `rows`: when given, the logits are exact only where
///   `rows != 0` and 0 elsewhere, as for the batch logits.
/// - 5: `DataSource::FixedTeacherSamples` (teacher completions generated once, before training,
///   outside the timed steps).
pub const ABI_VERSION: u32 = 5;
/// The tch version plugins and host are built with (pinned exactly in the workspace).
pub const TCH_VERSION: &str = "0.24.0";
/// `$LIBTORCH/build-version` at build time, e.g. `2.11.0+cpu`.
pub const LIBTORCH_VERSION: &str = env!("KIDBENCH_LIBTORCH_VERSION");

/// Borrowed tensor handle (see the crate docs for ownership).
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct TensorRef(pub *mut c_void);

/// Owned tensor handle (see the crate docs for ownership).
#[repr(transparent)]
#[derive(StableAbi, Debug)]
pub struct TensorOwned(pub *mut c_void);

/// How a parameter is typed; `min..=max` bound `Float`/`Int`.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Float,
    Int,
    Bool,
    /// One of `ParamSpec::choices`.
    Choice,
    /// Free text (e.g. a file path).
    Text,
}

#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct ParamSpec {
    pub name: RString,
    pub kind: ParamKind,
    pub default: RString,
    pub min: f64,
    pub max: f64,
    pub choices: RVec<RString>,
    pub help: RString,
}

/// What a plugin says about itself before anything else is called.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PluginInfo {
    pub name: RString,
    pub version: RString,
    pub description: RString,
    pub abi_version: u32,
    pub tch_version: RString,
    pub libtorch_version: RString,
    pub params: RVec<ParamSpec>,
}

#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Student,
    Teacher,
}

/// Sampling settings for the host's KV-cache generator (`top_k = 0`, `top_p = 1`: off).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct SampleSpec {
    pub temperature: f64,
    pub top_k: u32,
    pub top_p: f64,
    pub max_new_tokens: u32,
}

#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// The gold (prompt, target) batch.
    GroundTruth,
    /// The batch's prompts completed by the current student (no grad) with `DataRequest::sampling`.
    StudentSamples,
    /// The batch's prompts completed by the teacher, afresh at every request.
    TeacherSamples,
    /// The batch's prompts completed by the teacher once per distinct prompt, before training
    /// (Wen et al.'s fixed teacher data): the first such request makes the host complete every
    /// prompt the run will visit, with `DataRequest::sampling`, and later requests reuse those
    /// completions. The generation is timed apart (precompute), not in the training latency.
    FixedTeacherSamples,
}

/// The data a method needs for one micro-batch; the host prepares it before calling `loss`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct DataRequest {
    pub source: DataSource,
    pub sampling: SampleSpec,
    /// Whether `HostCtx::student_logits` must be filled (student forward on the batch, with
    /// grad). A method that only runs its own forwards (through `HostCtx::forward`) says false
    /// and the host skips that forward.
    pub student_logits: bool,
    /// Whether `HostCtx::teacher_logits` must be filled (teacher forward on the batch, no grad).
    pub teacher_logits: bool,
}

/// Progress and the seeded random source: `seed` is a pure function of (run seed, step, micro).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    pub step: u64,
    pub total_steps: u64,
    pub micro_batch: u32,
    pub seed: u64,
}

#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub pad: i64,
    pub eos: i64,
    /// The mask token (kid); `-1` when the vocabulary has none.
    pub mask: i64,
}

/// A padded batch: `input_ids`/`attention_mask` `[B, T]` i64; `labels` `[B, T]` i64, the token
/// position `t` predicts (`input_ids[t+1]`) on target positions else -100; `loss_mask` `[B, T]`
/// f32, 1 exactly where `labels != -100` (prompt and padding out, EOS in); `norm_tokens`: target
/// tokens of the whole global batch (divide losses by it).
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct BatchOf<H> {
    pub input_ids: H,
    pub attention_mask: H,
    pub labels: H,
    pub loss_mask: H,
    pub norm_tokens: f64,
}
pub type BatchRef = BatchOf<TensorRef>;
pub type BatchOwned = BatchOf<TensorOwned>;

/// What the host hands `loss`: the batch of the [`DataRequest`], its logits, and callbacks.
#[repr(C)]
#[derive(StableAbi)]
pub struct HostCtx {
    pub batch: BatchRef,
    /// Student logits on `batch`, with grad, when requested (`DataRequest::student_logits`).
    /// Exact on the loss rows (`batch.loss_mask != 0`), 0 on every other row: a method that
    /// needs prompt positions runs its own forward (`forward` without `rows`).
    pub student_logits: ROption<TensorRef>,
    /// Teacher logits on `batch` (no grad), when requested; loss rows only, as above.
    pub teacher_logits: ROption<TensorRef>,
    pub step: StepInfo,
    pub tokens: SpecialTokens,
    /// Opaque host state; pass it back to the callbacks.
    pub host: *mut c_void,
    /// Logits `[B, T, V]` of `model` on any tokens; `grad` only applies to the student. With
    /// `rows` (`[B, T]`, like `loss_mask`) the logits are exact where `rows != 0` and 0
    /// elsewhere: the host then skips the LM head on the other rows.
    pub forward: extern "C" fn(
        host: *mut c_void,
        model: Model,
        input_ids: TensorRef,
        attention_mask: TensorRef,
        rows: ROption<TensorRef>,
        grad: bool,
    ) -> RResult<TensorOwned, RString>,
    /// Completes this micro-batch's prompts with `model` (a batch laid out like [`BatchOf`]).
    pub sample: extern "C" fn(
        host: *mut c_void,
        model: Model,
        spec: SampleSpec,
    ) -> RResult<BatchOwned, RString>,
}

/// A created method: plugin-owned state and its functions. The host calls `drop` exactly once.
#[repr(C)]
#[derive(StableAbi)]
pub struct MethodObj {
    pub state: *mut c_void,
    pub data_request:
        extern "C" fn(state: *mut c_void, step: StepInfo) -> RResult<DataRequest, RString>,
    /// The scalar loss of this micro-batch (already divided by `norm_tokens`), with grad.
    pub loss: extern "C" fn(state: *mut c_void, ctx: &mut HostCtx) -> RResult<TensorOwned, RString>,
    pub drop: extern "C" fn(state: *mut c_void),
}

/// The plugin's root module (exported with `abi_stable::export_root_module`).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    pub info: extern "C" fn() -> RResult<PluginInfo, RString>,
    /// Creates the method from `key=value` parameters (validated against `info().params`).
    #[sabi(last_prefix_field)]
    pub create:
        extern "C" fn(params: RVec<Tuple2<RString, RString>>) -> RResult<MethodObj, RString>,
}

impl RootModule for PluginModRef {
    abi_stable::declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "kidbench_plugin";
    const NAME: &'static str = "kidbench_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

impl TensorRef {
    /// Borrows `t` for the duration of one call.
    pub fn new(t: &tch::Tensor) -> Self {
        TensorRef(t.as_ptr() as *mut c_void)
    }

    /// A new handle the caller owns (shallow clone: shares storage and autograd).
    ///
    /// # Safety
    /// The handle must be live (the call that received it has not returned) and not null.
    pub unsafe fn to_tensor(self) -> tch::Tensor {
        let borrowed =
            std::mem::ManuallyDrop::new(unsafe { tch::Tensor::from_ptr(self.0 as *mut _) });
        borrowed.shallow_clone()
    }
}

impl TensorOwned {
    /// Gives up `t`'s handle to the receiver.
    pub fn new(t: tch::Tensor) -> Self {
        let mut t = std::mem::ManuallyDrop::new(t);
        TensorOwned(t.as_mut_ptr() as *mut c_void)
    }

    /// Takes ownership of the handle.
    ///
    /// # Safety
    /// The handle must come from [`TensorOwned::new`] (possibly on the other side) and be unused.
    pub unsafe fn into_tensor(self) -> tch::Tensor {
        let this = std::mem::ManuallyDrop::new(self);
        unsafe { tch::Tensor::from_ptr(this.0 as *mut _) }
    }
}

impl Drop for TensorOwned {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: an owned handle is freed exactly once, here or by `into_tensor`.
            drop(unsafe { tch::Tensor::from_ptr(self.0 as *mut _) });
        }
    }
}
