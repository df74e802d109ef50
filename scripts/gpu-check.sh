#!/usr/bin/env bash
# The prepared GPU check of issue 17 (docs/PERFORMANCE.md, "GPU").
#
# Here (a machine with cargo, no GPU needed):
#   scripts/gpu-check.sh            build everything (release), pack the kit into target-gpu/
#                                   (at most 60 MiB: it travels with the working tree, 64 MiB in
#                                   all), then run the device side here: without a GPU it stops
#                                   at its probe with a message saying what is missing.
#   scripts/gpu-check.sh --pack     the build and the kit only.
#
# On the GPU machine (the device tool, carry ["target-gpu"], timeout_s 540):
#   bash scripts/gpu-check.sh --device-side
#
# Rehearsal of the device side without a GPU (every step after the probe, on the CPU, at small
# step counts; needs a python whose torch is 2.11, e.g. the reference venv of bench-hf.sh):
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_MODEL=tiny-m GPU_CHECK_STEPS=2 GPU_CHECK_TEACHER_STEPS=20 \
#     GPU_CHECK_STUDENT_STEPS=5 PATH=~/.cache/kidbench/venv-reference/bin:$PATH \
#     bash scripts/gpu-check.sh --device-side
# (GPU_CHECK_MODEL: the model of the SFT and generation steps, smol-sized by default; a CPU takes
# minutes per smol-sized step, so the rehearsal uses tiny-m.)
#
# The device side runs in at most 8 minutes (each step has its own `timeout`) and writes under
# $OUT (default target-gpu/out): probe.txt, doctor.txt, sft-bf16.json, generate-bf16.json,
# bench.err, run.log, gpu-memory.csv, summary.json (tokens/s, step time, peak GPU memory, MFU).
# That machine reaches no network and has no cargo: it gets the binaries built here, and takes
# libtorch_cuda.so (and the rest of libtorch 2.11) from the pip torch of its python3.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kit_dir="$root/target-gpu"
kit="$kit_dir/kit.tar.xz"
max_kit=$((60 * 1024 * 1024))
die() { echo "gpu-check.sh: $1" >&2; exit "${2:-1}"; }

