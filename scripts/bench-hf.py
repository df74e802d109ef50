#!/usr/bin/env python3
"""kidbench side by side with PyTorch eager / Hugging Face transformers (issue 17).

Same model folders, same token ids, same lengths, same thread counts for both sides:

- generation: batch 32, left-padded prompts of 60-80 tokens, 64 new tokens, greedy, no EOS;
  the prefill (one forward over the prompts, KV cache filled, last-position logits) is timed on
  its own, and decode = whole `generate` - prefill;
- a training step (forward, backward, global-norm clip 1.0, AdamW) on one fixed batch of 32 rows
  x 140 tokens with 30 target tokens per row (EOS included), for SFT and for KID (alpha 0.2:
  masked no-grad student forward, masked places filled with its argmax, teacher forward no-grad on
  the imperfect sequence, reverse KL(S||T) + MLE with ground-truth labels).

Sub-commands (`scripts/bench-hf.sh` runs them with the reference venv):

  prepare  --out DIR                 model folders (HF layout, written by transformers) + inputs.json
  hf-generate / hf-train ...         the transformers side of one case, one JSON line on stdout
  compare  --work DIR --kidbench BIN the whole side by side: for every case and thread count,
                                     rounds of (kidbench, transformers) alternately; medians, ratios,
                                     load averages; a markdown table on stdout, raw runs in
                                     DIR/results.json
  perf-split --work DIR --kidbench BIN --plugin-dir DIR [--cases ...] [--threads N] [--top N]
                                     where each timed region's CPU time goes, on both sides: one
                                     run each under `perf record -k CLOCK_MONOTONIC` (perf must be
                                     installed: Debian's linux-perf), samples kept when they fall
                                     inside the regions each side prints, sorted into GEMM, ATen
                                     kernels, memory, OS kernel, Python, libtorch framework and
                                     kidbench's own code by the same rules (PERF_CATEGORIES);
                                     a markdown table per region with the "ceiling" ratio

The kidbench side is `harness/train/benches/side_by_side.rs` (`generate` / `train`), which drives
kidbench's own trainer (`kidbench_train::trainer::train`, the plugins `sft` and `kid`).
"""

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

BATCH = 32
NEW_TOKENS = 64
TRAIN_LEN = 140
TRAIN_TARGET = 30
PAD, BOS, EOS, MASK = 0, 1, 2, 3
KID_ALPHA = 0.2

# name -> (architecture, config); tiny-m is kidbench's default teacher preset and tiny-s its
# default student (tied embeddings, as every from-scratch preset; vocabulary 2000), smol-sized
# SmolLM2-135M's shape with random weights.
MODELS = {
    "tiny-m": ("Qwen2ForCausalLM", dict(
        vocab_size=2000, hidden_size=128, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        tie_word_embeddings=True, rope_theta=10000.0, rms_norm_eps=1e-6)),
    "tiny-s": ("Qwen2ForCausalLM", dict(
        vocab_size=2000, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        tie_word_embeddings=True, rope_theta=10000.0, rms_norm_eps=1e-6)),
    "smol-sized": ("LlamaForCausalLM", dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
        tie_word_embeddings=True, rope_theta=100000.0, rms_norm_eps=1e-5, attention_bias=False,
        mlp_bias=False)),
}


def prompts_for(vocab):
    """The generation prompts of kidbench-model's criterion bench (ids 5..1994, any vocabulary)."""
    span = vocab - 10
    return [[(i * 131 + j * 17) % span + 5 for j in range(60 + (i * 7) % 21)] for i in range(BATCH)]


def train_rows(vocab):
    """32 rows of 140 tokens: BOS + 109 prompt tokens + 29 target tokens + EOS (30 targets)."""
    span = min(vocab, 2000) - 10
    rows = []
    for i in range(BATCH):
        body = [(i * 37 + j * 11 + (j * j) % 7) % span + 5 for j in range(TRAIN_LEN - 2)]
        rows.append([BOS] + body + [EOS])
    return rows


