#!/usr/bin/env python3
"""Generate the reference fixtures of the model-file tests (tests/test_gguf.c,
tests/test_safetensors.c, tests/test_model_cli.c) with the reference implementations:

  tests/data/model/gguf_py_small.gguf (+ .json)     written by gguf-py's GGUFWriter: one key of
                                                    every value type, arrays, tensors of several
                                                    types; the .json lists what gguf-py's
                                                    GGUFReader reads back (our reader must agree)
  tests/data/model/gguf_py_align64.gguf (+ .json)   the same with general.alignment = 64
  tests/data/model/st_small.safetensors (+ .json)   written by safetensors.numpy.save_file
  tests/data/model/hf_tiny/                         a tiny llama checkpoint folder: config.json,
                                                    model.safetensors (BF16), tokenizer.json (a
                                                    byte-level BPE trained by `tokenizers`),
                                                    tokenizer_config.json
  tests/data/model/hf_tiny_sharded/                 the same weights in 2 shards + index.json
  tests/data/model/real_models.json                 what gguf-py reads from the real models
                                                    (../shared stories260K, cached SmolLM2):
                                                    metadata values and sha256 of tensor bytes

Run from the repository root:  python3 tests/ref/gen_model_fixtures.py
Needs: pip install gguf safetensors tokenizers numpy (versions recorded in the .json files).
"""
import hashlib
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGUFWriter, GGUFReader, GGUFValueType as VT, GGMLQuantizationType as QT
import safetensors
from safetensors.numpy import save_file
import tokenizers
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers

OUT = "tests/data/model"
SHARED = os.environ.get("TW_SHARED", "../shared")
SMOLLM2 = os.environ.get("TW_SMOLLM2", os.path.expanduser("~/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf"))


def versions():
    return {"gguf": getattr(gguf, "__version__", None) or pkg_version("gguf"),
            "safetensors": safetensors.__version__, "tokenizers": tokenizers.__version__, "numpy": np.__version__}


def pkg_version(name):
    from importlib.metadata import version
    return version(name)


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


def field_value(f):
    """A GGUFReader field as JSON: {"type": name, "value": v} or an array description."""
    t = f.types[0]
    if t == VT.ARRAY:
        sub = f.types[-1] if len(f.types) > 1 else None
        vals = f.contents()
        out = {"type": "array", "elem": sub.name.lower() if sub is not None else None, "n": len(f.data)}
        if sub == VT.STRING:
            out["values"] = vals
        else:
            # integers as decimal strings: uint64 values do not fit a JSON reader's int64
            out["values"] = [float(v) if isinstance(v, float) else (bool(v) if sub == VT.BOOL else str(int(v))) for v in vals]
        return out
    v = f.contents()
    if t == VT.STRING:
        # keep exact bytes (may hold NUL / non-UTF-8): hex
        raw = bytes(f.parts[f.data[0]])
        return {"type": "string", "value": v, "hex": raw.hex()}
    if t == VT.BOOL:
        return {"type": "bool", "value": bool(v)}
    if t in (VT.FLOAT32, VT.FLOAT64):
        return {"type": t.name.lower(), "value": float(v)}
    return {"type": t.name.lower(), "value": str(int(v))}


def describe(path, with_values=True):
    r = GGUFReader(path)
    kv = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        kv[name] = field_value(f) if with_values else None
    tensors = []
    for t in r.tensors:
        tensors.append({
            "name": t.name,
            "type": QT(t.tensor_type).name.lower(),
            "ne": [int(x) for x in t.shape],          # gguf-py's shape is GGML order (ne[0] first)
            "offset": int(t.data_offset),             # absolute file offset of the data
            "nbytes": int(t.n_bytes),
            "sha256": sha(np.ascontiguousarray(t.data).tobytes()),
        })
    return {"kv": kv, "tensors": tensors}


