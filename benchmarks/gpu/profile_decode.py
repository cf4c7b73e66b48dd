"""Profile MambaByte-972M decoding on one GPU: where the time of a decode step goes.

Run from the repo root on a CUDA machine:
    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu/profile_decode.py [--batch 1] [--out DIR]

Prints (and writes to DIR, default $OUT or /tmp/profile_decode): per-byte step time eager and
with the CUDA-graph ``Decoder`` (fused 4-kernel Mamba step and the unfused 8-kernel one), the same
for one residual Mamba layer alone, the top GPU kernels of 20 eager steps (torch.profiler), the
four GEMV shapes alone with ``F.linear`` and with the fused Triton GEMV (us and GB/s of weights),
and the fused kernels' launch-shape sweep. Random-init weights in bf16.
"""

# ruff: noqa: B023, E501
from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ssmbench.bench.ceilings import measure_ceilings
from ssmbench.generate.decode import Decoder
from ssmbench.generate.sampling import Sampling
from ssmbench.layers.mamba import Mamba
from ssmbench.models.registry import build_model, get_model_set
from ssmbench.ops.decode.conv_xproj import conv_xproj
from ssmbench.ops.decode.norm_linear import norm_linear
from ssmbench.ops.decode.ssm_update_xproj import ssm_update_xproj

