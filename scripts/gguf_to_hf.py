#!/usr/bin/env python3
"""Converts a llama-architecture GGUF file into a Hugging Face model folder (fp32).

    python3 scripts/gguf_to_hf.py MODEL.gguf OUT_DIR [--provenance JSON]

Run by `scripts/models.sh` inside a venv that holds llama.cpp's `gguf` package (and numpy):
the GGUF is read and every tensor dequantized by `gguf` (`gguf.quants.dequantize`); nothing
here decodes a quantized block by hand. What this script does itself:

* names: `token_embd` -> `model.embed_tokens`, `blk.N.attn_q` -> `model.layers.N.self_attn.q_proj`,
  `ffn_gate` -> `mlp.gate_proj`, `attn_norm` -> `input_layernorm`, `ffn_norm` ->
  `post_attention_layernorm`, `output_norm` -> `model.norm`, `output` -> `lm_head` (absent:
  tied embeddings);
* layout: GGUF lists dimensions fastest first, so a GGUF [in, out] matrix is the HF [out, in]
  one (the reader's numpy arrays are already in that order); llama.cpp's converter permutes
  the rows of Q and K for its rotary layout, which is undone here (reshape to
  (heads, head_dim/2, 2, in), swap axes 1 and 2);
* config.json, generation_config.json from the GGUF metadata; tokenizer.json (byte-level BPE:
  vocabulary, merges, pre-tokenizer), tokenizer_config.json (special tokens, chat template) and
  special_tokens_map.json from the embedded `gpt2` tokenizer;
* model.safetensors (fp32, tensors in name order, deterministic).

Bad input stops with one line naming the problem: a file that is not GGUF or is truncated (the
tensor that runs past the end), a quantization type `gguf` cannot dequantize (the tensor and the
type), an architecture or tokenizer this converter does not know.
"""

import argparse
import json
import os
import struct
import sys
import time

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.constants import GGML_QUANT_SIZES
except ImportError as e:  # pragma: no cover - environment problem
    sys.exit(f"gguf_to_hf: error: {e}; run it through scripts/models.sh (it installs `gguf` in a venv)")


class ConversionError(Exception):
    pass


# --- reading ------------------------------------------------------------------------------------

def _supported_types():
    """The quantization types `gguf.quants.dequantize` can decode."""
    traits = getattr(gguf.quants, "_type_traits", {})
    return {GGMLQuantizationType.F32, GGMLQuantizationType.F16} | set(traits)


class CheckedReader(GGUFReader):
    """`GGUFReader` that names the tensor when its type is unknown or its data runs past the end
    of the file (the plain reader fails there with an enum or reshape error)."""

    def _build_tensors(self, start_offs, fields):
        size = len(self.data)
        supported = _supported_types()
        for field in fields:
            _name_len, name_data, _n_dims, dims, raw_dtype, offset_tensor = field.parts
            name = bytes(name_data).decode("utf-8", "replace")
            type_id = int(raw_dtype[0])
            try:
                qtype = GGMLQuantizationType(type_id)
            except ValueError:
                raise ConversionError(
                    f"tensor {name}: unknown GGML quantization type id {type_id} "
                    f"(this gguf package knows {', '.join(t.name for t in GGMLQuantizationType)})"
                ) from None
            if qtype not in supported:
                raise ConversionError(
                    f"tensor {name}: quantization type {qtype.name} (id {type_id}) cannot be "
                    f"dequantized by gguf {gguf_version()}; supported: "
                    f"{', '.join(sorted(t.name for t in supported))}"
                )
            n_elems = int(np.prod(dims))
            block, type_size = GGML_QUANT_SIZES[qtype]
            if n_elems % block:
                raise ConversionError(
                    f"tensor {name}: {n_elems} elements are not a whole number of "
                    f"{qtype.name} blocks of {block}"
                )
            end = int(start_offs + offset_tensor[0]) + n_elems * type_size // block
            if end > size:
                raise ConversionError(
                    f"truncated GGUF: tensor {name} ({qtype.name}, {n_elems} elements) ends at "
                    f"byte {end:,} but the file has {size:,} bytes"
                )
        return super()._build_tensors(start_offs, fields)


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:
        return "?"


def open_gguf(path):
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror}") from None
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"GGUF":
        raise ConversionError(f"{path} is not a GGUF file (it starts with {head!r}, not b'GGUF')")
    try:
        return CheckedReader(path)
    except ConversionError as e:
        raise ConversionError(f"{path}: {e}") from None
    except Exception as e:  # the header itself is cut short or damaged
        raise ConversionError(
            f"{path} ({size:,} bytes) is truncated or damaged: its header cannot be read "
            f"({type(e).__name__}: {e})"
        ) from None


def field(reader, key, default=None, required=True):
    f = reader.fields.get(key)
    if f is None:
        if required and default is None:
            raise ConversionError(f"the GGUF has no metadata key {key}")
        return default
    return f.contents()


def f32(x):
    """A float32 metadata value as the shortest decimal that reads back as the same float32
    (1e-05, not 9.999999747378752e-06)."""
    return float(str(np.float32(x)))


