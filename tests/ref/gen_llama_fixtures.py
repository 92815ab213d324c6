#!/usr/bin/env python3
"""Generate the reference fixtures of the inference tests (tests/test_llama.c) with two
independent reference implementations:

  --hf        Hugging Face transformers (PyTorch, CPU, float32) on tiny random-weight models
              of each architecture, written as HF folders (config.json + model.safetensors,
              F32) under tests/data/llama/<name>/ with the reference logits of a few token
              sequences (logits.bin, float32 little-endian, every position):
                llama_tiny      LlamaForCausalLM, untied output, GQA 4/2
                llama3_tiny     LlamaForCausalLM with rope_scaling llama3 (factor 8, low 1,
                                high 4, original context 16), tied output, theta 500000
                qwen2_tiny      Qwen2ForCausalLM (q/k/v biases), tied output
                qwen3_tiny      Qwen3ForCausalLM (per-head q/k RMSNorm, head_dim 32 != hidden/heads)
              tests/data/llama/hf_models.json lists them, the sequences, and where each
              sequence's logits start in logits.bin.

  --llamacpp  llama.cpp through the PyPI package llama-cpp-python, on the real models:
                stories260K (../shared/models/stories260K/stories260K.gguf, F32 weights):
                  llama.cpp's tokens of several prompts, greedy continuations (arg max of the
                  last logits, fed back one token at a time, 48 tokens), the last prompt
                  position's logits, and, from a second context with an f32 KV cache, the
                  logits of every prompt position (vocabulary 512: all of them);
                SmolLM2-135M-Instruct Q4_1 (scripts/get-models.sh): for 3 raw and 2
                  chat-templated prompts, the next-token logits of the last position (top 64
                  ids + values, 256 fixed random ids, mean and std over the vocabulary), the
                  same for the model's weights dequantized to F32 (temporary GGUF, f32 KV
                  cache: no activation rounding); greedy chat completions (CHAT_PROMPTS, 6
                  prompts, up to N_GREEDY = 40 tokens) with llama.cpp's top-2 logit margin
                  and its 8 best logits at each step; and greedy completions of the first
                  N_GREEDY_F32 chat prompts on the F32 dequantization (f16 KV cache).
              Written to tests/data/llama/stories260k.json and smollm2.json
              (--smollm2-only: just the latter).
              llama.cpp runs with llama-cpp-python's settings: f16 KV cache, flash attention
              DISABLED (llama-cpp-python's flash_attn=False maps to
              LLAMA_FLASH_ATTN_TYPE_DISABLED; its context log says "flash_attn = disabled"),
              n_batch = n_ubatch = 512, logits_all, n_threads 2, except where an f32 cache is
              named. The llama.cpp build here is AVX-512 (its numerics depend on that:
              docs/inference.md, "Matching llama.cpp").

Run from the repository root:
    python3 tests/ref/gen_llama_fixtures.py --hf --llamacpp
Needs: pip install torch transformers safetensors numpy llama-cpp-python jinja2
(versions are recorded in the JSON files).
"""
import argparse
import json
import os
import sys

import numpy as np

OUT = "tests/data/llama"
SHARED = os.environ.get("TW_SHARED", "../shared")
STORIES = os.path.join(SHARED, "models/stories260K/stories260K.gguf")
SMOLLM2 = os.environ.get("TW_SMOLLM2", os.path.expanduser("~/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf"))


def pkg_version(name):
    from importlib.metadata import version
    return version(name)


# ---- tiny HF models --------------------------------------------------------------------

