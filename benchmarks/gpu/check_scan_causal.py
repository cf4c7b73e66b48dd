"""GPU check: every scan backend against ref at training shapes, in grad and no-grad mode,
and causality (perturbing step t never changes outputs before t). Prints one line per case."""

from __future__ import annotations

import torch

from ssmbench.ops import selective_scan


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def inputs(batch: int, dim: int, L: int, N: int, dtype: torch.dtype, grad: bool):
    g = torch.Generator(device="cuda").manual_seed(batch * 7 + dim + L)
    r = lambda *s: torch.randn(*s, device="cuda", generator=g)
    u, delta, z = r(batch, dim, L), r(batch, dim, L) * 0.5 - 1.0, r(batch, dim, L)
    B, C = r(batch, N, L), r(batch, N, L)
    A = -torch.exp(r(dim, N) * 0.5)
    D, bias = r(dim), r(dim) * 0.1
    ts = [t.to(dtype) for t in (u, delta, B, C, z)]
    if grad:
        for t in ts:
            t.requires_grad_(True)
    u, delta, B, C, z = ts
    return u, delta, A, B, C, D, z, bias


def main() -> None:
    shapes = [(32, 512, 256, 16), (8, 512, 256, 16), (4, 1536, 1024, 16), (2, 64, 37, 16), (1, 2048, 128, 16)]
    for backend in ("triton", "chunked"):
        for shape in shapes:
            for dtype in (torch.float32, torch.bfloat16):
                for grad in (False, True):
                    args = inputs(*shape, dtype, grad)
                    fp32 = [a.detach().float() for a in args[:7]]
                    ref = selective_scan(*fp32, delta_bias=args[7], delta_softplus=True, backend="ref")
                    out = selective_scan(*args[:7], delta_bias=args[7], delta_softplus=True, backend=backend)
                    err = rel(out.float(), ref)
                    # causality: perturb u at t0; outputs before t0 must not move
                    t0 = shape[2] // 2
                    u2 = args[0].detach().clone()
                    u2[..., t0:] += 1.0
                    out2 = selective_scan(u2, *[a.detach() for a in args[1:7]], delta_bias=args[7],
                                          delta_softplus=True, backend=backend)
                    leak = (out2[..., :t0].float() - out.detach()[..., :t0].float()).abs().max().item()
                    print(f"{backend:8s} {str(shape):22s} {str(dtype):15s} grad={grad!s:5s} "
                          f"rel_err={err:.2e} leak_before_t0={leak:.2e} "
                          f"{'OK' if err < 2e-2 and leak == 0 else 'FAIL'}", flush=True)
    model_check()


def model_check() -> None:
    """The `small` preset's mamba LM: causality of logits in train mode under bf16 autocast."""
    from ssmbench.models.registry import build_model, get_model_set

    cfg = get_model_set("small").replace_all(vocab_size=2048).get("mamba")
    model = build_model(cfg).cuda().train()
    idx = torch.randint(0, 2048, (32, 256), device="cuda")
    for grad in (True, False):
        with torch.set_grad_enabled(grad), torch.autocast("cuda", dtype=torch.bfloat16):
            a = model(idx, idx).logits.float()
            idx2 = idx.clone()
            idx2[:, 128:] = torch.randint(0, 2048, (32, 128), device="cuda")
            b = model(idx2, idx2).logits.float()
        leak = (a[:, :128] - b[:, :128]).abs().max().item()
        print(f"LM mamba small grad={grad}: max logit change before the perturbed position {leak:.2e} "
              f"{'OK' if leak == 0 else 'FAIL'}", flush=True)


if __name__ == "__main__":
    main()
