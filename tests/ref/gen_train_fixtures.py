#!/usr/bin/env python3
"""Generate the reference fixtures of the training tests (tests/test_train_ops.c,
tests/test_optim.c) with PyTorch (CPU, float32), transformers and PEFT:

  --lora   For the tiny random HF models of tests/data/llama/{llama_tiny, qwen2_tiny,
           qwen3_tiny, llama3_tiny} (written by gen_llama_fixtures.py, loaded here from their
           safetensors, so no GGUF Q/K row permutation is involved: tunewise loads the same
           rows and uses NEOX RoPE on them), a PEFT LoRA (r = 4, lora_alpha = 8: scaling
           alpha / r = 2, lora_dropout 0, bias none) on q,k,v,o,gate,up,down of every layer,
           with A and B set to fixed values (init_value below, reproduced bit for bit by the
           C test), one fixed token sequence of odd length with a completion mask (the
           first PROMPT tokens are the prompt: labels -100), and transformers' own causal-LM
           loss (labels shifted inside the model, mean over the unmasked targets).
           Written: tests/data/train/lora_grads.json (settings, tokens, mask, per-model loss,
           tensor order and shapes) and tests/data/train/<model>.grads.bin (float32 LE, every
           lora_A then lora_B gradient, layer-major, targets in the order q,k,v,o,gate,up,down).
  --optim  torch.optim.AdamW (weight decay, betas, eps), torch.nn.utils.clip_grad_norm_ and
           transformers' warmup + cosine / linear schedules driving the learning rate, on a
           small random parameter vector over a few steps with given gradients (some large
           enough to be clipped); and the schedules' learning rates at given steps.
           Written: tests/data/train/adamw.json.

Run from the repository root:
    python3 tests/ref/gen_train_fixtures.py --lora --optim
Needs: pip install torch transformers peft safetensors numpy (versions recorded in the JSON).
"""
import argparse
import json
import os

import numpy as np

OUT = "tests/data/train"
LDIR = "tests/data/llama"
MODELS = ["llama_tiny", "qwen2_tiny", "qwen3_tiny", "llama3_tiny"]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK, ALPHA = 4, 8.0
TOKENS = [1, 37, 200, 5, 91, 14, 255, 3, 77, 120, 64, 9, 180]   # 13 tokens: odd length
PROMPT = 5                                                       # tokens 0..4 are the prompt
M64 = (1 << 64) - 1


def pkg_version(name):
    from importlib.metadata import version
    return version(name)


def mix64(z):
    z &= M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def init_value(seed, i, amp):
    """The fixed LoRA values: 24 random bits of a splitmix64 hash of (seed, i), mapped to
    [-amp, amp) in double and rounded to float32 (exact to reproduce in C)."""
    h = mix64(seed * 0x9E3779B97F4A7C15 + (i + 1) * 0xD1B54A32D192ED03)
    u = (h >> 40) / float(1 << 24)
    return np.float32((2.0 * u - 1.0) * amp)


def init_matrix(layer, target, which, shape, amp):
    seed = (layer * 8 + target) * 2 + which + 1000
    n = int(np.prod(shape))
    return np.array([init_value(seed, i, amp) for i in range(n)], dtype=np.float32).reshape(shape)


