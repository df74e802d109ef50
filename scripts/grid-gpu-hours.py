#!/usr/bin/env python3
"""Estimates the GPU-hours of a sweep grid at real model sizes from a measured sweep's ledger.

Every cell record holds a compute ledger (tokens through the student without and with
backward, through the teacher, and sampled). Per training token of its data, each method's
ledger says how many tokens of each kind it spends; those ratios do not depend on the model
size, so they carry over to a grid of real models:

    FLOPs = tokens * (2*Ps*fwd + 6*Ps*bwd + 2*Pt*teacher + 2*P_sampler*sampled)

and GPU-hours = FLOPs / (peak * MFU) / 3600, plus, for sampled tokens, a decode-bound time
(decoding one token of a batch is limited by memory bandwidth, not FLOPs). This is an
estimate with stated assumptions, not a measurement; docs/SCALING.md says which.

usage: scripts/grid-gpu-hours.py SWEEP_DIR [--student-params 1.5e9] [--teacher-params 7e9]
       [--train-tokens 1.4e7] [--epochs 3] [--cells-per-method 12] [--peak 989e12] [--mfu 0.4]
       [--decode-tokens-per-s 2500]
"""

import argparse
import collections
import glob
import json
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("sweep_dir")
    ap.add_argument("--student-params", type=float, default=1.5e9)
    ap.add_argument("--teacher-params", type=float, default=7e9)
    ap.add_argument(
        "--train-tokens",
        type=float,
        default=7000 * 700,
        help="tokens of one epoch of the training data (prompt + target)",
    )
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument(
        "--cells-per-method",
        type=int,
        default=12,
        help="cells of each method in the grid (teachers x students x benchmarks x seeds)",
    )
    ap.add_argument("--peak", type=float, default=989e12, help="GPU peak FLOP/s (H100/H200 bf16 dense)")
    ap.add_argument("--mfu", type=float, default=0.4, help="fraction of peak a training step reaches")
    ap.add_argument(
        "--decode-tokens-per-s",
        type=float,
        default=2500,
        help="sampled tokens per second per GPU (batched decoding of the sampling model)",
    )
    a = ap.parse_args()

    # Per method: mean tokens per optimizer step of each kind, over its measured cells.
    per = collections.defaultdict(lambda: collections.defaultdict(list))
    for path in glob.glob(os.path.join(a.sweep_dir, "cells", "*", "records", "*.json")):
        with open(path) as f:
            rec = json.load(f)
        if rec["key"]["role"] != "method" or rec["outcome"].get("status") != "scored":
            continue
        t = rec["outcome"]["training"]
        led, steps = t["ledger"], max(1, t["steps"])
        m = per[rec["key"]["method"]]
        # SFT's ledger counts its one forward (with backward) as forward tokens.
        bwd = led["student_backward_tokens"] or led["student_forward_tokens"]
        fwd = led["student_forward_tokens"] if led["student_backward_tokens"] else 0
        for k, v in (("fwd", fwd), ("bwd", bwd), ("teacher", led["teacher_forward_tokens"]),
                     ("sampled", led["sampled_tokens"])):
            m[k].append(v / steps)
    if "sft" not in per:
        print(f"{a.sweep_dir}: no scored sft record: the unit (a ground-truth token) is SFT's",
              file=sys.stderr)
        return 1
    mean = lambda xs: sum(xs) / len(xs)
    unit = mean(per["sft"]["bwd"])  # ground-truth tokens per step
    ps, pt = a.student_params, a.teacher_params
    tokens = a.train_tokens * a.epochs
    print(
        f"assumptions: student {ps:.3g} params, teacher {pt:.3g}, {tokens:.3g} training tokens per "
        f"cell ({a.epochs:g} epochs), {a.cells_per_method} cells per method, "
        f"{a.peak / 1e12:.0f} TFLOP/s peak at {a.mfu:.0%} MFU, "
        f"{a.decode_tokens_per_s:.0f} sampled tokens/s"
    )
    print()
    print("Tokens per ground-truth token (measured ledger), and the estimate:")
    print()
    print("| method | student fwd | student fwd+bwd | teacher fwd | sampled | GPU-h per cell | GPU-h, all cells |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    total = 0.0
    for name in sorted(per):
        fwd, bwd, tch, smp = (mean(per[name][k]) / unit for k in ("fwd", "bwd", "teacher", "sampled"))
        flops = tokens * (2 * ps * fwd + 6 * ps * bwd + 2 * pt * tch)
        hours = flops / (a.peak * a.mfu) / 3600 + tokens * smp / a.decode_tokens_per_s / 3600
        total += hours * a.cells_per_method
        print(f"| {name} | {fwd:.2f} | {bwd:.2f} | {tch:.2f} | {smp:.3f} | {hours:.1f} | "
              f"{hours * a.cells_per_method:.0f} |")
    print()
    print(f"total: {total:.0f} GPU-hours for {a.cells_per_method * len(per)} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