def gen_gguf_small(path, alignment=None):
    rng = np.random.default_rng(1234)
    w = GGUFWriter(path, "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 4294967295)
    w.add_int32("t.i32", -2147483648)
    w.add_float32("t.f32", -1.5)
    w.add_bool("t.bool_true", True)
    w.add_bool("t.bool_false", False)
    w.add_string("t.str", "h\u00e9llo \u2581w\u00f6rld")
    w.add_string("t.str_nul", "a\x00b")
    w.add_string("t.str_empty", "")
    w.add_uint64("t.u64", 18446744073709551615)
    w.add_int64("t.i64", -9223372036854775808)
    w.add_float64("t.f64", 3.141592653589793)
    w.add_key_value("t.arr_u8", [0, 1, 255], VT.ARRAY, VT.UINT8)
    w.add_key_value("t.arr_i16", [-32768, 7, 32767], VT.ARRAY, VT.INT16)
    w.add_key_value("t.arr_i32", [-1, 0, 2147483647, 5], VT.ARRAY, VT.INT32)
    w.add_key_value("t.arr_u64", [18446744073709551615, 0], VT.ARRAY, VT.UINT64)
    w.add_key_value("t.arr_f32", [0.5, -2.25, 1e-3], VT.ARRAY, VT.FLOAT32)
    w.add_key_value("t.arr_f64", [1.0 / 3.0], VT.ARRAY, VT.FLOAT64)
    w.add_key_value("t.arr_bool", [True, False, True], VT.ARRAY, VT.BOOL)
    w.add_key_value("t.arr_str", ["", "x", "\u0120t", "long string with spaces"], VT.ARRAY, VT.STRING)
    a = rng.standard_normal((3, 5)).astype(np.float32)                    # ne [5, 3]
    w.add_tensor("f32.weight", a)
    b = rng.standard_normal((2, 7)).astype(np.float16)                    # ne [7, 2]
    w.add_tensor("f16.weight", b)
    c = rng.standard_normal((2, 64)).astype(np.float32)                   # ne [64, 2]
    w.add_tensor("q8_0.weight", gguf.quants.quantize(c, QT.Q8_0), raw_dtype=QT.Q8_0)
    d = rng.standard_normal((2, 2, 32)).astype(np.float32)                # ne [32, 2, 2]
    w.add_tensor("q4_0.weight", gguf.quants.quantize(d, QT.Q4_0), raw_dtype=QT.Q4_0)
    e = rng.standard_normal((1, 1, 2, 3)).astype(np.float32)              # ne [3, 2, 1, 1]
    w.add_tensor("bf16.weight", gguf.quants.quantize(e, QT.BF16), raw_dtype=QT.BF16)
    f = np.arange(6, dtype=np.int32)                                      # ne [6]
    w.add_tensor("i32.weight", f)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    d = describe(path)
    d["alignment"] = alignment or 32
    d["file_size"] = os.path.getsize(path)
    d["generator"] = versions()
    with open(path[:-5] + ".json", "w") as fp:
        json.dump(d, fp, indent=1, ensure_ascii=False)


def gen_safetensors():
    rng = np.random.default_rng(99)
    tensors = {
        "a.f32": rng.standard_normal((2, 3)).astype(np.float32),
        "b.f16": rng.standard_normal((4,)).astype(np.float16),
        "c.i64": np.arange(3, dtype=np.int64),
        "d.scalar": np.array(2.5, dtype=np.float32),
        "e.u8": np.arange(5, dtype=np.uint8).reshape(1, 5),
    }
    path = f"{OUT}/st_small.safetensors"
    save_file(tensors, path, metadata={"format": "np", "note": "tunewise fixture"})
    with open(path, "rb") as fp:
        raw = fp.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    desc = {"header_len": n, "file_size": len(raw), "metadata": header.get("__metadata__"), "tensors": {},
            "generator": versions()}
    for k, v in tensors.items():
        desc["tensors"][k] = {"dtype": header[k]["dtype"], "shape": list(v.shape),
                              "data_offsets": header[k]["data_offsets"], "sha256": sha(v.tobytes())}
    with open(f"{OUT}/st_small.json", "w") as fp:
        json.dump(desc, fp, indent=1)


def bf16(a):
    """float32 -> bfloat16 bits (round to nearest even), as uint16."""
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r


def gen_hf_tiny():
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 300,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
    }
    E, F, V, L, H, KV = 32, 64, 300, 2, 4, 2
    hd = E // H
    rng = np.random.default_rng(7)
    shapes = {"model.embed_tokens.weight": (V, E), "model.norm.weight": (E,), "lm_head.weight": (V, E)}
    for l in range(L):
        p = f"model.layers.{l}."
        shapes.update({p + "input_layernorm.weight": (E,), p + "self_attn.q_proj.weight": (H * hd, E),
                       p + "self_attn.k_proj.weight": (KV * hd, E), p + "self_attn.v_proj.weight": (KV * hd, E),
                       p + "self_attn.o_proj.weight": (E, H * hd), p + "post_attention_layernorm.weight": (E,),
                       p + "mlp.gate_proj.weight": (F, E), p + "mlp.up_proj.weight": (F, E),
                       p + "mlp.down_proj.weight": (E, F)})
    # safetensors.numpy has no bfloat16 dtype: write the BF16 bits as uint16 then patch the dtype
    tensors = {k: bf16(rng.standard_normal(s).astype(np.float32) * 0.02) for k, s in shapes.items()}

    def write_st(path, names):
        save_file({k: tensors[k] for k in names}, path, metadata={"format": "pt"})
        with open(path, "rb") as fp:
            raw = bytearray(fp.read())
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        for k, v in header.items():
            if k != "__metadata__":
                assert v["dtype"] == "U16"
                v["dtype"] = "BF16"
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)   # safetensors pads the header with spaces to a multiple of 8
        with open(path, "wb") as fp:
            fp.write(len(h).to_bytes(8, "little") + h + raw[8 + n:])
        # the rewritten file must still load with the reference implementation
        from safetensors import safe_open
        with safe_open(path, framework="numpy") as f:
            assert sorted(f.keys()) == sorted(names)

    d1 = f"{OUT}/hf_tiny"
    d2 = f"{OUT}/hf_tiny_sharded"
    os.makedirs(d1, exist_ok=True)
    os.makedirs(d2, exist_ok=True)
    names = list(shapes)
    write_st(f"{d1}/model.safetensors", names)
    half = len(names) // 2
    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    write_st(f"{d2}/{s1}", names[:half])
    write_st(f"{d2}/{s2}", names[half:])
    wm = {k: (s1 if i < half else s2) for i, k in enumerate(names)}
    with open(f"{d2}/model.safetensors.index.json", "w") as fp:
        json.dump({"metadata": {"total_size": sum(int(np.prod(s)) * 2 for s in shapes.values())}, "weight_map": wm}, fp,
                  indent=1)
    for d in (d1, d2):
        with open(f"{d}/config.json", "w") as fp:
            json.dump(cfg, fp, indent=1)

    # a byte-level BPE of 300 tokens (3 specials + 256 bytes + 41 merges)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = ["Once upon a time there was a little cat.", "The cat sat on the mat.", "Tunewise reads model files."] * 20
    tok.train_from_iterator(text, trainer)
    tok.save(f"{d1}/tokenizer.json")
    tc = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
          "chat_template": "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>\n{% endfor %}"}
    with open(f"{d1}/tokenizer_config.json", "w") as fp:
        json.dump(tc, fp, indent=1)
    # expectations: the llama3 rope factors as transformers computes them
    # (_compute_llama3_parameters: wavelen = 2 pi / inv_freq; smooth interpolation between)
    base, dim = cfg["rope_theta"], hd
    inv = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    rs = cfg["rope_scaling"]
    lo_w = rs["original_max_position_embeddings"] / rs["low_freq_factor"]
    hi_w = rs["original_max_position_embeddings"] / rs["high_freq_factor"]
    fac = []
    for f in inv:
        wl = 2 * np.pi / f
        if wl < hi_w:
            fac.append(1.0)
        elif wl > lo_w:
            fac.append(rs["factor"])
        else:
            s = (rs["original_max_position_embeddings"] / wl - rs["low_freq_factor"]) / (rs["high_freq_factor"] - rs["low_freq_factor"])
            fac.append(1.0 / ((1 - s) / rs["factor"] + s))
    enc = tok.encode("Once upon a time")
    with open(f"{OUT}/hf_tiny.json", "w") as fp:
        json.dump({"rope_factors": fac, "n_tokens": tok.get_vocab_size(), "encode_once_upon_a_time": enc.ids,
                   "sha256": {k: sha(v.tobytes()) for k, v in tensors.items()}, "generator": versions()}, fp, indent=1)


