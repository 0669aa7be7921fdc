#!/usr/bin/env python3
"""The same MoE transformer as `moe` (docs/model.md), in PyTorch, for side-by-side timing.

Pre-norm decoder: h0 = W_E[tok] + W_P[pos]; h += m_res * Attn(RMSNorm(h)); h += m_res *
MoE(RMSNorm(h)); logits = RMSNorm(h) W_U^T; loss = CE + Switch aux + z-loss. MoE routes with
sigmoid (mup, mssp, jiang) or softmax (sp) gates, top-K (+ expert bias for jiang), tokens sorted by expert and one
matmul per expert, combined with index_add_. AdamW with the table's per-group learning rates at
the base shape (all equal there). Prints one JSON line: tokens/s of a full training step
(forward, backward, AdamW), the mean over --steps timed steps after --warmup steps.

On a CPU (the default): the strongest eager PyTorch we know for this shape, fp32: fused qkv,
in-place ops where they help, foreach AdamW, no autograd anomaly checks, one thread unless told.
On a GPU (--device cuda --dtype bf16 --compile, what `moe bench step` passes for a CUDA config):
bf16 autocast over fp32 master weights, causal scaled_dot_product_attention (flash), the experts
as torch._grouped_mm over tokens sorted by expert (no host sync), fused AdamW, torch.compile.
"""
import argparse
import contextlib
import json
import math
import time

import torch
import torch.nn.functional as F