def gen_lora():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    out = {"rank": RANK, "alpha": ALPHA, "scaling": ALPHA / RANK, "targets": TARGETS, "tokens": TOKENS,
           "prompt_tokens": PROMPT, "amp_a": 0.25, "amp_b": 0.1,
           "init": "init_value(seed=(layer*8+target)*2+which+1000, i, amp), which 0 = A (amp_a), 1 = B (amp_b)",
           "versions": {k: pkg_version(k) for k in ("torch", "transformers", "peft")}, "models": {}}
    for name in MODELS:
        path = os.path.join(LDIR, name)
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
        cfg = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0, bias="none",
                         task_type="CAUSAL_LM")
        pm = get_peft_model(model, cfg)
        pm.train()
        mods = {}
        for n_, mod in pm.named_modules():
            if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
                parts = n_.split(".")
                layer = int(parts[parts.index("layers") + 1])
                mods[(layer, TARGETS.index(parts[-1]))] = mod
        n_layer = model.config.num_hidden_layers
        assert len(mods) == n_layer * len(TARGETS)
        with torch.no_grad():
            for (layer, t), mod in mods.items():
                A = mod.lora_A["default"].weight
                B = mod.lora_B["default"].weight
                A.copy_(torch.from_numpy(init_matrix(layer, t, 0, tuple(A.shape), 0.25)))
                B.copy_(torch.from_numpy(init_matrix(layer, t, 1, tuple(B.shape), 0.1)))
                assert abs(mod.scaling["default"] - ALPHA / RANK) < 1e-12
        ids = torch.tensor([TOKENS])
        labels = ids.clone()
        labels[0, :PROMPT] = -100
        res = pm(input_ids=ids, labels=labels)
        res.loss.backward()
        order, blobs = [], []
        for layer in range(n_layer):
            for t in range(len(TARGETS)):
                mod = mods[(layer, t)]
                for which, w in (("A", mod.lora_A["default"].weight), ("B", mod.lora_B["default"].weight)):
                    order.append({"layer": layer, "target": TARGETS[t], "matrix": which, "shape": list(w.shape)})
                    blobs.append(w.grad.detach().numpy().astype("<f4").ravel())
        data = np.concatenate(blobs)
        data.tofile(os.path.join(OUT, f"{name}.grads.bin"))
        out["models"][name] = {"loss": float(res.loss.item()), "n_floats": int(data.size), "order": order,
                               "max_abs_grad": float(np.abs(data).max())}
        print(f"{name}: loss {res.loss.item():.6f}, {data.size} gradient floats, max |g| {np.abs(data).max():.4g}")
    with open(os.path.join(OUT, "lora_grads.json"), "w") as f:
        json.dump(out, f, indent=1)


def gen_optim():
    import torch
    from transformers import (get_cosine_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup,
                              get_linear_schedule_with_warmup)

    rng = np.random.default_rng(7)
    n, steps = 37, 8
    lr, betas, eps, wd, clip = 1e-2, (0.9, 0.99), 1e-8, 0.1, 1.0
    warmup = 2
    p0 = rng.normal(0, 1, n).astype(np.float32)
    # gradients: some steps small (not clipped), some large (clipped)
    grads = [(rng.normal(0, 1, n) * (0.05 if s % 3 == 0 else 1.0)).astype(np.float32) for s in range(steps)]
    p = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = torch.optim.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=wd, foreach=False)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=steps)
    rec = []
    for s in range(steps):
        opt.zero_grad()
        p.grad = torch.from_numpy(grads[s].copy())
        norm = torch.nn.utils.clip_grad_norm_([p], clip)
        cur_lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        rec.append({"lr": cur_lr, "norm": float(norm), "grad_clipped": [float(x) for x in p.grad.numpy()],
                    "param": [float(x) for x in p.detach().numpy()]})
    # the schedules alone at given steps
    dummy = torch.nn.Parameter(torch.zeros(1))
    sch = {}
    total, wu = 20, 4
    for kind in ("cosine", "linear", "cosine_min_lr"):
        o = torch.optim.SGD([dummy], lr=3e-4)
        if kind == "cosine":
            s_ = get_cosine_schedule_with_warmup(o, wu, total)
        elif kind == "linear":
            s_ = get_linear_schedule_with_warmup(o, wu, total)
        else:
            s_ = get_cosine_with_min_lr_schedule_with_warmup(o, wu, total, min_lr_rate=0.1)
        lrs = []
        for _ in range(total + 1):
            lrs.append(o.param_groups[0]["lr"])
            o.step()
            s_.step()
        sch[kind] = lrs
    out = {"n": n, "steps": steps, "lr": lr, "beta1": betas[0], "beta2": betas[1], "eps": eps, "weight_decay": wd,
           "clip": clip, "warmup": warmup, "schedule": "cosine", "param0": [float(x) for x in p0],
           "grads": [[float(x) for x in g] for g in grads], "record": rec,
           "schedules": {"lr_max": 3e-4, "warmup": wu, "total": total, "min_lr_rate": 0.1, "lrs": sch},
           "versions": {k: pkg_version(k) for k in ("torch", "transformers")}}
    with open(os.path.join(OUT, "adamw.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("adamw: final param[0..3]", rec[-1]["param"][:4], "norms", [round(r["norm"], 4) for r in rec])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--optim", action="store_true")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if a.lora:
        gen_lora()
    if a.optim:
        gen_optim()


if __name__ == "__main__":
    main()