pack() {
  cd "$root" || die "no $root"
  # shellcheck source=/dev/null
  source scripts/env.sh || die "scripts/env.sh failed (libtorch setup)"
  nice -n 19 cargo build --release --workspace --locked >&2 || die "cargo build --release failed"
  local bench
  bench="$(nice -n 19 cargo bench --workspace --locked --bench side_by_side --no-run \
    --message-format=json 2>/dev/null | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "side_by_side" and m.get("executable"):
        print(m["executable"])')"
  [ -x "$bench" ] || die "the side_by_side bench did not build"
  rm -rf "$kit_dir/stage" && mkdir -p "$kit_dir/stage/bin" || die "cannot write $kit_dir"
  cp target/release/kidbench "$kit_dir/stage/bin/" || die "no target/release/kidbench"
  cp "$bench" "$kit_dir/stage/bin/side_by_side" || die "cannot copy $bench"
  for p in sft rkd gkd kid; do
    cp "target/release/libkidbench_plugin_$p.so" "$kit_dir/stage/bin/" || die "no plugin $p in target/release"
  done
  cp scripts/bench-hf.py "$kit_dir/stage/" || die "no scripts/bench-hf.py"
  strip --strip-debug "$kit_dir"/stage/bin/* 2>/dev/null || true
  tar -C "$kit_dir/stage" -cJf "$kit" . || die "cannot pack $kit"
  local size
  size=$(stat -c %s "$kit")
  echo "gpu-check.sh: kit $kit: $((size / 1024 / 1024)) MiB (limit 60 MiB)" >&2
  [ "$size" -le "$max_kit" ] || die "the kit is $size bytes, over 60 MiB: it cannot travel"
  rm -rf "$kit_dir/stage"
}

# ---------------------------------------------------------------------------------------------
device_side() {
  local out="${OUT:-$kit_dir/out}"
  local dev="${GPU_CHECK_DEVICE:-cuda}"
  case "$dev" in cuda | cpu) ;; *) die "GPU_CHECK_DEVICE=$dev: cuda (the check) or cpu (its rehearsal)" 2 ;; esac
  local model="${GPU_CHECK_MODEL:-smol-sized}"
  case "$model" in smol-sized | tiny-m | tiny-s) ;; *) die "GPU_CHECK_MODEL=$model: smol-sized, tiny-m or tiny-s" 2 ;; esac
  mkdir -p "$out"
  local start=$SECONDS
  local log="$out/probe.txt"
  : >"$log"
  # 1. Probe (cheap): GPU, python, torch with CUDA, the libtorch_cuda of that torch.
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "uname: $(uname -srm)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
      || echo "nvidia-smi: not found"
  } >>"$log" 2>&1
  local py=""
  for c in python3 /opt/torch/.venv/bin/python3 python; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import torch' 2>/dev/null; then py="$(command -v "$c")"; break; fi
  done
  if [ -z "$py" ]; then
    cat "$log" >&2
    die "no python with torch on this machine (tried python3, /opt/torch/.venv/bin/python3, python): cannot find libtorch_cuda.so" 3
  fi
  local probe
  probe="$("$py" - <<'EOF' 2>&1
import os, torch
lib = os.path.join(os.path.dirname(torch.__file__), "lib")
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("lib", lib)
print("libtorch_cuda", os.path.isfile(os.path.join(lib, "libtorch_cuda.so")))
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
EOF
)"
  echo "python: $py" >>"$log"
  echo "$probe" >>"$log"
  local torch_lib
  torch_lib="$(echo "$probe" | sed -n 's/^lib //p')"
  if [ "$dev" = cuda ] && ! echo "$probe" | grep -q "^libtorch_cuda True"; then
    cat "$log" >&2
    die "the torch of $py has no libtorch_cuda.so in $torch_lib (a CPU-only torch): no CUDA libtorch here" 3
  fi
  if [ "$dev" = cuda ] && ! echo "$probe" | grep -q "available True"; then
    cat "$log" >&2
    die "no usable GPU: torch.cuda.is_available() is False on this machine (see $log)" 3
  fi
  case "$probe" in *"torch 2.11.0"*) ;; *) echo "warning: kidbench is built against libtorch 2.11.0; this torch differs" | tee -a "$log" >&2 ;; esac

  # 2. The kit, with libtorch (CUDA) from that torch.
  [ -f "$kit" ] || die "no $kit: run scripts/gpu-check.sh --pack here and carry target-gpu" 3
  local kb=/tmp/kidbench-gpu
  rm -rf "$kb" && mkdir -p "$kb" && tar -C "$kb" -xJf "$kit" || die "cannot unpack $kit"
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export KIDBENCH_PLUGIN_PATH="$kb/bin" KIDBENCH_HOME="$kb/home" KIDBENCH_DATABASES="$kb/databases"
  local bin="$kb/bin"

  # GPU memory, sampled every 200 ms for the whole check.
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 200 >"$out/gpu-memory.csv" 2>/dev/null &
    local smi=$!
    trap 'kill $smi 2>/dev/null' EXIT
  fi

  # 3. kidbench doctor on CUDA.
  timeout 60 "$bin/kidbench" doctor >"$out/doctor.txt" 2>&1
  echo "doctor: rc $?" | tee -a "$log"
  [ "$dev" = cpu ] || grep -q "CUDA available: true" "$out/doctor.txt" || { cat "$out/doctor.txt" >&2; die "kidbench doctor does not see CUDA (see doctor.txt)" 4; }

  # 4. A bf16 SFT of the largest model that can be had here: SmolLM2-135M's shape (random
  #    weights, written by this machine's transformers; the real checkpoint, 516 MiB, cannot
  #    travel), through kidbench's trainer on the side-by-side batch (32 x 140 tokens), N steps.
  local steps="${GPU_CHECK_STEPS:-20}"
  local models="$kb/models"
  (cd "$kb" && timeout 120 "$py" bench-hf.py prepare --out "$models" --models "$model") >>"$log" 2>&1
  echo "prepare ($model): rc $?" | tee -a "$log"
  timeout 150 "$bin/side_by_side" train --device "$dev" --method sft --student "$models/$model" \
    --inputs "$models/inputs.json" --steps "$steps" --warmup 3 >"$out/sft-bf16.json" 2>>"$out/bench.err"
  echo "sft bf16: rc $?" | tee -a "$log"
  timeout 90 "$bin/side_by_side" generate --device "$dev" --model "$models/$model" \
    --inputs "$models/inputs.json" --reps 3 >"$out/generate-bf16.json" 2>>"$out/bench.err"
  echo "generate bf16: rc $?" | tee -a "$log"

  # 5. kidbench run, every method family, at a small budget (teacher tiny-m trained first).
  local left=$((470 - (SECONDS - start)))
  [ "$left" -gt 60 ] || left=60
  (cd "$kb" && timeout "$left" "$bin/kidbench" run --device "$dev" --methods sft,rkd,gkd,kid \
    --teacher-steps "${GPU_CHECK_TEACHER_STEPS:-300}" --steps "${GPU_CHECK_STUDENT_STEPS:-100}" --quiet) \
    >"$out/run.log" 2>&1
  echo "kidbench run: rc $? ($((SECONDS - start)) s so far)" | tee -a "$log"

  [ -n "${smi:-}" ] && kill "$smi" 2>/dev/null
  "$py" - "$out" "$dev" "$model" <<'EOF' | tee "$out/summary.json"
import json, os, sys, statistics
out, dev, model = sys.argv[1:4]
def load(name):
    try:
        return json.loads(open(os.path.join(out, name)).read().strip().splitlines()[-1])
    except Exception as e:
        return {"error": f"{name}: {e}"}
# bf16 on CUDA, fp32 on the CPU (the rehearsal); the names below keep the check's.
s = {"device": dev, "model": model, "dtype": "bf16" if dev == "cuda" else "fp32"}
sft = load("sft-bf16.json")
if "step_s" in sft:
    step = statistics.median(sft["step_s"])
    toks = sft["tokens_per_step"]
    n = sft["parameters"]
    # 6 N FLOPs per trained token (forward + backward), no attention term; bf16 dense peak of an
    # H100/H200 SXM (989 TFLOP/s, the datasheet) and the 790 TFLOP/s measured there.
    flops = 6 * n * toks / step
    s["sft_bf16"] = {"parameters": n, "kind": sft.get("kind"), "step_s": step, "tokens_per_s": toks / step,
                     "model_tflops": flops / 1e12, "mfu_vs_989": flops / 989e12, "mfu_vs_790_measured": flops / 790e12}
else:
    s["sft_bf16"] = sft
gen = load("generate-bf16.json")
if "runs" in gen:
    pre = statistics.median(r["prefill_s"] for r in gen["runs"])
    tot = statistics.median(r["generate_s"] for r in gen["runs"])
    s["generate_bf16"] = {"prefill_s": pre, "generate_s": tot, "new_tokens_per_s": 32 * 64 / tot,
                          "decode_tokens_per_s": 32 * 63 / max(tot - pre, 1e-9)}
else:
    s["generate_bf16"] = gen
try:
    mem = [int(l.split(",")[1]) for l in open(os.path.join(out, "gpu-memory.csv")) if "," in l]
    s["peak_gpu_memory_mib"] = max(mem) if mem else None
except Exception as e:
    s["peak_gpu_memory_mib"] = f"unread: {e}"
print(json.dumps(s, indent=1))
EOF
  tail -n 30 "$out/run.log"
  echo "gpu-check.sh: device side done in $((SECONDS - start)) s; files in $out"
}

case "${1:-}" in
  --device-side) device_side ;;
  --pack) pack ;;
  "") pack && device_side ;;
  *) die "usage: scripts/gpu-check.sh [--pack | --device-side]" 2 ;;
esac
