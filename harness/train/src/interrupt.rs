//! SIGINT and SIGTERM while training: finish the current step, write a checkpoint of it, then
//! stop with [`Interrupted`]; a second signal exits at once.
//!
//! Ctrl-C in a terminal and a scheduler's cancel or preemption (Slurm sends SIGTERM, then
//! SIGKILL after its `KillWait`) both land here. Outside training (loading, scoring) a signal
//! exits at once as it always did: scoring keeps its own per-batch checkpoints, so `--resume`
//! loses nothing there either.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Once;

/// A training loop is running and will check [`requested`] after its step.
static TRAINING: AtomicBool = AtomicBool::new(false);
/// The signal that asked to stop (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static INSTALL: Once = Once::new();

/// The error a training run stops with after a signal; its checkpoint is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "interrupted by {} at step {step} of {steps}{}; rerun the same command with --resume (a sweep \
     cell resumes by itself) to continue",
    signal_name(*signal),
    if *checkpointed { ", checkpoint written" } else { " (no checkpoint folder)" }
)]
pub struct Interrupted {
    pub signal: i32,
    pub step: usize,
    pub steps: usize,
    pub checkpointed: bool,
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

fn install() {
    INSTALL.call_once(|| {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // SAFETY: the action only touches atomics and calls `_exit` (both async-signal-safe).
            let res = unsafe {
                signal_hook::low_level::register(sig, move || {
                    let first = SIGNAL
                        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                    if !first || !TRAINING.load(Ordering::SeqCst) {
                        signal_hook::low_level::exit(128 + sig);
                    }
                })
            };
            if let Err(e) = res {
                eprintln!("kidbench: warning: cannot handle signal {sig}: {e}");
            }
        }
    });
}

/// Marks a training loop as running while it lives (signals then wait for the step's end).
pub struct TrainingGuard(());

impl TrainingGuard {
    pub fn enter() -> TrainingGuard {
        install();
        TRAINING.store(true, Ordering::SeqCst);
        TrainingGuard(())
    }
}

impl Drop for TrainingGuard {
    fn drop(&mut self) {
        TRAINING.store(false, Ordering::SeqCst);
    }
}

/// The signal that asked to stop, if one did.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Whether `e` (or what it wraps) is an [`Interrupted`].
pub fn is_interrupt(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<Interrupted>().is_some())
}
