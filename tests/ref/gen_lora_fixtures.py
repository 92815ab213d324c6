#!/usr/bin/env python3
"""Generate the fixtures of the LoRA adapter tests (tests/test_lora.c) with the real tools:

  1. Hugging Face PEFT on the tiny HF models of tests/data/llama/ (llama_tiny: llama,
     GQA 4/2; qwen2_tiny: q/k/v biases, tied output). For each, a LoraConfig with
     non-default rank / alpha, lora_A as PEFT initializes it (seeded) and lora_B filled with
     N(0, 0.05) (PEFT's own init makes B zero, which would test nothing), saved with
     save_pretrained into tests/data/lora/<name>_peft/ (adapter_config.json +
     adapter_model.safetensors, F32), and the logits transformers + peft give for a fixed
     token sequence with the adapter active (unmerged) and after merge_and_unload, written
     as float32 little-endian (T, V) to tests/data/lora/<name>_logits.bin.
  2. llama.cpp's own converter, convert_lora_to_gguf.py from a llama.cpp checkout
     (LLAMA_CPP, default /work/llama.cpp), run there on each PEFT adapter with
     --base tests/data/llama/<name> --outtype f32, writing to a temp dir; the GGUF it
     writes is copied to tests/data/lora/<name>_llamacpp.gguf (a few tens of KB), and its
     keys, tensor names, ne and types are listed in tests/data/lora/lora_fixtures.json.
  3. llama.cpp itself (PyPI llama-cpp-python) running the base model as a GGUF (written to
     a temp dir from the HF folder with the llama.cpp checkout's gguf-py: F32, llama Q/K
     rows permuted as convert_hf_to_gguf.py does, tokenizer.ggml.model "none") with that
     converted adapter loaded (lora_path, lora_scale 1.0 and 0.5), f32 KV cache: logits of
     the same sequence, float32 (2, T, V) in tests/data/lora/<name>_llamacpp_logits.bin,
     for inference tests of unmerged adapters (user scale included).

Run from the repository root:
    python3 tests/ref/gen_lora_fixtures.py
Needs: pip install torch transformers peft safetensors numpy llama-cpp-python (versions are recorded
in lora_fixtures.json), and a llama.cpp source checkout (its gguf-py and conversion/).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

OUT = "tests/data/lora"
LDIR = "tests/data/llama"
LLAMA_CPP = os.environ.get("LLAMA_CPP", "/work/llama.cpp")

# name, rank, alpha, target modules
MODELS = [
    ("llama_tiny", 4, 8, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    ("qwen2_tiny", 8, 4, ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"]),
]
SEQ = [3, 17, 250, 42, 99, 5, 128, 7, 200, 64]


def pkg_version(name):
    from importlib.metadata import version
    return version(name)


def make_peft(name, rank, alpha, targets):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1234)
    base_dir = os.path.join(LDIR, name)
    model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    model.eval()
    cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, bias="none",
                     task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    pm.eval()
    out_dir = os.path.join(OUT, f"{name}_peft")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    pm.save_pretrained(out_dir, safe_serialization=True)
    # PEFT writes a model card; not needed by anything
    readme = os.path.join(out_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    # PEFT stores target_modules from a set (order varies run to run): sort it so the
    # fixture is reproducible; the base path was recorded as given (repository-relative)
    cp = os.path.join(out_dir, "adapter_config.json")
    with open(cp) as f:
        ac = json.load(f)
    ac["target_modules"] = sorted(ac["target_modules"])
    with open(cp, "w") as f:
        json.dump(ac, f, indent=2, sort_keys=True)
        f.write("\n")
    ids = torch.tensor([SEQ])
    with torch.no_grad():
        unmerged = pm(ids).logits[0].float().numpy()
        merged_model = pm.merge_and_unload()
        merged = merged_model(ids).logits[0].float().numpy()
        base = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)(ids).logits[0].float().numpy()
    diff = float(np.abs(unmerged - merged).max())
    delta = float(np.abs(unmerged - base).max())
    logits_path = os.path.join(OUT, f"{name}_logits.bin")
    unmerged.astype("<f4").tofile(logits_path)
    return {"name": name, "peft_dir": out_dir, "rank": rank, "alpha": alpha, "targets": targets,
            "logits": logits_path, "n_tokens": len(SEQ), "n_vocab": int(unmerged.shape[1]),
            "max_abs_unmerged_vs_merged": diff, "max_abs_adapter_effect": delta}


def convert_llamacpp(name, peft_dir):
    sys.path.insert(0, os.path.join(LLAMA_CPP, "gguf-py"))
    import gguf

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "adapter.gguf")
        # the converter reads only the base's config.json (--base: "actual model weights are
        # not required") and detects the model class from its "architectures", which the
        # tiny models' configs lack: give it a copy that has it
        base = os.path.join(tmp, "base")
        os.makedirs(base)
        with open(os.path.join(LDIR, name, "config.json")) as f:
            hp = json.load(f)
        hp["architectures"] = [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[hp["model_type"]]]
        with open(os.path.join(base, "config.json"), "w") as f:
            json.dump(hp, f)
        cmd = [sys.executable, os.path.join(LLAMA_CPP, "convert_lora_to_gguf.py"), "--outtype", "f32",
               "--base", base, "--outfile", out, os.path.abspath(peft_dir)]
        subprocess.run(cmd, check=True, cwd=LLAMA_CPP, stdout=subprocess.DEVNULL)
        dst = os.path.join(OUT, f"{name}_llamacpp.gguf")
        shutil.copyfile(out, dst)
    r = gguf.GGUFReader(dst)
    kv = {}
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        t = f.types[0]
        if t == gguf.GGUFValueType.STRING:
            kv[f.name] = bytes(f.parts[f.data[0]]).decode()
        elif t == gguf.GGUFValueType.ARRAY:
            kv[f.name] = "array"
        else:
            kv[f.name] = float(f.parts[f.data[0]][0])
    tensors = [{"name": t.name, "ne": [int(x) for x in t.shape], "type": t.tensor_type.name} for t in r.tensors]
    return {"gguf": dst, "kv": kv, "tensors": tensors}


def gguf_base(name, path):
    """The HF tiny model as a llama.cpp GGUF (no tokenizer: llama.cpp's "none" vocab)."""
    sys.path.insert(0, os.path.join(LLAMA_CPP, "gguf-py"))
    import gguf
    from safetensors.numpy import load_file

    d = os.path.join(LDIR, name)
    with open(os.path.join(d, "config.json")) as f:
        hp = json.load(f)
    arch = hp["model_type"]
    nh, nkv = hp["num_attention_heads"], hp["num_key_value_heads"]
    hd = hp.get("head_dim") or hp["hidden_size"] // nh
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(hp["num_hidden_layers"])
    w.add_context_length(hp["max_position_embeddings"])
    w.add_embedding_length(hp["hidden_size"])
    w.add_feed_forward_length(hp["intermediate_size"])
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(hp["rope_theta"])
    w.add_layer_norm_rms_eps(hp["rms_norm_eps"])
    w.add_tokenizer_model("none")
    w.add_vocab_size(hp["vocab_size"])
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    layer = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
             "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
             "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
             "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
             "self_attn.v_proj.bias": "attn_v.bias", "mlp.gate_proj.weight": "ffn_gate.weight",
             "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}

    def permute(x, n):   # convert_hf_to_gguf.py LlamaModel.permute
        return x.reshape(n, 2, x.shape[0] // n // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)

    for k, v in load_file(os.path.join(d, "model.safetensors")).items():
        if k in top:
            n = top[k]
        else:
            p = k.split(".")
            n = f"blk.{p[2]}." + layer[".".join(p[3:])]
        v = v.astype(np.float32)
        if arch == "llama" and n.endswith("attn_q.weight"):
            v = permute(v, nh)
        if arch == "llama" and n.endswith("attn_k.weight"):
            v = permute(v, nkv)
        w.add_tensor(n, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llamacpp_logits(name, adapter, want):
    from llama_cpp import Llama

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "base.gguf")
        gguf_base(name, base)
        for scale in (1.0, 0.5):
            llm = Llama(model_path=base, lora_path=adapter, lora_scale=scale, n_ctx=64, logits_all=True, verbose=False,
                        n_threads=2, type_k=0, type_v=0, seed=0)
            llm.eval(SEQ)
            out.append(np.array(llm.scores[:len(SEQ)], dtype=np.float32))
            del llm
    path = os.path.join(OUT, f"{name}_llamacpp_logits.bin")
    np.stack(out).astype("<f4").tofile(path)
    err = float(np.abs(out[0] - want).max() / np.abs(want).max())
    return {"logits": path, "scales": [1.0, 0.5], "f32_kv": True,
            "rel_err_scale1_vs_peft": err}


def main():
    import torch
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    import hashlib

    def sha(rel):   # the checkout may not be a git repository: identify the files used
        with open(os.path.join(LLAMA_CPP, rel), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    doc = {"generator": "tests/ref/gen_lora_fixtures.py",
           "versions": {p: pkg_version(p) for p in ("torch", "transformers", "peft", "safetensors", "numpy",
                                                   "llama_cpp_python")},
           "llama_cpp_sha256": {r: sha(r) for r in ("convert_lora_to_gguf.py", "src/llama-adapter.cpp")}, "sequence": SEQ, "models": []}
    for name, rank, alpha, targets in MODELS:
        m = make_peft(name, rank, alpha, targets)
        m["llamacpp"] = convert_llamacpp(name, m["peft_dir"])
        want = np.fromfile(m["logits"], dtype="<f4").reshape(len(SEQ), -1)
        m["llamacpp"]["run"] = llamacpp_logits(name, m["llamacpp"]["gguf"], want)
        doc["models"].append(m)
        print(f"{name}: adapter effect {m['max_abs_adapter_effect']:.4g}, unmerged vs merged "
              f"{m['max_abs_unmerged_vs_merged']:.3g}, {len(m['llamacpp']['tensors'])} llama.cpp tensors, "
              f"llama.cpp + adapter vs peft {m['llamacpp']['run']['rel_err_scale1_vs_peft']:.3g}")
    with open(os.path.join(OUT, "lora_fixtures.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