def hf_models():
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    common = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2)
    specs = [
        ("llama_tiny", LlamaConfig, LlamaForCausalLM,
         dict(common, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)),
        ("llama3_tiny", LlamaConfig, LlamaForCausalLM,
         dict(common, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 16})),
        ("qwen2_tiny", Qwen2Config, Qwen2ForCausalLM,
         dict(common, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True)),
        ("qwen3_tiny", Qwen3Config, Qwen3ForCausalLM,
         dict(common, head_dim=32, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True)),
    ]
    rng = np.random.default_rng(1234)
    # token sequences shared by all models: lengths 5, 11, 23 (positions up to 22, beyond
    # the llama3 model's original context of 16)
    seqs = [rng.integers(0, 256, size=n).tolist() for n in (5, 11, 23)]
    manifest = {"generator": "tests/ref/gen_llama_fixtures.py --hf",
                "versions": {"torch": torch.__version__, "transformers": pkg_version("transformers"),
                             "safetensors": pkg_version("safetensors"), "numpy": np.__version__},
                "sequences": seqs, "models": []}
    for name, Cfg, Model, kw in specs:
        torch.manual_seed(sum(map(ord, name)))
        cfg = Cfg(**kw)
        model = Model(cfg).eval().float()
        # init: larger than transformers' 0.02 so attention is far from uniform and the
        # logits spread (std ~1); norms and biases away from their 1 / 0 defaults
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("norm.weight"):
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                elif pname.endswith(".bias"):
                    p.copy_(0.3 * torch.randn_like(p))
                elif "embed_tokens" in pname:
                    p.copy_(torch.randn_like(p))
                else:
                    p.copy_(torch.randn_like(p) / np.sqrt(p.shape[1]))
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        cfg.save_pretrained(d)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        if cfg.tie_word_embeddings:
            sd.pop("lm_head.weight", None)
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        # drop keys transformers adds that do not describe the model (keeps the folder stable)
        with open(os.path.join(d, "config.json")) as f:
            cj = json.load(f)
        cj.pop("transformers_version", None)
        # transformers >= 5 writes "rope_parameters"; checkpoints on the Hub (and the
        # config reader, src/model/config.c) use the classic rope_theta + rope_scaling keys
        rp = cj.pop("rope_parameters", None)
        if rp is not None:
            rp = dict(rp)
            cj["rope_theta"] = rp.pop("rope_theta")
            if rp.get("rope_type", "default") != "default":
                cj["rope_scaling"] = rp
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cj, f, indent=2, sort_keys=True)
            f.write("\n")
        offsets, blobs, off = [], [], 0
        with torch.no_grad():
            for s in seqs:
                out = model(torch.tensor([s])).logits[0].float().numpy()   # (T, V)
                blobs.append(out.astype("<f4").tobytes())
                offsets.append(off)
                off += out.size
        with open(os.path.join(d, "logits.bin"), "wb") as f:
            f.write(b"".join(blobs))
        manifest["models"].append({"name": name, "dir": d, "arch": cfg.model_type, "n_vocab": cfg.vocab_size,
                                   "logits": os.path.join(d, "logits.bin"), "offsets": offsets,
                                   "logit_std": float(np.std(np.frombuffer(b"".join(blobs), "<f4")))})
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, logit std "
              f"{manifest['models'][-1]['logit_std']:.3f}")
    with open(os.path.join(OUT, "hf_models.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


# ---- llama.cpp on the real models ------------------------------------------------------

def llama_open(path, n_ctx=512, f32_kv=False):
    from llama_cpp import Llama
    kw = dict(type_k=0, type_v=0) if f32_kv else {}   # GGML_TYPE_F32; default f16
    return Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_ubatch=512, logits_all=True, seed=0, n_threads=2,
                 verbose=False, **kw)


def greedy(llm, toks, n, margins=None, rows=None):
    """Arg max of the last logits, fed back one token at a time (no sampler involved).
    margins (a list) gets, per step, the gap between the best and second-best logit: how
    close llama.cpp's own decision was; rows (a list) gets each step's logits (float32)."""
    llm.reset()
    llm.eval(toks)
    out = []
    for _ in range(n):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        nxt = int(np.argmax(row))
        if margins is not None:
            top2 = np.sort(row)[-2:]
            margins.append(round(float(top2[1] - top2[0]), 5))
        if rows is not None:
            rows.append(row.astype(np.float32))
        out.append(nxt)
        if nxt == llm.token_eos():
            break
        llm.eval([nxt])
    return out


def llamacpp_stories():
    import llama_cpp
    llm = llama_open(STORIES)
    llm32 = llama_open(STORIES, f32_kv=True)
    prompts = ["Once upon a time", "Lily and Tom", "The little dog", "One day, a girl named Sue went to the park.",
               "Tim had a red ball"]
    cases = []
    for p in prompts:
        toks = llm.tokenize(p.encode(), add_bos=True, special=False)
        llm.reset()
        llm.eval(toks)
        last = np.array(llm.scores[len(toks) - 1], dtype=np.float32)
        llm32.reset()
        llm32.eval(toks)
        logits32 = np.array(llm32.scores[:len(toks)], dtype=np.float32)
        gen = greedy(llm, toks, 48)
        cases.append({"prompt": p, "tokens": toks, "greedy": gen,
                      "text": llm.detokenize(gen).decode("utf-8", "replace"),
                      "last_logits": [float(f"{v:.6g}") for v in last],
                      "logits_f32kv": [[float(f"{v:.6g}") for v in row] for row in logits32]})
        print(f"stories260K: {p!r} -> {cases[-1]['text']!r}")
    doc = {"generator": "tests/ref/gen_llama_fixtures.py --llamacpp",
           "versions": {"llama_cpp_python": llama_cpp.__version__}, "model": "stories260K.gguf",
           "n_greedy": 48, "kv_cache": "f16 (llama.cpp default)", "cases": cases}
    with open(os.path.join(OUT, "stories260k.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def write_f32_gguf(path):
    """SmolLM2's Q4_1 file with every tensor dequantized to F32 (gguf-py), metadata kept."""
    import gguf
    from gguf import GGUFReader, GGUFWriter
    r = GGUFReader(SMOLLM2)
    w = GGUFWriter(path, arch="llama")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        vt = f.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, f.contents(), vt, sub_type=f.types[-1])
        else:
            w.add_key_value(k, f.contents(), vt)
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape)]
        w.add_tensor(t.name, gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def smollm2_f32_runs(token_lists, probe, greedy_prompts, n_greedy):
    """llama.cpp on the F32 dequantization of the Q4_1 file (a temporary GGUF): the next-token
    logits of token_lists with an f32 KV cache, and greedy completions of greedy_prompts
    (token lists) with the default f16 cache."""
    import tempfile
    out, gens = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "smollm2_f32.gguf")
        write_f32_gguf(path)
        llm = llama_open(path, n_ctx=1024, f32_kv=True)
        for toks in token_lists:
            llm.reset()
            llm.eval(toks)
            last = np.array(llm.scores[len(toks) - 1], dtype=np.float64)
            top = np.argsort(-last, kind="stable")[:64]
            out.append({"top_ids": [int(i) for i in top], "top_logits": [float(last[i]) for i in top],
                        "probe_logits": [float(last[i]) for i in probe]})
        del llm
        llm = llama_open(path, n_ctx=1024)
        for toks in greedy_prompts:
            margins = []
            gens.append({"greedy": greedy(llm, toks, n_greedy, margins), "margins": margins})
        del llm
    return out, gens