# --- weights ------------------------------------------------------------------------------------

LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
TOP_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}


def hf_name(name):
    base, _, suffix = name.rpartition(".")
    if suffix not in ("weight", "bias"):
        raise ConversionError(f"tensor {name}: unexpected name (no .weight/.bias suffix)")
    if base in TOP_NAMES:
        return f"{TOP_NAMES[base]}.{suffix}"
    parts = base.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in LAYER_NAMES:
        return f"model.layers.{int(parts[1])}.{LAYER_NAMES[parts[2]]}.{suffix}"
    raise ConversionError(f"tensor {name}: no Hugging Face LLaMA name is known for it")


def unpermute(w, n_head):
    """Inverse of llama.cpp's `permute` of Q/K rows, which viewed each head's rows as (2, d/2)
    and stored them as (d/2, 2): view them as (heads, d/2, 2, ...) and swap axes 1 and 2."""
    rows = w.shape[0]
    if rows % (2 * n_head):
        raise ConversionError(f"cannot undo the rotary permutation: {rows} rows for {n_head} heads")
    return (
        w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def convert_weights(reader, cfg):
    n_head = cfg["num_attention_heads"]
    n_kv = cfg["num_key_value_heads"]
    out = {}
    for t in reader.tensors:
        name = hf_name(t.name)
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        # The reader's array lists GGUF's dimensions in reverse (slowest first): the HF layout.
        want = tuple(int(d) for d in reversed(t.shape.tolist()))
        w = np.ascontiguousarray(w.reshape(want), dtype=np.float32)
        if t.name.endswith("attn_q.weight"):
            w = unpermute(w, n_head)
        elif t.name.endswith("attn_k.weight"):
            w = unpermute(w, n_kv)
        if not np.isfinite(w).all():
            raise ConversionError(f"tensor {t.name}: dequantized values are not all finite")
        if name in out:
            raise ConversionError(f"tensor {t.name}: {name} appears twice")
        out[name] = w
    check_shapes(out, cfg)
    return out


def check_shapes(w, cfg):
    h, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = cfg["head_dim"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    want = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,)}
    if not cfg["tie_word_embeddings"]:
        want["lm_head.weight"] = (v, h)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        want.update({
            p + "self_attn.q_proj.weight": (q, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.gate_proj.weight": (f, h),
            p + "mlp.up_proj.weight": (f, h),
            p + "mlp.down_proj.weight": (h, f),
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
        })
    missing = sorted(set(want) - set(w))
    extra = sorted(set(w) - set(want))
    if missing or extra:
        raise ConversionError(
            f"tensor set does not match the config: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for k, shape in want.items():
        if w[k].shape != shape:
            raise ConversionError(f"{k}: shape {w[k].shape}, config expects {shape}")


def write_safetensors(path, tensors):
    names = sorted(tensors)
    header, offset = {}, 0
    for n in names:
        nbytes = tensors[n].nbytes
        header[n] = {"dtype": "F32", "shape": list(tensors[n].shape),
                     "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for n in names:
            f.write(tensors[n].astype("<f4", copy=False).tobytes())


# --- config -------------------------------------------------------------------------------------

def model_config(reader):
    arch = field(reader, "general.architecture")
    if arch != "llama":
        raise ConversionError(f"architecture {arch!r} is not supported (only llama)")
    a = lambda k, **kw: field(reader, f"llama.{k}", **kw)
    tokens = field(reader, "tokenizer.ggml.tokens")
    n_head = int(a("attention.head_count"))
    hidden = int(a("embedding_length"))
    head_dim = int(a("rope.dimension_count", default=hidden // n_head))
    names = {t.name for t in reader.tensors}
    scaling = field(reader, "llama.rope.scaling.type", required=False)
    if scaling not in (None, "none"):
        raise ConversionError(f"rope scaling {scaling!r} is not supported")
    tok_id = lambda k: field(reader, f"tokenizer.ggml.{k}", required=False)
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(a("vocab_size", default=len(tokens))),
        "hidden_size": hidden,
        "intermediate_size": int(a("feed_forward_length")),
        "num_hidden_layers": int(a("block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": int(a("attention.head_count_kv", default=n_head)),
        "head_dim": head_dim,
        "max_position_embeddings": int(a("context_length")),
        "rope_theta": f32(a("rope.freq_base", default=10000.0)),
        "rms_norm_eps": f32(a("attention.layer_norm_rms_epsilon")),
        "hidden_act": "silu",
        "attention_bias": "blk.0.attn_q.bias" in names,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": "output.weight" not in names,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "torch_dtype": "float32",
        "bos_token_id": tok_id("bos_token_id"),
        "eos_token_id": tok_id("eos_token_id"),
        "pad_token_id": tok_id("padding_token_id"),
    }
    if cfg["vocab_size"] != len(tokens):
        raise ConversionError(
            f"llama.vocab_size {cfg['vocab_size']} but the embedded tokenizer has {len(tokens)} tokens"
        )
    return cfg


# --- tokenizer ----------------------------------------------------------------------------------

BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
# llama.cpp's pre-tokenizer names -> HF pre-tokenizers. `smollm` (also starcoder, refact, ...)
# splits every digit off (`\p{N}`), then applies GPT-2's pattern: HF's Digits(individual) +
# ByteLevel(use_regex) is the same split.
PRE_TOKENIZERS = {
    "default": BYTE_LEVEL,
    "gpt2": BYTE_LEVEL,
    "smollm": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, BYTE_LEVEL]},
}
PRE_TOKENIZERS["starcoder"] = PRE_TOKENIZERS["refact"] = PRE_TOKENIZERS["smollm"]

CONTROL, USER_DEFINED = 3, 4


def tokenizer_files(reader, cfg):
    model = field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise ConversionError(f"tokenizer model {model!r} is not supported (only gpt2 byte-level BPE)")
    pre = field(reader, "tokenizer.ggml.pre", default="default", required=False)
    if pre not in PRE_TOKENIZERS:
        raise ConversionError(
            f"pre-tokenizer {pre!r} is not supported (known: {', '.join(sorted(PRE_TOKENIZERS))})"
        )
    tokens = list(field(reader, "tokenizer.ggml.tokens"))
    types = list(field(reader, "tokenizer.ggml.token_type"))
    merges = list(field(reader, "tokenizer.ggml.merges"))
    if len(set(tokens)) != len(tokens):
        raise ConversionError("the embedded vocabulary has duplicate tokens")
    text = lambda key: tokens[cfg[key]] if cfg.get(key) is not None else None
    unk_id = field(reader, "tokenizer.ggml.unknown_token_id", required=False)
    unk = tokens[unk_id] if unk_id is not None else None
    added = [
        {"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": types[i] == CONTROL}
        for i, tok in enumerate(tokens) if types[i] in (CONTROL, USER_DEFINED)
    ]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {tok: i for i, tok in enumerate(tokens)},
            "merges": merges,
        },
    }
    special = {k: v for k, v in {
        "bos_token": text("bos_token_id"),
        "eos_token": text("eos_token_id"),
        "pad_token": text("pad_token_id"),
        "unk_token": unk,
    }.items() if v is not None}
    extra_special = [t for t in (special.get("bos_token"), special.get("eos_token")) if t]
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token", default=False, required=False)),
        "add_eos_token": bool(field(reader, "tokenizer.ggml.add_eos_token", default=False, required=False)),
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": cfg["max_position_embeddings"],
        **special,
        "additional_special_tokens": extra_special,
        "added_tokens_decoder": {
            str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                             "single_word", "special")}
            for t in added
        },
    }
    template = field(reader, "tokenizer.chat_template", required=False)
    if template:
        tokenizer_config["chat_template"] = template
    special_map = {**special, "additional_special_tokens": extra_special}
    return tokenizer, tokenizer_config, special_map, pre


