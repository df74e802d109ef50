#!/usr/bin/env bash
# Sets up (cached, idempotent) and runs every test of the workspace. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
echo "kidbench: LIBTORCH=$LIBTORCH" >&2
cargo test --workspace --locked "$@"
