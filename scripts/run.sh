#!/usr/bin/env bash
# Sets up (cached, idempotent), builds and runs kidbench. Any arguments are passed to kidbench.
#
# With no arguments: the newcomer's distillation comparison on the generated synth benchmark.
# A tiny-m teacher (1600 steps, cached after the first run), a tiny-m student that is
# the teacher's own run at step 1000 (cached too: the stand-in for a pretrained student; the
# teacher's run continues from it, so it costs no extra steps), then SFT and KID from that student
# under one budget (100 steps), all scored by execution on 552 synth dev questions.
# It prints each model's EX/TS, KID's latency relative to SFT, and KID's EX difference from SFT
# with its 95 % confidence interval and McNemar's p.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
# The whole workspace: the KD methods are plugins (cdylibs) that `cargo run` alone does not build.
cargo build --workspace --locked --quiet
kidbench=target/debug/kidbench
if [ "$#" -eq 0 ]; then
  "$kidbench" run --methods sft,kid --student tiny-m --teacher-steps 1600 --student-from-teacher-step 1000 \
    --steps 100 --max-dev 552
  echo "full comparisons: kidbench sweep sweeps/table3.toml (seven methods x 3 seeds, 75 min on 2 cores; --quick, one seed at 50 steps), results in docs/RESULTS.md"
  exit 0
fi
exec "$kidbench" "$@"