# --- main ---------------------------------------------------------------------------------------

def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def convert(src, out, provenance):
    t0 = time.time()
    reader = open_gguf(src)
    cfg = model_config(reader)
    tokenizer, tok_cfg, special_map, pre = tokenizer_files(reader, cfg)
    weights = convert_weights(reader, cfg)
    n_params = sum(w.size for w in weights.values())
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), weights)
    write_json(os.path.join(out, "config.json"), cfg)
    write_json(os.path.join(out, "generation_config.json"), {
        k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if cfg[k] is not None
    })
    write_json(os.path.join(out, "tokenizer.json"), tokenizer)
    write_json(os.path.join(out, "tokenizer_config.json"), tok_cfg)
    write_json(os.path.join(out, "special_tokens_map.json"), special_map)
    from collections import Counter
    types = Counter(t.tensor_type.name for t in reader.tensors)
    record = {
        **provenance,
        "converter": "scripts/gguf_to_hf.py",
        "gguf_package": gguf_version(),
        "gguf_file": os.path.basename(src),
        "gguf_bytes": os.path.getsize(src),
        "gguf_name": field(reader, "general.name", required=False),
        "gguf_license": field(reader, "general.license", required=False),
        "gguf_tensor_types": dict(sorted(types.items())),
        "pre_tokenizer": pre,
        "parameters": int(n_params),
        "note": "weights are the dequantized GGUF ones (fp32), not the original checkpoint",
    }
    write_json(os.path.join(out, "kidbench_source.json"), record)
    print(f"gguf_to_hf: {len(weights)} tensors, {n_params:,} parameters "
          f"({', '.join(f'{v} {k}' for k, v in sorted(types.items()))}) -> {out} "
          f"in {time.time() - t0:.1f} s", file=sys.stderr)
    return n_params


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gguf", help="the .gguf file")
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--provenance", default="{}",
                    help="JSON object recorded in OUT/kidbench_source.json (where the file came from)")
    ap.add_argument("--expect-params", type=int, help="fail unless the model has this many parameters")
    args = ap.parse_args()
    try:
        n = convert(args.gguf, args.out, json.loads(args.provenance))
        if args.expect_params is not None and n != args.expect_params:
            raise ConversionError(f"{n:,} parameters, expected {args.expect_params:,}")
    except ConversionError as e:
        sys.exit(f"gguf_to_hf: error: {e}")


if __name__ == "__main__":
    main()