def cmd_prepare(a):
    import torch
    import transformers

    os.makedirs(a.out, exist_ok=True)
    for name in a.models.split(","):
        arch, cfg = MODELS[name]
        d = os.path.join(a.out, name)
        if os.path.isfile(os.path.join(d, "model.safetensors")):
            continue
        torch.manual_seed(0)
        kw = dict(cfg, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, initializer_range=0.1 if name.startswith("tiny") else 0.02)
        conf = getattr(transformers, arch.replace("ForCausalLM", "Config"))(**kw)
        model = getattr(transformers, arch)(conf).float()
        model.save_pretrained(d, safe_serialization=True)
        print(f"wrote {d} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters)", file=sys.stderr)
    inputs = {
        "batch": BATCH, "max_new_tokens": NEW_TOKENS, "pad": PAD, "bos": BOS, "eos": EOS,
        "mask": MASK, "kid_alpha": KID_ALPHA,
        "prompts": prompts_for(2000),
        "train": {"rows": train_rows(2000), "prompt_len": TRAIN_LEN - TRAIN_TARGET},
    }
    with open(os.path.join(a.out, "inputs.json"), "w") as f:
        json.dump(inputs, f)


def load_model(path):
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype="float32", attn_implementation="sdpa")


def setup_threads(n):
    import torch

    torch.set_num_threads(n)
    return torch


