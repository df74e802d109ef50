//! kidbench-model: a Qwen2-architecture causal LM (Qwen1.5/2/2.5, LLaMA) on libtorch via tch.
//!
//! - [`Qwen2ForCausalLM`]: forward for training (logits fp32, left padding supported) and
//!   incremental forward with a caller-owned [`KvCache`].
//! - [`generate`]: batched KV-cached greedy / sampling generation.
//! - [`lora`]: LoRA adapters in PEFT's format.
//! - [`checkpoint`]: HF checkpoint folders (single or sharded safetensors), atomic saves.
//! - [`device`]: CUDA runtime loading, device choice and the parameter [`Dtype`].
//! - [`subset`]: a smaller checkpoint made of a subset of a model's layers.
//!
//! Parameters are fp32 on CPU and (by [`checkpoint::default_kind`]) bf16 on CUDA unless a
//! [`Dtype`] is asked for; logits are fp32 whatever the parameters are.

pub mod checkpoint;
pub mod device;
mod error;
pub mod generate;
mod layers;
pub mod lora;
mod qwen2;
mod safetensors_io;
pub mod subset;

pub use checkpoint::{default_kind, load, load_config, load_weights, save, LoadedModel};
pub use device::{best_device, load_cuda_runtime, tune_allocator, AllocatorTuning, Dtype};
pub use error::{ModelError, Result};
pub use generate::{
    choose_tokens, generate, generate_from_prompts, left_pad, GenerationConfig, GenerationOutput,
    Sampling,
};
pub use lora::{attach_lora, load_adapter, lora_parameters, merge_lora, save_adapter, LoraConfig};
pub use qwen2::{Config, KvCache, Qwen2ForCausalLM, TokenIds};
