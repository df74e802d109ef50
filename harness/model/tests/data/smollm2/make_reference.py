#!/usr/bin/env python3
"""Reference logits of SmolLM2-135M-Instruct (converted by scripts/models.sh) from HF transformers.

    scripts/models.sh smollm2-135m                         # the model folder
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch==2.11.0 transformers gguf accelerate
    /tmp/hfenv/bin/python harness/model/tests/data/smollm2/make_reference.py \
        [--model DIR] [--gguf FILE.gguf]

Writes reference.json beside this script: for each of three prompts (the chat prompt "What is
the capital of France?" through the model's chat template, a CodeS-style text-to-SQL prompt, a
line of prose with digits and non-ASCII text) the token ids, and at every position the top-5 ids
and logits, the argmax, the sum of all logits and the logits of a fixed sample of ids; then the
greedy continuation of the chat prompt (ids and text). fp32 on CPU, eager attention.

With --gguf, the same logits are also computed from the GGUF by transformers' own GGUF loader
(its own dequantization and Q/K un-permutation) and the largest difference is recorded, with
whether its tokenizer gives the same ids: a check of the conversion that does not go through
scripts/gguf_to_hf.py. Measured: torch 2.11.0, transformers 5.24.0, max |diff| 0.0, same ids.
"""

import argparse
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))

PROMPTS = [
    {"name": "chat_capital", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
    {"name": "codes_sql", "text": (
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);\n"
        "/* 3 example rows: (1, 'Joe Sharp', 'Netherlands', 52) */\n"
        "-- Question: How many singers from France are older than 30?\n"
        "SELECT")},
    {"name": "prose_digits", "text": "In 2024, Zürich had 443,037 inhabitants; São Paulo had over 11 million."},
]
PROBE_IDS = list(range(0, 49152, 3072)) + [49151]  # 17 fixed ids across the vocabulary
GREEDY_TOKENS = 24


def models_root():
    if os.environ.get("KIDBENCH_MODELS"):
        return os.environ["KIDBENCH_MODELS"]
    home = os.environ.get("KIDBENCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "kidbench")
    return os.path.join(home, "models")


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(models_root(), "smollm2-135m"))
    ap.add_argument("--gguf", help="the GGUF the folder was converted from (cross-check)")
    ap.add_argument("--out", default=os.path.join(HERE, "reference.json"))
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        sys.exit(f"{args.model} has no config.json: run scripts/models.sh smollm2-135m first")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(
        args.model, dtype=torch.float32, attn_implementation="eager").eval()
    assert model.config.vocab_size == 49152
    source = json.load(open(os.path.join(args.model, "kidbench_source.json")))

    prompts, all_logits = [], []
    for p in PROMPTS:
        if "messages" in p:
            text = tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
        else:
            text = p["text"]
        ids = tok(text, add_special_tokens=False)["input_ids"]
        logits = logits_of(model, ids)
        all_logits.append(logits)
        top = torch.topk(logits, 5, dim=-1)
        entry = {"name": p["name"], **({"messages": p["messages"]} if "messages" in p else {}),
                 "text": text, "input_ids": ids,
                 "top5_ids": top.indices.tolist(),
                 "top5_logits": [[round(x, 5) for x in row] for row in top.values.tolist()],
                 "argmax": logits.argmax(-1).tolist(),
                 "sum": [round(x, 3) for x in logits.double().sum(-1).tolist()],
                 "probe_logits": [[round(x, 5) for x in row] for row in logits[:, PROBE_IDS].tolist()]}
        prompts.append(entry)
        print(f"{p['name']}: {len(ids)} tokens, argmax tail {tok.decode(entry['argmax'][-3:])!r}", file=sys.stderr)

    chat = prompts[0]
    with torch.no_grad():
        out = model.generate(torch.tensor([chat["input_ids"]]), attention_mask=torch.ones(1, len(chat["input_ids"]), dtype=torch.long),
                             max_new_tokens=GREEDY_TOKENS, do_sample=False,
                             eos_token_id=model.config.eos_token_id, pad_token_id=model.config.eos_token_id)
    new = out[0, len(chat["input_ids"]):].tolist()
    if model.config.eos_token_id in new:
        new = new[: new.index(model.config.eos_token_id) + 1]
    greedy = {"prompt": chat["name"], "max_new_tokens": GREEDY_TOKENS, "ids": new,
              "text": tok.decode(new, skip_special_tokens=True)}
    print(f"greedy: {greedy['text']!r}", file=sys.stderr)

    cross = None
    if args.gguf:
        g = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(os.path.abspath(args.gguf)), gguf_file=os.path.basename(args.gguf),
            dtype=torch.float32, attn_implementation="eager").eval()
        diff = max(float((logits_of(g, p["input_ids"]) - l).abs().max()) for p, l in zip(prompts, all_logits))
        gtok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(args.gguf)),
                                             gguf_file=os.path.basename(args.gguf))
        same_ids = all(gtok(p["text"], add_special_tokens=False)["input_ids"] == p["input_ids"] for p in prompts)
        cross = {"transformers_gguf_loader_max_abs_logit_diff": diff,
                 "transformers_gguf_tokenizer_same_ids": same_ids}
        print(f"cross-check with transformers' GGUF loader: {cross}", file=sys.stderr)

    ref = {
        "about": "HF transformers reference for harness/model/tests/smollm2.rs; made by make_reference.py",
        "model": "smollm2-135m",
        "source": {k: source.get(k) for k in ("wheel", "wheel_sha256", "gguf_file", "gguf_sha256", "parameters", "note")},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "dtype": "float32",
        "attention": "eager",
        "vocab_size": model.config.vocab_size,
        "probe_ids": PROBE_IDS,
        "prompts": prompts,
        "greedy": greedy,
        "cross_check": cross,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out):,} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
