#!/usr/bin/env python3
"""Tests of scripts/gguf_to_hf.py on tiny GGUF files written here with `gguf.GGUFWriter`.

    scripts/models.sh --self-test        # runs this in the converter's venv

* a tiny llama (GQA 4/2 heads) whose Q/K were permuted the way llama.cpp's converter does: the
  converted folder has the original Q/K back exactly (F32 tensors), Q8_0/F16 tensors equal
  gguf's own dequantization, the config and tokenizer files carry the metadata;
* a truncated file, an unknown type id and a type gguf cannot dequantize each stop the
  converter with a message that names the tensor.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

HERE = os.path.dirname(os.path.abspath(__file__))
CONVERTER = os.path.join(HERE, "gguf_to_hf.py")
H, F, HEADS, KV, HD, LAYERS = 64, 96, 4, 2, 16, 1


def llama_cpp_permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute (what the GGUF holds)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def byte_alphabet():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_gguf(path, types):
    rng = np.random.default_rng(0)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    alphabet = byte_alphabet()
    merges = ["Ġ t", "h e", "i n", "Ġt he"]
    tokens = specials + alphabet + ["Ġt", "he", "in", "Ġthe"]
    ttypes = [3] * len(specials) + [1] * (len(tokens) - len(specials))
    v = len(tokens)
    hf = {"model.embed_tokens.weight": rng.normal(size=(v, H)), "model.norm.weight": 1 + 0.1 * rng.normal(size=H)}
    p = "model.layers.0."
    hf.update({
        p + "self_attn.q_proj.weight": rng.normal(size=(HEADS * HD, H)),
        p + "self_attn.k_proj.weight": rng.normal(size=(KV * HD, H)),
        p + "self_attn.v_proj.weight": rng.normal(size=(KV * HD, H)),
        p + "self_attn.o_proj.weight": rng.normal(size=(H, HEADS * HD)),
        p + "mlp.gate_proj.weight": rng.normal(size=(F, H)),
        p + "mlp.up_proj.weight": rng.normal(size=(F, H)),
        p + "mlp.down_proj.weight": rng.normal(size=(H, F)),
        p + "input_layernorm.weight": 1 + 0.1 * rng.normal(size=H),
        p + "post_attention_layernorm.weight": 1 + 0.1 * rng.normal(size=H),
    })
    hf = {k: x.astype(np.float32) for k, x in hf.items()}
    names = {
        "token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
        "blk.0.attn_q.weight": p + "self_attn.q_proj.weight", "blk.0.attn_k.weight": p + "self_attn.k_proj.weight",
        "blk.0.attn_v.weight": p + "self_attn.v_proj.weight", "blk.0.attn_output.weight": p + "self_attn.o_proj.weight",
        "blk.0.ffn_gate.weight": p + "mlp.gate_proj.weight", "blk.0.ffn_up.weight": p + "mlp.up_proj.weight",
        "blk.0.ffn_down.weight": p + "mlp.down_proj.weight", "blk.0.attn_norm.weight": p + "input_layernorm.weight",
        "blk.0.ffn_norm.weight": p + "post_attention_layernorm.weight",
    }
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(LAYERS)
    w.add_context_length(128)
    w.add_embedding_length(H)
    w.add_feed_forward_length(F)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV)
    w.add_rope_dimension_count(HD)
    w.add_rope_freq_base(100000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(v)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(ttypes)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_chat_template("{{ messages }}")
    stored = {}
    for g, n in names.items():
        x = hf[n]
        if g == "blk.0.attn_q.weight":
            x = llama_cpp_permute(x, HEADS, HEADS)
        elif g == "blk.0.attn_k.weight":
            x = llama_cpp_permute(x, HEADS, KV)
        qt = types.get(g, T.F32)
        data = x if qt == T.F32 else gguf.quants.quantize(x, qt)
        w.add_tensor(g, data, raw_dtype=qt)
        # What the converter must produce: gguf's dequantization (Q/K stay F32 here, so their
        # expected value is the unpermuted original).
        stored[n] = hf[n] if qt == T.F32 else gguf.quants.dequantize(data, qt).reshape(x.shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return hf, stored, tokens


def convert(src, out):
    r = subprocess.run([sys.executable, CONVERTER, src, out], capture_output=True, text=True)
    return r.returncode, r.stderr.strip()


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4").reshape(v["shape"])
            for k, v in header.items()}


def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")
    print(f"ok: {what}")


def main():
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "tiny.gguf")
        types = {"token_embd.weight": T.Q8_0, "blk.0.ffn_up.weight": T.Q4_1,
                 "blk.0.ffn_down.weight": T.Q8_0, "blk.0.attn_v.weight": T.F16}
        hf, stored, tokens = tiny_gguf(src, types)
        out = os.path.join(d, "hf")
        rc, err = convert(src, out)
        check(rc == 0, f"a tiny llama GGUF converts ({err.splitlines()[-1] if err else ''})")
        got = read_safetensors(os.path.join(out, "model.safetensors"))
        check(set(got) == set(hf), "every tensor is there under its HF name, no lm_head (tied)")
        for n in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"):
            check(np.array_equal(got[n], hf[n]), f"{n}: llama.cpp's rotary permutation undone exactly")
        for n in hf:
            check(np.array_equal(got[n], stored[n]), f"{n}: equals gguf's dequantization in HF layout")
        cfg = json.load(open(os.path.join(out, "config.json")))
        check((cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["vocab_size"])
              == (HEADS, KV, HD, len(tokens)), "config.json carries the metadata")
        check(cfg["rms_norm_eps"] == 1e-5 and cfg["rope_theta"] == 100000.0 and cfg["tie_word_embeddings"],
              "float metadata reads as written (1e-05, not 9.99e-06)")
        tj = json.load(open(os.path.join(out, "tokenizer.json")))
        check(tj["model"]["vocab"]["Ġthe"] == len(tokens) - 1 and tj["model"]["merges"][-1] == "Ġt he",
              "tokenizer.json has the vocabulary and merges")
        check([t["id"] for t in tj["added_tokens"] if t["special"]] == [0, 1, 2], "control tokens are special")
        check(tj["pre_tokenizer"]["pretokenizers"][0] == {"type": "Digits", "individual_digits": True},
              "the smollm pre-tokenizer splits digits")
        tc = json.load(open(os.path.join(out, "tokenizer_config.json")))
        check((tc["eos_token"], tc["pad_token"], tc["unk_token"], tc["chat_template"])
              == ("<|im_end|>", "<|im_end|>", "<|endoftext|>", "{{ messages }}"), "tokenizer_config.json")

        blob = open(src, "rb").read()
        cut = os.path.join(d, "cut.gguf")
        open(cut, "wb").write(blob[: len(blob) - 100])
        rc, err = convert(cut, os.path.join(d, "o1"))
        check(rc != 0 and "truncated GGUF: tensor" in err, f"a truncated file is named as such: {err}")
        open(cut, "wb").write(blob[:200])
        rc, err = convert(cut, os.path.join(d, "o2"))
        check(rc != 0 and "truncated or damaged" in err, f"a cut header too: {err}")
        name = b"token_embd.weight"
        at = blob.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
        type_at = at + 4 + 8 * struct.unpack_from("<I", blob, at)[0]
        for type_id, want in ((99, "tensor token_embd.weight: unknown GGML quantization type id 99"),
                              (int(T.Q8_1), "tensor token_embd.weight: quantization type Q8_1")):
            b = bytearray(blob)
            struct.pack_into("<I", b, type_at, type_id)
            open(cut, "wb").write(b)
            rc, err = convert(cut, os.path.join(d, "o3"))
            check(rc != 0 and want in err, f"type id {type_id} is named with its tensor: {err[:120]}")
    print("gguf_to_hf: all tests passed")


if __name__ == "__main__":
    main()
