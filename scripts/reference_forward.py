#!/usr/bin/env python3
"""An independent NumPy implementation of docs/model.md (every option: learned positions or
RoPE, QK-norm, dense MLP blocks between MoE blocks): loads a `moe export` safetensors file
and an llm.c token file, and prints the mean cross-entropy over every window of T + 1 tokens
(compare with `moe eval`; see docs/model.md). Needs Python >= 3.11 and NumPy."""
import json
import math
import struct
import sys
import tomllib

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n :]
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", name
        b, e = t["data_offsets"]
        tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"])
    return tensors, meta


def load_llmc(path):
    with open(path, "rb") as f:
        head = np.frombuffer(f.read(1024), dtype="<i4")
        assert head[0] == 20240520, "not an llm.c shard"
        return np.frombuffer(f.read(), dtype="<u2")[: head[2]].astype(np.int64)


def rmsnorm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x, activation):
    """moe.activation "gelu": the exact x Phi(x); otherwise ("gelu_tanh", and the dense MLPs
    beside "swiglu" experts) the tanh form."""
    if activation == "gelu":
        return 0.5 * x * (1 + erf(x / np.sqrt(2)))
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def rope(x, base):
    """Rotates the pairs (d, d + D/2) of x (B, H, T, D) by pos * base^(-2d/D)."""
    T, D = x.shape[-2], x.shape[-1]
    ang = np.arange(T)[:, None] * base ** (-np.arange(0, D, 2) / D)[None, :]  # (T, D/2)
    cos, sin = np.cos(ang), np.sin(ang)
    a, b = x[..., : D // 2], x[..., D // 2 :]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def attention(x, W, c, B, T, H, opt):
    n, N = x.shape
    D = N // H
    qkv = c["multiplier"]["attn_qkv"] * x @ W["qkv"].T
    q, k, v = (qkv[:, i * N : (i + 1) * N].reshape(B, T, H, D).transpose(0, 2, 1, 3) for i in range(3))
    if opt["qk_norm"]:  # per head, no gain, before the rotation
        q, k = (z / np.sqrt(np.mean(z * z, axis=-1, keepdims=True) + c["norm_eps"]) for z in (q, k))
    if opt["position"] == "rope":
        q, k = rope(q, opt["rope_base"]), rope(k, opt["rope_base"])
    s = c["attn_scale"] * q @ k.transpose(0, 1, 3, 2)  # (B, H, T, T)
    s = np.where(np.tril(np.ones((T, T), dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = (p @ v).transpose(0, 2, 1, 3).reshape(n, N)
    return c["multiplier"]["attn_out"] * o @ W["out"].T


def mlp(x, W, c):
    mult = c["multiplier"]
    return mult["mlp_down"] * gelu(mult["mlp_up"] * x @ W["up"].T, c["activation"]) @ W["down"].T


def moe(x, W, c, M, K, n_global):
    mult = c["multiplier"]
    r = mult["router"] * x @ W["router"].T  # (n, M)
    if c["gate"] == "softmax":
        g = np.exp(r - logsumexp(r)[:, None])
    else:
        g = 1 / (1 + np.exp(-r))
    score = g + W["expert_bias"] if c["expert_bias"] else g
    # top-K by score descending, ties to the lower index: a stable sort of -score
    idx = np.argsort(-score, axis=1, kind="stable")[:, :K]
    sel = np.take_along_axis(g, idx, axis=1)
    w = sel / sel.sum(1, keepdims=True) if c["renormalize"] else sel
    kept = np.ones_like(idx, dtype=bool)
    if c["capacity_factor"] > 0:
        cap = max(1, int(np.ceil(c["capacity_factor"] * K * n_global / M * (1 - 1e-12))))
        used = np.zeros(M, dtype=np.int64)
        for k in range(K):  # first choices of every token before any second choice
            for t in range(x.shape[0]):
                e = idx[t, k]
                kept[t, k] = used[e] < cap
                used[e] += 1
    out = np.zeros_like(x)
    for e in range(M):
        rows, ks = np.nonzero((idx == e) & kept)
        if len(rows) == 0:
            continue
        xe = x[rows]
        up = mult["expert_up"] * xe @ W["expert_up"][e].T
        if c["activation"] == "swiglu":
            gt = mult["expert_gate"] * xe @ W["expert_gate"][e].T
            a = gt / (1 + np.exp(-gt)) * up
        else:
            a = gelu(up, c["activation"])
        y = mult["expert_down"] * a @ W["expert_down"][e].T
        np.add.at(out, rows, c["c_agg"] * w[rows, ks][:, None] * y)
    return out


def main():
    tensors, meta = load_safetensors(sys.argv[1])
    c = json.loads(meta["forward"])
    cfg = tomllib.loads(meta["config"])
    tokens = load_llmc(sys.argv[2])
    V, N = tensors["embed"].shape
    T = cfg["model"]["seq_len"]
    H, L = cfg["model"]["heads"], cfg["model"]["depth"]
    M, K = cfg["moe"]["experts"], cfg["moe"]["top_k"]
    stride = cfg["moe"].get("stride", 1)
    opt = {
        "position": cfg["model"].get("position", "learned"),
        "rope_base": cfg["model"].get("rope_base", 10000.0),
        "qk_norm": cfg["model"].get("qk_norm", False),
    }
    B = (len(tokens) - 1) // T
    seqs = np.stack([tokens[b * T : b * T + T + 1] for b in range(B)])
    inp, tgt = seqs[:, :T].reshape(-1), seqs[:, 1:].reshape(-1)
    pos = np.tile(np.arange(T), B)
    f = lambda a: a.astype(np.float64)  # f64 here: the C++ f32 result must agree to ~1e-6
    mult, eps = c["multiplier"], c["norm_eps"]
    h = mult["embed"] * f(tensors["embed"])[inp]
    if opt["position"] == "learned":
        h = h + mult["pos_embed"] * f(tensors["pos_embed"])[pos]
    for l in range(L):
        W = {k[len(f"blocks.{l}.") :]: f(v) for k, v in tensors.items() if k.startswith(f"blocks.{l}.")}
        W = {k.split(".")[-1]: v for k, v in W.items()}  # attn.qkv -> qkv, moe.router -> router
        if c["attention"]:
            h = h + c["residual_mult"] * attention(rmsnorm(h, W["attn_norm"], eps), W, c, B, T, H, opt)
        if l % stride == stride - 1:  # an MoE block; the others have a dense MLP
            h = h + c["residual_mult"] * moe(rmsnorm(h, W["moe_norm"], eps), W, c, M, K, B * T)
        else:
            h = h + c["residual_mult"] * mlp(rmsnorm(h, W["mlp_norm"], eps), W, c)
    logits = mult["unembed"] * rmsnorm(h, f(tensors["final_norm"]), eps) @ f(tensors["unembed"]).T
    ce = logsumexp(logits) - logits[np.arange(len(tgt)), tgt]
    print(f"windows {B} tokens {B * T} ce {ce.mean():.8f}")


if __name__ == "__main__":
    main()