LINES: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def time_graph(fn: Callable[..., object], reps: int = 20, iters: int = 50, indexed: bool = False) -> float:
    """Microseconds per call of ``fn`` replayed ``reps`` times inside one CUDA graph (``fn(i)``
    for the i-th call when ``indexed``, e.g. to rotate through weights larger than L2)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(3):
            fn(i) if indexed else fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(reps):
            fn(i) if indexed else fn()
    for _ in range(3):
        graph.replay()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(iters):
        graph.replay()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) * 1e3 / (iters * reps)


def time_eager(fn: Callable[[], object], iters: int = 30) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(iters):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) * 1e3 / iters


VARIANTS = {"unfused": (False, "cublas"), "fused-cublas": (True, "cublas"), "fused-triton": (True, "triton")}


def set_variant(model: torch.nn.Module, variant: str) -> None:
    fused, gemv = VARIANTS[variant]
    for m in model.modules():
        if isinstance(m, Mamba):
            m.fused_decode, m.decode_gemv = fused, gemv


def kernel_table(model, batch: int, out: Path, tag: str) -> None:
    cache = model.allocate_inference_cache(batch, 4096)
    tok = torch.zeros(batch, dtype=torch.long, device="cuda")
    with torch.no_grad():
        for _ in range(3):
            model.step(tok, cache)
        torch.cuda.synchronize()
        acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        with torch.profiler.profile(activities=acts) as prof:
            for _ in range(20):
                model.step(tok, cache)
            torch.cuda.synchronize()
    ka = prof.key_averages()
    try:
        table = ka.table(sort_by="cuda_time_total", row_limit=25)
    except Exception:  # newer torch names it device_time_total
        table = ka.table(sort_by="device_time_total", row_limit=25)
    (out / f"kernels_{tag}.txt").write_text(table)

    def dev_time(e) -> float:
        for name in ("self_device_time_total", "self_cuda_time_total"):
            v = getattr(e, name, None)
            if v is not None:
                return float(v)
        return 0.0

    rows = sorted(((dev_time(e), e.count, e.key) for e in ka if dev_time(e) > 0), reverse=True)
    total = sum(r[0] for r in rows)
    say(f"top GPU kernels, 20 eager steps, {tag} (us total / count / us per call):")
    for t, n, k in rows[:14]:
        say(f"  {t:10.0f} {n:6d} {t / max(n, 1):8.2f}  {k[:90]}")
    say(f"  (all GPU time: {total:.0f} us; per step {total / 20:.1f} us)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, nargs="*", default=[1, 8])
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/profile_decode"))
    ap.add_argument("--gen-len", type=int, default=512)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    dev = torch.device("cuda")
    say(f"GPU: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    ceil = measure_ceilings(dev, quick=True)
    bw = ceil.copy_gbps
    say(f"copy bandwidth {bw:.0f} GB/s")
    cfg = get_model_set("gen-paper").get("mambabyte-972m")
    model = build_model(cfg).to(device=dev, dtype=torch.bfloat16).eval()
    wbytes = sum(p.numel() * p.element_size() for p in model.parameters()) - model.embed.weight.numel() * 2
    limit_ms = wbytes / (bw * 1e9) * 1e3
    say(f"weights streamed per byte {wbytes / 1e9:.3f} GB -> limit {limit_ms:.3f} ms/byte at batch 1")

    for batch in args.batch:
        for variant in VARIANTS:
            set_variant(model, variant)
            tag = f"b{batch}-{variant}"
            cache = model.allocate_inference_cache(batch, args.gen_len + 32)
            tok = torch.zeros(batch, dtype=torch.long, device=dev)
            with torch.no_grad():
                eager = time_eager(lambda: model.step(tok, cache), iters=10)  # noqa: B023
                cache.reset()
                dec = Decoder(
                    model,
                    cache,
                    batch_size=batch,
                    prompt_len=16,
                    gen_len=args.gen_len,
                    sampling=Sampling(),
                    cuda_graph=True,
                )
                prompt = torch.randint(0, 256, (batch, 16), device=dev)
                dec.generate(prompt)
                _, timing = dec.generate(prompt)
            ms = timing.decode_ms / timing.n_steps
            say(
                f"[{tag}] step eager {eager / 1e3:.3f} ms; decoder {dec.path}: {ms:.4f} ms/byte-step, "
                f"{batch * 1e3 / ms:.1f} bytes/s, limit frac {limit_ms / ms:.3f}; "
                f"paths {model.kernel_paths()}"
            )
            del dec
            torch.cuda.empty_cache()
            # one residual Mamba layer alone
            block = model.blocks[0]
            st = block.layer.allocate_inference_cache(batch, dtype=torch.bfloat16)
            x = torch.randn(batch, cfg.d_model, device=dev, dtype=torch.bfloat16)
            with torch.no_grad():
                g = time_graph(lambda: block.step(x, st, 0))  # noqa: B023
                e = time_eager(lambda: block.step(x, st, 0))  # noqa: B023
            lw = sum(p.numel() * 2 for p in block.parameters())
            say(
                f"[{tag}] one layer: graph {g:.2f} us, eager {e:.2f} us; its weights {lw / 1e6:.2f} MB "
                f"-> {lw / g / 1e3:.0f} GB/s (floor {lw / bw / 1e3:.2f} us)"
            )
            kernel_table(model, batch, out, tag)

    say("GEMV shapes alone (in graph, rotating through 20 weight copies so they come from HBM;")
    say("us per call, GB/s of weight bytes; triton = norm_linear without norm):")
    shapes = [(1792, 7168), (3584, 144), (112, 3584), (3584, 1792)]
    for batch in args.batch:
        for k, n in shapes:
            ws = [torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(20)]
            xx = torch.randn(batch, k, device=dev, dtype=torch.bfloat16)
            t = time_graph(lambda i: F.linear(xx, ws[i]), indexed=True)  # noqa: B023
            tt = time_graph(lambda i: norm_linear(xx, ws[i]), indexed=True)  # noqa: B023
            nb = ws[0].numel() * 2
            say(
                f"  b{batch} {k:5d}->{n:5d} F.linear {t:6.2f} us {nb / t / 1e3:5.0f} GB/s | "
                f"triton {tt:6.2f} us {nb / tt / 1e3:5.0f} GB/s"
            )
    say("fused kernel pieces, batch 1 (in graph, one layer's weights: L2-warm, us):")
    m = model.blocks[0].layer
    norm = model.blocks[0].norm
    st = m.allocate_inference_cache(1, dtype=torch.bfloat16)
    x = torch.randn(1, cfg.d_model, device=dev, dtype=torch.bfloat16)
    with torch.no_grad():
        xz = norm_linear(x, m.in_proj.weight, norm.weight, norm.bias, norm.eps)
        say(
            f"  norm+in_proj {time_graph(lambda: norm_linear(x, m.in_proj.weight, norm.weight, norm.bias, norm.eps)):.2f}"
        )  # noqa: E501
        for bd in (32, 64, 128):
            t = time_graph(
                lambda: conv_xproj(
                    xz[:, :3584],
                    st.conv,
                    m.conv1d.weight[:, 0],  # noqa: B023
                    m.conv1d.bias,
                    m.x_proj.weight,
                    block_d=bd,
                )
            )  # noqa: B023
            say(f"  conv+x_proj block_d {bd}: {t:.2f}")
        xc, part = conv_xproj(
            xz[:, :3584], st.conv, m.conv1d.weight[:, 0], m.conv1d.bias, m.x_proj.weight
        )
        A = m.decode_A()
        for bd in (16, 32, 64, 128):
            t = time_graph(
                lambda: ssm_update_xproj(
                    part,
                    m.dt_rank,
                    m.dt_proj.weight,  # noqa: B023
                    m.dt_proj.bias,
                    st.ssm,
                    xc,
                    xz[:, 3584:],
                    A,
                    m.D,
                    block_d=bd,
                )
            )  # noqa: B023
            say(f"  ssm update + dt_proj block_d {bd}: {t:.2f}")
        y = torch.randn(1, 3584, device=dev, dtype=torch.bfloat16)
        say(
            f"  out_proj+residual {time_graph(lambda: norm_linear(y, m.out_proj.weight, residual=x)):.2f}"
        )
        say(f"  LayerNorm alone {time_graph(lambda: norm(x)):.2f}; add alone {time_graph(lambda: x + x):.2f}")
    (out / "profile_decode.txt").write_text("\n".join(LINES) + "\n")


if __name__ == "__main__":
    main()