def gen_real():
    out = {"generator": versions()}
    p = f"{SHARED}/models/stories260K/stories260K.gguf"
    if os.path.exists(p):
        d = describe(p)
        for k, v in d["kv"].items():
            if v["type"] == "array":
                v["values"] = v["values"][:5]
                v["first5_only"] = True
        out["stories260K"] = d
    else:
        print("warning: no", p, file=sys.stderr)
    if os.path.exists(SMOLLM2):
        d = describe(SMOLLM2)
        for k, v in d["kv"].items():
            if v["type"] == "array":
                v["values"] = v["values"][:5]
                v["first5_only"] = True
            if k == "tokenizer.chat_template":
                v["value"] = v["value"][:60]
                v.pop("hex")
        keep = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight", "blk.29.ffn_down.weight",
                "output_norm.weight"}
        out["smollm2"] = {"kv": d["kv"], "n_tensors": len(d["tensors"]),
                          "tensors": [t for t in d["tensors"] if t["name"] in keep]}
    else:
        print("warning: no", SMOLLM2, "(run scripts/get-models.sh)", file=sys.stderr)
    with open(f"{OUT}/real_models.json", "w") as fp:
        json.dump(out, fp, indent=1, ensure_ascii=False)


def main():
    os.makedirs(OUT, exist_ok=True)
    gen_gguf_small(f"{OUT}/gguf_py_small.gguf")
    gen_gguf_small(f"{OUT}/gguf_py_align64.gguf", alignment=64)
    gen_safetensors()
    gen_hf_tiny()
    gen_real()
    print("wrote fixtures under", OUT)


if __name__ == "__main__":
    main()
