#!/usr/bin/env bash
# Sets up (cached, idempotent), builds and runs kidbench. With no arguments: the embedded default,
# `kidbench run` on the generated synth benchmark. Any arguments are passed to kidbench.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
if [ "$#" -eq 0 ]; then set -- run; fi
cargo run --locked --quiet -- "$@"