class RMSNorm(torch.nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.g = torch.nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.g


class Attention(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.h = a.heads
        self.qkv = torch.nn.Linear(a.width, 3 * a.width, bias=False)
        self.out = torch.nn.Linear(a.width, a.width, bias=False)
        self.scale = 1.0 / math.sqrt(a.width // a.heads)
        mask = torch.full((a.seq_len, a.seq_len), float("-inf")).triu(1)
        self.register_buffer("mask", mask)

    def forward(self, x):
        B, T, N = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, N // self.h).permute(2, 0, 3, 1, 4)
        if x.is_cuda:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
            return self.out(o.transpose(1, 2).reshape(B, T, N))
        s = torch.baddbmm(self.mask.expand(B * self.h, T, T), q.reshape(-1, T, N // self.h),
                          k.reshape(-1, T, N // self.h).transpose(1, 2), alpha=self.scale)
        o = torch.bmm(s.softmax(-1), v.reshape(-1, T, N // self.h))
        return self.out(o.view(B, self.h, T, -1).transpose(1, 2).reshape(B, T, N))


class MoE(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        M, K, N, F_ = a.experts, a.top_k, a.width, a.expert_width
        # sp: softmax top-K renormalised; mup, mssp (the MSSP paper) and jiang: sigmoid gates
        # times 1/K; mup and mssp balance on the chosen gates (the paper's Switch loss).
        self.M, self.K, self.sigmoid = M, K, a.preset != "sp"
        self.aux_selected = a.preset in ("mup", "mssp")
        self.router = torch.nn.Linear(N, M, bias=False)
        self.up = torch.nn.Parameter(torch.randn(M, F_, N) * a.init_std)
        self.down = torch.nn.Parameter(torch.randn(M, N, F_) * a.init_std)
        self.register_buffer("bias", torch.zeros(M))
        self.c_agg = 1.0 / K if self.sigmoid else 1.0
        self.aux, self.z = a.aux_loss, a.z_loss

    def forward(self, x):
        B, T, N = x.shape
        x = x.reshape(-1, N)
        n = x.shape[0]
        r = self.router(x)
        if self.sigmoid:
            g = torch.sigmoid(r)
            _, idx = torch.topk(g + self.bias, self.K, dim=-1)
            w = g.gather(1, idx)
            if self.aux_selected:
                p = torch.zeros_like(g).scatter(1, idx, w * self.c_agg)
            else:
                p = g / g.sum(-1, keepdim=True)
        else:
            g = r.softmax(-1)
            w, idx = torch.topk(g, self.K, dim=-1)
            w = w / w.sum(-1, keepdim=True)
            p = g
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.M)
        tok = order // self.K
        xs = x.index_select(0, tok)
        if x.is_cuda and hasattr(torch, "_grouped_mm"):
            # One grouped GEMM per projection; offs = each expert's end row (no host sync).
            offs = torch.cumsum(counts, 0).to(torch.int32)
            bf = torch.bfloat16
            h = torch._grouped_mm(xs.to(bf), self.up.to(bf).transpose(-2, -1), offs=offs)
            h = F.gelu(h, approximate="tanh")
            ys = torch._grouped_mm(h, self.down.to(bf).transpose(-2, -1), offs=offs).to(x.dtype)
        else:
            ys = torch.empty_like(xs)
            start = 0
            for e, c in enumerate(counts.tolist()):
                if c:
                    h = F.gelu(xs[start:start + c] @ self.up[e].t(), approximate="tanh")
                    ys[start:start + c] = h @ self.down[e].t()
                start += c
        ys = ys * (w.reshape(-1)[order] * self.c_agg).unsqueeze(1)
        out = torch.zeros_like(x).index_add_(0, tok, ys)
        f = counts.to(x.dtype) / ((1 if self.aux_selected else self.K) * n)
        aux = self.aux * self.M * (f * p.mean(0)).sum()
        z = self.z * torch.logsumexp(r, -1).pow(2).mean()
        return out.view(B, T, N), aux + z


class Model(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = torch.nn.Embedding(a.vocab, a.width)
        self.pos = torch.nn.Embedding(a.seq_len, a.width)
        self.blocks = torch.nn.ModuleList()
        for _ in range(a.depth):
            self.blocks.append(torch.nn.ModuleList(
                [RMSNorm(a.width, 1e-5), Attention(a), RMSNorm(a.width, 1e-5), MoE(a)]))
        self.norm = RMSNorm(a.width, 1e-5)
        self.unembed = torch.nn.Linear(a.width, a.vocab, bias=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2 and "up" not in name and "down" not in name:
                torch.nn.init.normal_(p, std=a.init_std)
        self.res = 1.0

    def forward(self, tok, tgt):
        T = tok.shape[1]
        h = self.embed(tok) + self.pos(torch.arange(T, device=tok.device))
        extra = 0.0
        for n1, attn, n2, moe in self.blocks:
            h = h + self.res * attn(n1(h))
            y, l = moe(n2(h))
            h = h + self.res * y
            extra = extra + l
        logits = self.unembed(self.norm(h))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.reshape(-1)) + extra


# --config: the keys of a moe TOML config that `moe bench step` passes to this script as flags.
CONFIG_KEYS = {"vocab": "model", "seq_len": "model", "width": "model", "heads": "model",
               "depth": "model", "experts": "moe", "top_k": "moe", "expert_width": "moe",
               "batch": "train", "lr": "optim", "preset": "parameterization"}


def config_defaults(path):
    import tomllib  # Python 3.11+; only --config needs it
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    out = {}
    for key, section in CONFIG_KEYS.items():
        if key not in cfg.get(section, {}):
            raise SystemExit(f"torch_moe.py: {path} does not set {section}.{key}")
        out[key] = cfg[section][key]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", help="take the shape, batch, lr and preset from this moe config "
                   "(flags given as well win): the same model `moe bench step --config` runs, "
                   "which scripts/gpu_check.sh compiles once early to warm torch.compile's cache")
    for k, v in dict(vocab=512, seq_len=128, width=128, heads=4, depth=4, experts=8, top_k=2,
                     expert_width=128, batch=8, steps=10, warmup=3, threads=1).items():
        p.add_argument("--" + k, type=int, default=v)
    p.add_argument("--preset", default="mssp")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--init_std", type=float, default=0.02)
    p.add_argument("--aux_loss", type=float, default=0.01)
    p.add_argument("--z_loss", type=float, default=0.001)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    known, _ = p.parse_known_args()
    if known.config:
        p.set_defaults(**config_defaults(known.config))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    model = Model(a).to(dev)
    fwd = torch.compile(model) if a.compile else model
    cuda = dev.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.0, **({"fused": True} if cuda else {"foreach": True}))
    g = torch.Generator().manual_seed(1)
    tok = torch.randint(0, a.vocab, (a.batch, a.seq_len + 1), generator=g).to(dev)
    # (a disabled autocast context is not free on torch 1.13's CPU path: leave it out for fp32)
    autocast = (torch.autocast(dev.type, dtype=torch.bfloat16) if a.dtype == "bf16"
                else contextlib.nullcontext())

    def sync():
        if cuda:
            torch.cuda.synchronize()

    times = []
    for s in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = fwd(tok[:, :-1], tok[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
    step = sum(times) / len(times)
    impl = ("compiled " if a.compile else "eager ") + {"f32": "fp32", "bf16": "bf16"}[a.dtype]
    impl += ", " + (torch.cuda.get_device_name(dev) if cuda else "%d thread(s)" % torch.get_num_threads())
    print(json.dumps({"impl": impl, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "step_ms": 1e3 * step,
                      "tokens_per_s": a.batch * a.seq_len / step, "final_loss": loss.item()}))


if __name__ == "__main__":
    main()