def left_pad(torch, prompts):
    t = max(map(len, prompts))
    ids = torch.tensor([[PAD] * (t - len(p)) + p for p in prompts], dtype=torch.long)
    mask = torch.tensor([[0] * (t - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
    return ids, mask


def mono():
    """CLOCK_MONOTONIC seconds: every timed region's clock, and the one perf-split's samples carry."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def cmd_hf_generate(a):
    torch = setup_threads(a.threads)
    model = load_model(a.model).eval()
    inputs = json.load(open(a.inputs))
    prompts = inputs["prompts"]
    ids, mask = left_pad(torch, prompts)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    gc = model.generation_config
    gc.eos_token_id = None
    gc.pad_token_id = PAD
    gc.do_sample = False
    gc.max_new_tokens = NEW_TOKENS
    gc.min_new_tokens = None
    for k in ("temperature", "top_p", "top_k"):
        setattr(gc, k, None)
    runs = []
    with torch.inference_mode():
        for r in range(a.reps + 1):  # the first is a warm-up
            t0 = mono()
            out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
            out.logits.argmax(-1)
            t1 = mono()
            del out
            t2 = mono()
            gen = model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
            t3 = mono()
            assert gen.shape == (BATCH, ids.shape[1] + NEW_TOKENS), gen.shape
            if r > 0:
                runs.append({"prefill_s": t1 - t0, "generate_s": t3 - t2, "prefill_at": [t0, t1], "generate_at": [t2, t3]})
    first = gen[0, ids.shape[1]:ids.shape[1] + 8].tolist()
    print(json.dumps({"side": "transformers", "case": "generate", "threads": a.threads, "runs": runs, "first_tokens": first}))


def cmd_hf_profile(a):
    """torch.profiler over transformers' generate: aten ops per decode step, top ops by time."""
    torch = setup_threads(a.threads)
    from torch.profiler import ProfilerActivity, profile

    model = load_model(a.model).eval()
    inputs = json.load(open(a.inputs))
    ids, mask = left_pad(torch, inputs["prompts"])
    gc = model.generation_config
    gc.eos_token_id, gc.pad_token_id, gc.do_sample = None, PAD, False
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=mask, generation_config=gc, max_new_tokens=4)
        counts = {}
        for n in (2, 2 + a.steps):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                model.generate(input_ids=ids, attention_mask=mask, generation_config=gc, max_new_tokens=n)
            counts[n] = prof
    ev = {n: {e.key: e for e in p.key_averages()} for n, p in counts.items()}
    lo, hi = 2, 2 + a.steps
    total = lambda n: sum(e.count for k, e in ev[n].items() if k.startswith("aten::"))
    per_step = (total(hi) - total(lo)) / a.steps
    rows = []
    for k, e in ev[hi].items():
        if not k.startswith("aten::"):
            continue
        c0 = ev[lo][k].count if k in ev[lo] else 0
        t0 = ev[lo][k].self_cpu_time_total if k in ev[lo] else 0
        rows.append((k, (e.count - c0) / a.steps, (e.self_cpu_time_total - t0) / a.steps))
    rows.sort(key=lambda r: -r[2])
    print(json.dumps({"side": "transformers", "case": "profile", "threads": a.threads,
                      "aten_ops_per_decode_step": per_step,
                      "top_self_us_per_step": [{"op": k, "calls": c, "self_us": t} for k, c, t in rows[:15]]}))


def train_batch(torch, inputs, vocab):
    rows = inputs["train"]["rows"]
    plen = inputs["train"]["prompt_len"]
    ids = torch.tensor(rows, dtype=torch.long)
    mask = torch.ones_like(ids)
    labels = torch.full_like(ids, -100)  # labels[q-1] = ids[q] for target tokens q
    labels[:, plen - 1:-1] = ids[:, plen:]
    return ids, mask, labels


def cmd_hf_train(a):
    torch = setup_threads(a.threads)
    import torch.nn.functional as F

    student = load_model(a.student).train()
    teacher = load_model(a.teacher).eval() if a.method == "kid" else None
    if teacher is not None:
        for p in teacher.parameters():
            p.requires_grad_(False)
    inputs = json.load(open(a.inputs))
    ids, mask, labels = train_batch(torch, inputs, student.config.vocab_size)
    target = labels != -100
    n = target.sum()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    times, losses, at, opt_times = [], [], [], []
    for step in range(a.warmup + a.steps):
        t0 = mono()
        if a.method == "sft":
            logits = student(input_ids=ids, attention_mask=mask).logits
            loss = F.cross_entropy(logits[target], labels[target], reduction="sum") / n
        else:
            # KID, written plainly: mask alpha of each row's target tokens (EOS excluded), one
            # no-grad student forward on the masked sequence, fill with its argmax (token q is
            # predicted at q-1), teacher on the imperfect sequence, reverse KL + MLE.
            cand = torch.zeros_like(ids, dtype=torch.bool)
            cand[:, 1:] = target[:, :-1] & (ids[:, 1:] != EOS)
            chosen = torch.zeros_like(cand)
            for r in range(ids.shape[0]):
                c = cand[r].nonzero().squeeze(1)
                k = round(KID_ALPHA * len(c))
                chosen[r, c[torch.randperm(len(c), generator=gen)[:k]]] = True
            masked = ids.masked_fill(chosen, MASK)
            with torch.no_grad():
                s_masked = student(input_ids=masked, attention_mask=mask).logits
                pred = torch.zeros_like(ids)
                pred[:, 1:] = s_masked[:, :-1].argmax(-1)
                imperfect = torch.where(chosen, pred, ids)
                t_logits = teacher(input_ids=imperfect, attention_mask=mask).logits
            s_logits = student(input_ids=imperfect, attention_mask=mask).logits
            s_lp = F.log_softmax(s_logits[target], -1)
            t_lp = F.log_softmax(t_logits[target], -1)
            rkl = (s_lp.exp() * (s_lp - t_lp)).sum()
            mle = F.cross_entropy(s_logits[target], labels[target], reduction="sum")
            loss = (rkl + mle) / n
        loss.backward()
        to = mono()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t_opt = mono() - to
        losses.append(loss.item())
        t1 = mono()
        if step >= a.warmup:
            times.append(t1 - t0)
            opt_times.append(t_opt)
            at.append([t0, t1])
    tokens = int(mask.sum())
    print(json.dumps({"side": "transformers", "case": f"train-{a.method}", "threads": a.threads, "step_s": times, "step_at": at, "optimizer_s": opt_times, "tokens_per_step": tokens, "losses": losses}))


def run_json(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise SystemExit(f"no JSON line from: {' '.join(cmd)}\n{p.stdout[-2000:]}")
    return json.loads(lines[-1])


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def summarize(res):
    """Per-run summary numbers of one side's JSON."""
    if res["case"] == "generate":
        pre = median([r["prefill_s"] for r in res["runs"]])
        tot = median([r["generate_s"] for r in res["runs"]])
        return {"prefill_s": pre, "generate_s": tot, "decode_s": tot - pre}
    return {"step_s": median(res["step_s"])}


WARMUP_STEPS = 2  # training steps run before the timed ones, on both sides


def parse_cases(spec):
    """(kind, model, teacher or None) of each comma-separated case."""
    cases = []
    for c in spec.split(","):
        kind, _, rest = c.partition(":")
        if kind == "generate":
            cases.append(("generate", rest, None))
        elif kind in ("sft", "kid"):
            student, _, teacher = rest.partition("+")
            cases.append((kind, student, teacher or None))
        else:
            raise SystemExit(f"unknown case {c!r} (generate:MODEL, sft:MODEL, kid:STUDENT+TEACHER)")
    return cases


def side_commands(a, kind, m, teacher, threads, reps):
    """{"kidbench": argv, "transformers": argv} of one case (a: --work, --kidbench, --plugin-dir, --steps)."""
    inputs = os.path.join(a.work, "inputs.json")
    folder = lambda x: x if os.path.isabs(x) else os.path.join(a.work, x)
    if kind == "generate":
        common = ["--model", folder(m), "--inputs", inputs, "--threads", str(threads), "--reps", str(reps)]
        return {"kidbench": [a.kidbench, "generate", *common], "transformers": [sys.executable, __file__, "hf-generate", *common]}
    extra = ["--teacher", folder(teacher)] if teacher else []
    common = ["--method", kind, "--student", folder(m), *extra, "--inputs", inputs, "--threads", str(threads),
              "--steps", str(a.steps), "--warmup", str(WARMUP_STEPS)]
    return {"kidbench": [a.kidbench, "train", *common, "--plugin-dir", a.plugin_dir], "transformers": [sys.executable, __file__, "hf-train", *common]}


def cmd_compare(a):
    work = a.work
    cases = parse_cases(a.cases)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    results = []
    for kind, m, teacher in cases:
        for threads in [int(t) for t in a.threads.split(",")]:
            reps = a.reps_large if "smol" in m else a.reps
            cmds = side_commands(a, kind, m, teacher, threads, reps)
            kb, hf = cmds["kidbench"], cmds["transformers"]
            sides = {"kidbench": [], "transformers": []}
            loads = []
            for r in range(a.rounds):
                order = [("kidbench", kb), ("transformers", hf)]
                if r % 2 == 1:
                    order.reverse()
                for side, cmd in order:
                    loads.append(os.getloadavg()[0])
                    res = run_json(cmd, env)
                    sides[side].append(res)
                    print(f"{kind} {m} {threads}t {side}: {summarize(res)}", file=sys.stderr)
            results.append({"case": kind, "model": m, "teacher": teacher, "threads": threads, "load_1min": loads, "kidbench": sides["kidbench"], "transformers": sides["transformers"]})
            with open(os.path.join(work, "results.json"), "w") as f:
                json.dump(results, f, indent=1)
    print(table(results))


def table(results):
    def med(side, key):
        return median([summarize(r)[key] for r in side])

    out = ["| case | threads | kidbench | transformers | ratio | load (1 min) |", "|---|---|---|---|---|---|"]
    for e in results:
        load = f"{min(e['load_1min']):.1f}-{max(e['load_1min']):.1f}"
        name = e["model"] + (f" + teacher {e['teacher']}" if e["teacher"] else "")
        if e["case"] == "generate":
            new = BATCH * NEW_TOKENS
            dec_tokens = BATCH * (NEW_TOKENS - 1)
            for key, label, toks in (("prefill_s", "prefill", None), ("decode_s", "decode", dec_tokens), ("generate_s", "generate", new)):
                k, h = med(e["kidbench"], key), med(e["transformers"], key)
                rate = (lambda s: f"{s * 1e3:.0f} ms") if toks is None else (lambda s, toks=toks: f"{s * 1e3:.0f} ms ({toks / s / 1e3:.1f}k tok/s)")
                out.append(f"| {label} {name} | {e['threads']} | {rate(k)} | {rate(h)} | **{h / k:.2f}x** | {load} |")
        else:
            k, h = med(e["kidbench"], "step_s"), med(e["transformers"], "step_s")
            out.append(f"| {e['case']} step {name} | {e['threads']} | {k * 1e3:.0f} ms | {h * 1e3:.0f} ms | **{h / k:.2f}x** | {load} |")
    return "\n".join(out)


# perf-split: where the CPU time of each timed region goes, on both sides, by the same rules.
# A sample's category comes from its shared object and (demangled) symbol; first match wins.
PERF_CATEGORIES = [
    ("GEMM (MKL, oneDNN)", lambda dso, sym: dso in ("[unknown]", "[JIT]") or "//anon" in dso
     or any(k in sym for k in ("mkl_", "sgemm", "gemm", "dnnl", "brgemm", "jit_", "_blas_"))),
    ("ATen CPU kernels (elementwise, reductions, softmax, attention, copies)", lambda dso, sym: any(k in sym for k in (
        "at::native::", "at::vec::", "Sleef_", "at::internal::serial_for_each", "at::internal::invoke_parallel",
        "loop_2d_from_1d", "at::parallel_for")) or dso.startswith("libm.") or dso.startswith("libm-")),
    ("memory (alloc, free, memcpy/memset, page faults)", lambda dso, sym: any(k in sym for k in (
        "malloc", "free", "memcpy", "memset", "memmove", "alloc_cpu", "posix_memalign", "_int_",
        "page", "mmap", "munmap", "madvise", "zap_", "folio", "pte", "tlb", "lru", "mm_", "brk",
        "operator new", "operator delete", "tcache", "CPUCachingAllocator"))),
    ("OpenMP runtime", lambda dso, sym: "gomp" in dso or "GOMP" in sym or "omp" in dso),
    ("OS kernel (other)", lambda dso, sym: "kernel" in dso or dso.startswith("[k")),
    ("Python interpreter", lambda dso, sym: "python" in dso and "torch_python" not in dso),
    ("libtorch framework (dispatch, autograd, TensorImpl, tch glue)", lambda dso, sym: any(k in dso for k in (
        "libtorch", "libc10", "libshm")) or "at::" in sym or "c10::" in sym or "torch::" in sym
     or sym.startswith("atg_") or sym.startswith("at_")),
]
KIDBENCH_CODE = "kidbench, Rust (model, trainer, plugins)"


def perf_category(dso, sym, kidbench_dsos):
    for name, rule in PERF_CATEGORIES:
        if rule(dso, sym):
            return name
    if any(dso.startswith(d) for d in kidbench_dsos):
        return KIDBENCH_CODE
    return "other (libc, loader, ...)"


def perf_windows(res):
    """{phase: [[start, end], ...]} of one side's JSON (CLOCK_MONOTONIC seconds)."""
    if res["case"] == "generate":
        return {"prefill": [r["prefill_at"] for r in res["runs"]], "generate": [r["generate_at"] for r in res["runs"]]}
    return {"step": res["step_at"]}


def perf_samples(data, kidbench_dsos):
    """(time, category, dso, symbol) of every sample in a perf.data."""
    p = subprocess.run(["perf", "script", "-i", data, "-F", "time,ip,sym,dso", "--ns"], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"perf script -i {data} failed:\n{p.stderr[-2000:]}")
    # "  2383.426849474:      7f72843295bb mkl_blas_def_sgemm_kernel_0_zen (/path/libtorch_cpu.so)"
    line_re = re.compile(r"^\s*(\d+\.\d+):\s+[0-9a-f]+\s+(.*?)(?:\s+\(([^()]*)\))?$")
    out = []
    for line in p.stdout.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        t, sym, dso = float(m[1]), m[2], m[3] or "[unknown]"
        dso = os.path.basename(dso) if dso.startswith("/") and "//anon" not in dso else dso
        sym = sym.rsplit("+0x", 1)[0]
        out.append((t, perf_category(dso, sym, kidbench_dsos), dso, sym))
    return out


def perf_split_side(samples, windows, freq):
    """{phase: {category: ms per region}}, {phase: wall ms per region}, top symbols per category."""
    per, walls, syms = {}, {}, {}
    for phase, ws in windows.items():
        ws = sorted(ws)
        counts = {}
        for t, cat, dso, sym in samples:
            if any(a <= t < b for a, b in ws):
                counts[cat] = counts.get(cat, 0) + 1
                key = (cat, f"{sym} ({dso})")
                syms[phase, key] = syms.get((phase, key), 0) + 1
        per[phase] = {c: n * 1e3 / freq / len(ws) for c, n in counts.items()}
        walls[phase] = sum(b - a for a, b in ws) * 1e3 / len(ws)
    return per, walls, syms


def cmd_perf_split(a):
    """perf record each side of each case (one run each, threads as given); split each timed region's
    CPU time into categories; print a table per case with kidbench's and transformers' ms per region."""
    import shutil

    if shutil.which("perf") is None:
        raise SystemExit("perf-split: no `perf` on PATH (Debian: apt-get install linux-perf)")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    kb_dsos = [os.path.basename(a.kidbench), "libkidbench"]
    report = []
    for kind, m, teacher in parse_cases(a.cases):
        c = f"{kind}:{m}" + (f"+{teacher}" if teacher else "")
        sides = {}
        for side, cmd in side_commands(a, kind, m, teacher, a.threads, a.reps).items():
            data = os.path.join(a.work, f"perf-{kind}-{m}-{side}.data")
            res = run_json(["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-F", str(a.freq), "-o", data, "--", *cmd], env)
            samples = perf_samples(data, kb_dsos)
            sides[side] = (*perf_split_side(samples, perf_windows(res), a.freq), res)
            print(f"{c} {side}: {len(samples)} samples", file=sys.stderr)
        report.append((c, sides))
        if a.json:
            with open(a.json, "w") as f:
                json.dump([{"case": c, **{s: {"ms": v[0], "wall_ms": v[1]} for s, v in sd.items()}} for c, sd in report], f, indent=1)
    cats = [n for n, _ in PERF_CATEGORIES] + [KIDBENCH_CODE, "other (libc, loader, ...)"]
    kernel_cats = cats[:2]
    for c, sides in report:
        phases = list(sides["kidbench"][0])
        if set(phases) == {"prefill", "generate"}:
            for s in sides.values():  # decode = generate - prefill, category by category
                gen, pre = s[0]["generate"], s[0]["prefill"]
                s[0]["decode"] = {k: gen.get(k, 0) - pre.get(k, 0) for k in set(gen) | set(pre)}
                s[1]["decode"] = s[1]["generate"] - s[1]["prefill"]
            phases = ["prefill", "decode", "generate"]
        for ph in phases:
            kb, hf = sides["kidbench"], sides["transformers"]
            print(f"\n{c}, {ph} ({a.threads} thread{'s' if a.threads > 1 else ''}; CPU ms per region from perf samples at {a.freq} Hz)\n")
            print("| where | kidbench | transformers |\n|---|---|---|")
            for k in cats:
                x, y = kb[0][ph].get(k, 0), hf[0][ph].get(k, 0)
                if abs(x) >= 0.05 or abs(y) >= 0.05:
                    print(f"| {k} | {x:.1f} | {y:.1f} |")
            tk, th = sum(kb[0][ph].values()), sum(hf[0][ph].values())
            fk = sum(kb[0][ph].get(k, 0) for k in kernel_cats)
            fh = sum(hf[0][ph].get(k, 0) for k in kernel_cats)
            print(f"| **all samples** | **{tk:.1f}** | **{th:.1f}** |")
            print(f"| wall time of the region | {kb[1][ph]:.1f} | {hf[1][ph]:.1f} |")
            print(f"| kernels (GEMM + ATen) share | {100 * fk / tk:.0f} % | {100 * fh / th:.0f} % |")
            if ph == "step":  # the clip + AdamW part of a step, by each side's own timers
                rk, rh = kb[3], hf[3]
                ok = rk["timings"]["optimizer"] * 1e3 / (len(rk["step_s"]) + WARMUP_STEPS)
                oh = median(rh["optimizer_s"]) * 1e3
                print(f"| of which clip + AdamW (timers; kidbench: mean over all steps) | {ok:.1f} | {oh:.1f} |")
            print(f"\nkidbench/transformers: measured {th / tk:.2f}x; if kidbench spent nothing outside the kernels: "
                  f"{th / fk:.2f}x (transformers' total over kidbench's kernel time)")
            if a.top:
                for side, (_, _, syms, _) in sides.items():
                    ph_key = "generate" if ph == "decode" else ph
                    top = sorted(((n, k) for (p, k), n in syms.items() if p == ph_key), reverse=True)[:a.top]
                    print(f"\n{side}, top symbols ({ph_key}, samples):")
                    for n, (cat, name) in top:
                        print(f"  {n:6d}  [{cat[:20]}]  {name[:150]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("prepare")
    s.add_argument("--out", required=True)
    s.add_argument("--models", default="tiny-m,tiny-s")
    s = sub.add_parser("hf-generate")
    s.add_argument("--model", required=True)
    s.add_argument("--inputs", required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--reps", type=int, default=3)
    s = sub.add_parser("hf-profile")
    s.add_argument("--model", required=True)
    s.add_argument("--inputs", required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--steps", type=int, default=8)
    s = sub.add_parser("hf-train")
    s.add_argument("--method", choices=["sft", "kid"], required=True)
    s.add_argument("--student", required=True)
    s.add_argument("--teacher")
    s.add_argument("--inputs", required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--steps", type=int, default=5)
    s.add_argument("--warmup", type=int, default=2)
    s = sub.add_parser("perf-split")
    s.add_argument("--work", required=True)
    s.add_argument("--kidbench", required=True, help="the side_by_side bench executable")
    s.add_argument("--plugin-dir", required=True, help="folder holding the kid plugin library")
    s.add_argument("--cases", default="generate:tiny-m,sft:tiny-m")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--reps", type=int, default=3)
    s.add_argument("--steps", type=int, default=5)
    s.add_argument("--freq", type=int, default=4000, help="perf sampling frequency (Hz)")
    s.add_argument("--top", type=int, default=0, help="also print the N most sampled symbols")
    s.add_argument("--json", help="write the split here too")
    s = sub.add_parser("table")
    s.add_argument("results")
    s = sub.add_parser("compare")
    s.add_argument("--work", required=True)
    s.add_argument("--kidbench", required=True, help="the side_by_side bench executable")
    s.add_argument("--plugin-dir", required=True, help="folder holding the kid plugin library")
    s.add_argument("--cases", default="generate:tiny-m,sft:tiny-m,kid:tiny-s+tiny-m")
    s.add_argument("--threads", default="1,2")
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--reps", type=int, default=3)
    s.add_argument("--reps-large", type=int, default=1)
    s.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
    if a.cmd == "table":
        print(table(json.load(open(a.results))))
        return
    {"prepare": cmd_prepare, "hf-generate": cmd_hf_generate, "hf-profile": cmd_hf_profile, "hf-train": cmd_hf_train, "compare": cmd_compare, "perf-split": cmd_perf_split}[a.cmd](a)


if __name__ == "__main__":
    main()
