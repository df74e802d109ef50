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

The kidbench side is `harness/train/benches/side_by_side.rs` (`generate` / `train`), which drives
kidbench's own trainer (`kidbench_train::trainer::train`, the plugins `sft` and `kid`).
"""

import argparse
import json
import math
import os
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
            t0 = time.perf_counter()
            out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
            out.logits.argmax(-1)
            t1 = time.perf_counter()
            del out
            t2 = time.perf_counter()
            gen = model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
            t3 = time.perf_counter()
            assert gen.shape == (BATCH, ids.shape[1] + NEW_TOKENS), gen.shape
            if r > 0:
                runs.append({"prefill_s": t1 - t0, "generate_s": t3 - t2})
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
    times, losses = [], []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
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
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        t1 = time.perf_counter()
        if step >= a.warmup:
            times.append(t1 - t0)
    tokens = int(mask.sum())
    print(json.dumps({"side": "transformers", "case": f"train-{a.method}", "threads": a.threads, "step_s": times, "tokens_per_step": tokens, "losses": losses}))


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


def cmd_compare(a):
    work = a.work
    inputs = os.path.join(work, "inputs.json")
    cases = []
    for c in a.cases.split(","):
        kind, _, rest = c.partition(":")
        if kind == "generate":
            cases.append(("generate", rest, None))
        elif kind in ("sft", "kid"):
            student, _, teacher = rest.partition("+")
            cases.append((kind, student, teacher or None))
        else:
            raise SystemExit(f"unknown case {c!r} (generate:MODEL, sft:MODEL, kid:STUDENT+TEACHER)")

    def folder(m):
        return m if os.path.isabs(m) else os.path.join(work, m)

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    results = []
    for kind, m, teacher in cases:
        for threads in [int(t) for t in a.threads.split(",")]:
            reps = a.reps_large if "smol" in m else a.reps
            if kind == "generate":
                kb = [a.kidbench, "generate", "--model", folder(m), "--inputs", inputs, "--threads", str(threads), "--reps", str(reps)]
                hf = [sys.executable, __file__, "hf-generate", "--model", folder(m), "--inputs", inputs, "--threads", str(threads), "--reps", str(reps)]
            else:
                extra = ["--teacher", folder(teacher)] if teacher else []
                common = ["--method", kind, "--student", folder(m), *extra, "--inputs", inputs, "--threads", str(threads), "--steps", str(a.steps), "--warmup", "2"]
                kb = [a.kidbench, "train", *common, "--plugin-dir", a.plugin_dir]
                hf = [sys.executable, __file__, "hf-train", *common]
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
    {"prepare": cmd_prepare, "hf-generate": cmd_hf_generate, "hf-profile": cmd_hf_profile, "hf-train": cmd_hf_train, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    main()
