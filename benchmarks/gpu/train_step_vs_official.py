"""Where a paper-v1 Mamba training step's time goes, ssmbench beside mamba_ssm's MambaLMHeadModel.

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu/train_step_vs_official.py [--json PATH]

Both models: 16 Mamba layers of d 512 (expand 2, N 16, conv 4), GPT-2 vocabulary, untied LM head,
pre-norm LayerNorm, 64 x 256 tokens, bf16 autocast, the same cross-entropy and the same AdamW.
Prints the median wall time of synchronised steps over two alternating rounds and, for one step of
each, the GPU kernel time grouped by kind (scan, conv, GEMM, norm, optimizer, elementwise...).
Then the Triton scan alone at (8, 2048, 256, 16): host wall per call without synchronising
against GPU time per call, to tell host-bound from GPU-bound.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

import torch
import torch.nn.functional as F

from ssmbench.models.registry import build_model, get_model_set

DEV = torch.device("cuda")
BATCH, SEQ = 64, 256
GROUPS = (
    ("scan", ("selective_scan", "scan_fwd", "scan_bwd")),
    ("conv", ("conv", "causal_conv1d")),
    ("gemm", ("gemm", "gemv", "sm90", "cutlass", "nvjet", "xmma", "cublas", "matmul")),
    ("norm", ("layer_norm", "layernorm", "rms", "_layer_norm")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("loss", ("cross_entropy", "log_softmax", "nll")),
)


def official_model(vocab: int) -> torch.nn.Module:
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    cfg = MambaConfig(d_model=512, n_layer=16, d_intermediate=0, vocab_size=vocab,
                      ssm_cfg={"layer": "Mamba1"}, rms_norm=False, residual_in_fp32=True,
                      fused_add_norm=True, pad_vocab_size_multiple=1, tie_embeddings=False)
    return MambaLMHeadModel(cfg, device=DEV)


def make_step(model, official: bool, x, y):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            if official:
                logits = model(x).logits
                loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.reshape(-1))
            else:
                out = model(x, y)
                loss = out.loss + out.aux_loss
        loss.backward()
        opt.step()

    return step


def timed(step, n: int = 10) -> list[float]:
    walls = []
    for _ in range(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        walls.append((time.perf_counter() - t0) * 1e3)
    return walls


def kernel_groups(step) -> dict[str, float]:
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        step()
        torch.cuda.synchronize()
    groups: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        if e.self_device_time_total <= 0:
            continue
        name = e.key.lower()
        kind = next((g for g, keys in GROUPS if any(k in name for k in keys)), "other")
        groups[kind] += e.self_device_time_total / 1e3
    groups["total"] = sum(v for k, v in groups.items())
    top = sorted(prof.key_averages(), key=lambda e: -e.self_device_time_total)[:12]
    for e in top:
        print(f"   {e.self_device_time_total / 1e3:8.3f} ms  x{e.count:<4d} {e.key[:90]}")
    return dict(groups)


def scan_host_vs_gpu() -> dict[str, float]:
    from ssmbench.ops import selective_scan

    b, d, L, n = 8, 2048, 256, 16
    g = torch.Generator(device=DEV).manual_seed(0)
    r = lambda *s, dt=torch.bfloat16: torch.randn(*s, device=DEV, generator=g).to(dt)
    u, delta, z = r(b, d, L), r(b, d, L) * 0.5, r(b, d, L)
    A = -torch.rand(d, n, device=DEV, generator=g) - 0.5
    B, C = r(b, n, L), r(b, n, L)
    D, bias = torch.randn(d, device=DEV), torch.randn(d, device=DEV) * 0.1
    leaves = [t.requires_grad_() for t in (u, delta, z)]
    out = {}
    for mode in ("fwd", "fwd_bwd"):
        def call(mode: str = mode) -> None:
            y = selective_scan(u, delta, A, B, C, D, z, bias, True, backend="triton")
            if mode == "fwd_bwd":
                y.backward(torch.ones_like(y))
        for _ in range(5):
            call()
        torch.cuda.synchronize()
        n_calls = 50
        t0 = time.perf_counter()
        for _ in range(n_calls):
            call()
        host = (time.perf_counter() - t0) / n_calls * 1e3
        torch.cuda.synchronize()
        total = (time.perf_counter() - t0) / n_calls * 1e3
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                call()
            torch.cuda.synchronize()
        gpu = sum(e.self_device_time_total for e in prof.key_averages()) / 1e3 / 10
        kernels = {e.key[:60]: round(e.self_device_time_total / 1e3 / 10, 4)
                   for e in prof.key_averages() if e.self_device_time_total > 0}
        print(f"scan {mode} (8,2048,256,16): host {host:.3f} ms/call (unsynced), wall {total:.3f}, "
              f"GPU {gpu:.3f}; kernels {kernels}")
        out[mode] = {"host_ms": host, "wall_ms": total, "gpu_ms": gpu, "kernels": kernels}
        for t in leaves:
            t.grad = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    cfg = get_model_set("paper-v1").get("mamba")
    torch.manual_seed(0)
    idx = torch.randint(0, cfg.vocab_size, (BATCH, SEQ + 1), device=DEV)
    x, y = idx[:, :-1], idx[:, 1:]
    steps = {"ssmbench mamba": make_step(build_model(cfg).to(DEV), False, x, y)}
    try:
        steps["mamba_ssm MambaLMHeadModel"] = make_step(official_model(cfg.vocab_size), True, x, y)
    except Exception as e:  # reported, never silently dropped
        print(f"mamba_ssm reference unavailable: {type(e).__name__}: {e}")
    result: dict[str, dict] = {}
    for step in steps.values():
        timed(step, 3)
    for _ in range(2):
        for name, step in steps.items():
            result.setdefault(name, {}).setdefault("rounds_ms", []).append(statistics.median(timed(step)))
    for name, step in steps.items():
        print(f"== {name}: median step {result[name]['rounds_ms']} ms; one step's kernels:")
        result[name]["kernel_ms"] = kernel_groups(step)
        print("   groups:", {k: round(v, 2) for k, v in result[name]["kernel_ms"].items()})
    result["scan"] = scan_host_vs_gpu()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