# Greedy chat completions checked token for token (user message, optional system prompt):
# varied tasks, so that the completions run into close calls of llama.cpp's own.
CHAT_PROMPTS = [
    ("What is the capital of France?", None),
    ("Write a haiku about the sea.", None),
    ("How do I boil an egg?", None),
    ("Explain photosynthesis to a ten-year-old.", None),
    ("List three tips for a job interview.", "You are a concise assistant."),
    ("Translate 'Where is the train station?' into German and French.", None),
]


N_GREEDY = 40       # tokens per greedy completion (fewer when EOS comes first)
N_GREEDY_F32 = 2    # completions also run on the F32 dequantization (slow emulated matmuls in the test)


def chat_prompt(user, system=None):
    """The SmolLM2 chat template of the GGUF file, rendered with jinja2."""
    import jinja2
    from gguf import GGUFReader
    r = GGUFReader(SMOLLM2)
    f = r.fields["tokenizer.chat_template"]
    template = bytes(f.parts[f.data[0]]).decode()
    tmpl = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(template)
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return tmpl.render(messages=msgs, add_generation_prompt=True, bos_token="<|im_start|>", eos_token="<|im_end|>")


def llamacpp_smollm2():
    import llama_cpp
    import jinja2
    llm = llama_open(SMOLLM2, n_ctx=1024)
    chat = chat_prompt

    rng = np.random.default_rng(7)
    probe = sorted(rng.choice(llm.n_vocab(), size=256, replace=False).tolist())
    logit_cases = []
    raw = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,"]
    chats = [(chat("What is 2+2?"), "What is 2+2?"), (chat("Name three colors.", "You are a concise assistant."), None)]
    for kind, text in [("raw", t) for t in raw] + [("chat", c[0]) for c in chats]:
        toks = llm.tokenize(text.encode(), add_bos=False, special=(kind == "chat"))
        llm.reset()
        llm.eval(toks)
        last = np.array(llm.scores[len(toks) - 1], dtype=np.float64)
        top = np.argsort(-last, kind="stable")[:64]
        logit_cases.append({"kind": kind, "text": text, "tokens": toks,
                            "top_ids": [int(i) for i in top], "top_logits": [float(last[i]) for i in top],
                            "probe_logits": [float(last[i]) for i in probe],
                            "mean": float(last.mean()), "std": float(last.std())})
        print(f"smollm2 logits: {kind} {text[:40]!r}: top {[int(i) for i in top[:5]]}, std {last.std():.3f}")
    # Greedy chat completions, each step's arg max fed back. Per step: llama.cpp's top-2
    # margin and its 8 best (id, logit) pairs (the logit check at every step).
    gen_cases = []
    for user, system in CHAT_PROMPTS:
        text = chat(user, system)
        toks = llm.tokenize(text.encode(), add_bos=False, special=True)
        margins, rows = [], []
        gen = greedy(llm, toks, N_GREEDY, margins, rows)
        tops = []
        for row in rows:
            top = np.argsort(-row.astype(np.float64), kind="stable")[:8]
            tops.append([[int(i), float(row[i])] for i in top])
        gen_cases.append({"user": user, "system": system, "prompt": text, "tokens": toks, "greedy": gen,
                          "margins": margins, "top8": tops, "text": llm.detokenize(gen).decode("utf-8", "replace")})
        print(f"smollm2 chat: {user!r} -> {gen_cases[-1]['text']!r} (smallest margin {min(margins):.5f})")
    # The same prompts on this model's weights dequantized to F32 (a temporary GGUF written
    # with gguf-py, deleted afterwards): next-token logits with an f32 KV cache (no rounding
    # of activations anywhere: tunewise's TW_MATMUL_FLOAT must match to float precision),
    # and greedy completions of the chat prompts with the default f16 cache (tunewise's
    # TW_MATMUL_GGML_FLOAT with its ggml emulations must give the same tokens).
    f32_logits, f32_greedy = smollm2_f32_runs([c["tokens"] for c in logit_cases], probe,
                                              [c["tokens"] for c in gen_cases[:N_GREEDY_F32]], N_GREEDY)
    for c, f in zip(logit_cases, f32_logits):
        c["f32_dequant"] = f
    for c, g in zip(gen_cases, f32_greedy):
        c["f32_dequant"] = g
    doc = {"generator": "tests/ref/gen_llama_fixtures.py --llamacpp",
           "versions": {"llama_cpp_python": llama_cpp.__version__, "jinja2": jinja2.__version__},
           "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
           "llama_cpp_settings": "f16 KV cache (type_k/type_v default), flash attention disabled (llama-cpp-python "
                                 "flash_attn=False -> LLAMA_FLASH_ATTN_TYPE_DISABLED), n_batch = n_ubatch = 512, "
                                 "logits_all, n_threads 2, CPU with AVX-512",
           "probe_ids": probe, "logits": logit_cases, "n_greedy": N_GREEDY, "greedy": gen_cases}
    with open(os.path.join(OUT, "smollm2.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf", action="store_true", help="tiny HF models + transformers logits")
    ap.add_argument("--llamacpp", action="store_true", help="llama.cpp on stories260K and SmolLM2")
    ap.add_argument("--smollm2-only", action="store_true", help="with --llamacpp: only SmolLM2 (smollm2.json)")
    a = ap.parse_args()
    if not (a.hf or a.llamacpp):
        ap.error("give --hf and/or --llamacpp")
    os.makedirs(OUT, exist_ok=True)
    if a.hf:
        hf_models()
    if a.llamacpp:
        if not a.smollm2_only:
            llamacpp_stories()
        llamacpp_smollm2()


if __name__ == "__main__":
    sys.exit(main())
