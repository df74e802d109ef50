#!/usr/bin/env bash
# kidbench side by side with transformers + PyTorch eager on CPU (issue 17; see
# scripts/bench-hf.py and docs/PERFORMANCE.md).
#
#   scripts/bench-hf.sh [compare options]     e.g. --threads 1,2 --rounds 3
#   scripts/bench-hf.sh --cases generate:smollm2-135m --threads 1 --rounds 2
#
# 1. A venv with the PyPI wheels torch==2.11.0 and transformers (reused when it has them):
#    $KIDBENCH_REFERENCE_VENV, default $KIDBENCH_HOME/venv-reference (~/.cache/kidbench/...).
# 2. The kidbench side: `cargo bench --no-run` of harness/train/benches/side_by_side.rs and a
#    release build of the workspace (the kid plugin).
# 3. Model folders written by transformers into $KIDBENCH_BENCH_DIR (default
#    $KIDBENCH_HOME/bench-hf): tiny-m, tiny-s, and smol-sized when a case names it;
#    smollm2-135m is read from $KIDBENCH_HOME/models (scripts/models.sh smollm2-135m).
# 4. `bench-hf.py compare`: each case and thread count, rounds of kidbench then transformers
#    alternately (order flipped every round); medians; the table on stdout, raw runs in
#    $KIDBENCH_BENCH_DIR/results.json.
#
# Both sides run under `nice -n 19` unless KIDBENCH_BENCH_NICE is set (e.g. 0).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
home="${KIDBENCH_HOME:-$HOME/.cache/kidbench}"
venv="${KIDBENCH_REFERENCE_VENV:-$home/venv-reference}"
work="${KIDBENCH_BENCH_DIR:-$home/bench-hf}"
nice_level="${KIDBENCH_BENCH_NICE:-19}"
python="${PYTHON:-python3}"
die() { echo "bench-hf.sh: $*" >&2; exit 1; }

if ! "$venv/bin/python" -c 'import torch, transformers; assert torch.__version__.startswith("2.11.0")' 2>/dev/null; then
  echo "bench-hf.sh: creating $venv (torch==2.11.0 and transformers from PyPI)" >&2
  "$python" -m venv "$venv" || die "cannot create a venv with $python (Debian/Ubuntu: apt install python3-venv)"
  "$venv/bin/pip" install --quiet "torch==2.11.0" "transformers>=5.24,<6" safetensors \
    || die "pip could not install torch==2.11.0 and transformers into $venv"
fi

cd "$root"
# shellcheck source=/dev/null
source scripts/env.sh
nice -n "$nice_level" cargo build --release --workspace --locked >&2
bench_bin="$(nice -n "$nice_level" cargo bench --workspace --locked --bench side_by_side --no-run \
  --message-format=json 2>/dev/null \
  | "$venv/bin/python" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "side_by_side" and m.get("executable"):
        print(m["executable"])')"
[ -x "$bench_bin" ] || die "could not build the side_by_side bench (cargo bench --workspace --bench side_by_side --no-run)"

models="tiny-m,tiny-s"
case " $* " in *smol-sized*) models="$models,smol-sized" ;; esac
nice -n "$nice_level" "$venv/bin/python" scripts/bench-hf.py prepare --out "$work" --models "$models"
case " $* " in
  *smollm2-135m*)
    [ -f "$home/models/smollm2-135m/model.safetensors" ] \
      || die "no $home/models/smollm2-135m: run scripts/models.sh smollm2-135m"
    ln -sfn "$home/models/smollm2-135m" "$work/smollm2-135m" ;;
esac

exec nice -n "$nice_level" "$venv/bin/python" scripts/bench-hf.py compare --work "$work" \
  --kidbench "$bench_bin" --plugin-dir "$root/target/release" "$@"
