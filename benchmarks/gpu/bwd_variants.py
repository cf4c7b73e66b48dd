"""Where the Triton backward's time goes: variants of the scan kernels timed side by side.

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu/bwd_variants.py [--json PATH]

Variants are modules made from the source of ``ssmbench/ops/scan/triton.py`` by text
substitution (written to a temporary folder and imported), so the production file carries no
ablation switches:
- ``current``: the kernels as they are;
- ``store``: dB/dC added with plain stores instead of atomics (wrong sums; the cost of atomicity);
- ``no-dbc``: no dB/dC at all (the cost of the channel sums plus the atomics);
- ``old_*``: each ``benchmarks/gpu/old_*.py`` present (copies of earlier versions placed there
  by the caller, e.g. ``git show REV:ssmbench/ops/scan/triton.py > benchmarks/gpu/old_REV.py``).
plus backward launch shapes of ``current``. Rows: the forward under no_grad of ``current`` and
each old version, then forward+backward of all 8 inputs, at (8, 1536, 2048, 16) bf16 with z, D,
delta_bias, softplus; median / p20 / p80 of CUDA-event samples with L2 flushed. ``current`` is
first checked against the fp64 reference.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.scan_problems import NAMES, Case, make_inputs
from ssmbench.bench.ceilings import measure_ceilings
from ssmbench.bench.timing import benchmark
from ssmbench.profile.problem import rel_err

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "ssmbench/ops/scan/triton.py"
OLD = sorted(p.stem for p in (ROOT / "benchmarks/gpu").glob("old_*.py"))
DEV = torch.device("cuda")
MAIN = (8, 1536, 2048, 16)
STORE = {f"tl.atomic_add({t} + p_dbc,": f"tl.store({t} + p_dbc," for t in ("dB", "dC")}
STORE[', sem="relaxed")'] = ")"
# (variant, backward launch shape kwargs)
JOBS = [
    ("current", {}),
    *((name, {}) for name in OLD),
    ("store", {}),
    ("no-dbc", {}),
    ("current", {"block_d": 4, "block_l": 8}),
    ("current", {"block_d": 8, "block_l": 8}),
    ("current", {"block_d": 8, "block_l": 16}),
    ("current", {"block_d": 4, "block_l": 32}),
    ("current", {"block_d": 2, "block_l": 16}),
]


def variant(name: str, folder: Path):
    """Import one variant of the kernel module."""
    if name.startswith("old_"):
        text = (ROOT / "benchmarks/gpu" / f"{name}.py").read_text()
    else:
        text = SOURCE.read_text()
        for old, new in ({"store": STORE}.get(name, {})).items():
            assert old in text, f"{name}: pattern not found: {old!r}"
            text = text.replace(old, new)
        if name == "no-dbc":
            lines = text.splitlines(keepends=True)
            text = "".join(ln for ln in lines if not ("tl.atomic_add(dB" in ln or "tl.atomic_add(dC" in ln))
    path = folder / f"scan_{name.replace('-', '_')}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def config(mod, kw: dict):
    default = mod.default_config()
    bwd = mod.LaunchShape(**{**default.bwd.__dict__, **kw}) if kw else default.bwd
    fwd = default.fwd if bwd.block_l % default.fwd.block_l == 0 else mod.LaunchShape(
        **{**default.fwd.__dict__, "block_l": bwd.block_l})
    return mod.TritonScanConfig(fwd=fwd, bwd=bwd)


def inputs(seed: int = 0) -> dict:
    """bf16 u/delta/z/B/C, fp32 A/D/delta_bias; S4D-real A; dt in about [0.001, 0.1]."""
    b, d, L, n = MAIN
    g = torch.Generator(device=DEV).manual_seed(seed)
    bf = dict(device=DEV, dtype=torch.bfloat16)
    x = {
        "u": torch.randn(b, d, L, generator=g, **bf), "delta": torch.randn(b, d, L, generator=g, **bf) * 0.5,
        "A": -torch.arange(1, n + 1, device=DEV, dtype=torch.float32).repeat(d, 1),
        "B": torch.randn(b, n, L, generator=g, **bf), "C": torch.randn(b, n, L, generator=g, **bf),
        "D": torch.randn(d, generator=g, device=DEV), "z": torch.randn(b, d, L, generator=g, **bf),
        "delta_bias": torch.expm1(torch.rand(d, generator=g, device=DEV) * 0.099 + 0.001).log(),
    }
    return {k: v.requires_grad_() for k, v in x.items()}


def fwd_bwd(mod, cfg, x, dout):
    out = mod.selective_scan_triton(*[x[k] for k in NAMES], True, False, config=cfg)
    return torch.autograd.grad(out, [x[k] for k in NAMES], dout)


def check(mod) -> dict[str, float]:
    """Relative errors of out and every gradient against autograd through ref in fp64."""
    from ssmbench.ops.scan.ref import selective_scan_ref

    worst = {}
    f32, bf16 = torch.float32, torch.bfloat16
    for case in (Case(2, 64, 333, 16, dtype=f32), Case(2, 64, 257, 16, groups=4, dtype=f32),
                 Case(2, 256, 1000, 16, dtype=bf16)):
        x = make_inputs(case, 3, DEV)
        xs = {k: v.clone().requires_grad_() for k, v in x.items()}
        x64 = {k: v.detach().double().requires_grad_() for k, v in x.items()}
        out = mod.selective_scan_triton(*[xs[k] for k in NAMES], True)
        ref = selective_scan_ref(*[x64[k] for k in NAMES], True)
        dout = torch.randn(ref.shape, device=DEV, dtype=torch.float64)
        grads = torch.autograd.grad(out, [xs[k] for k in NAMES], dout.to(out.dtype))
        rgrads = torch.autograd.grad(ref, [x64[k] for k in NAMES], dout)
        errs = {"out": rel_err(out, ref)}
        errs.update({f"d{k}": rel_err(a, r) for k, a, r in zip(NAMES, grads, rgrads, strict=True)})
        worst[f"{case.dtype} G={case.groups}"] = max(errs.values())
        print("check", case.dtype, "groups", case.groups, " ".join(f"{k}={v:.1e}" for k, v in errs.items()))
    return worst


def label(name: str, cfg) -> str:
    b = cfg.bwd
    extra = ("" if b.prefetch else f" nopf st{b.stages}") + (f" r{b.maxnreg}" if b.maxnreg else "")
    return f"{name} bwd d{b.block_d} l{b.block_l} w{b.num_warps}{extra}"


def warm(index: int, workers: int, folder: Path) -> None:
    """Worker: compile (by running once) every job with position % workers == index."""
    x = inputs()
    dout = torch.randn(MAIN[:3], device=DEV, dtype=torch.bfloat16)
    for i, (name, kw) in enumerate(JOBS):
        if i % workers == index:
            mod = variant(name, folder)
            try:
                fwd_bwd(mod, config(mod, kw), x, dout)
            except Exception as e:  # noqa: BLE001 - reported by the timing pass too
                print(f"warm {name} {kw}: {type(e).__name__}: {e}"[:500])
    torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="")
    ap.add_argument("--warm", default="")
    ap.add_argument("--dir", default="")
    args = ap.parse_args()
    if args.warm:
        i, n = map(int, args.warm.split("/"))
        warm(i, n, Path(args.dir))
        return
    folder = Path(tempfile.mkdtemp(prefix="scan_variants_"))
    n_workers = min(8, len(JOBS))
    cmd = [sys.executable, __file__, "--dir", str(folder), "--warm"]
    workers = [subprocess.Popen([*cmd, f"{i}/{n_workers}"], env=os.environ) for i in range(n_workers)]
    rows: list[dict] = [{"kind": "check", "worst": check(variant("current", folder))}]
    print("compile workers exit codes", [w.wait() for w in workers])
    ceil = measure_ceilings(DEV)
    rows.append({"kind": "ceilings", **ceil.to_dict()})
    x = inputs()
    dout = torch.randn(MAIN[:3], device=DEV, dtype=torch.bfloat16)
    for name in ("current", *OLD):
        mod = variant(name, folder)
        with torch.no_grad():
            t = benchmark(lambda mod=mod: mod.selective_scan_triton(*[x[k] for k in NAMES], True), device=DEV)
        tag = f"{name} fwd (no grad)"
        rows.append({"kind": "time", "label": tag, "median_ms": t.median, "p20_ms": t.p20, "p80_ms": t.p80,
                     "n": t.n})
        print(f"{tag:44s} {t.median:8.3f} ms [{t.p20:.3f}, {t.p80:.3f}]")
    for name, kw in JOBS:
        mod = variant(name, folder)
        cfg = config(mod, kw)
        try:
            t = benchmark(lambda mod=mod, cfg=cfg: fwd_bwd(mod, cfg, x, dout), device=DEV)
        except Exception as e:  # noqa: BLE001 - one failing variant must not cost the run
            print(f"{label(name, cfg):44s} ERROR {type(e).__name__}: {e}"[:300])
            continue
        rows.append({"kind": "time", "label": label(name, cfg), "median_ms": t.median, "p20_ms": t.p20,
                     "p80_ms": t.p80, "n": t.n})
        print(f"{label(name, cfg):44s} {t.median:8.3f} ms [{t.p20:.3f}, {t.p80:.3f}] n={t.n}")
    name = torch.cuda.get_device_name()
    print(f"device {name} copy {ceil.copy_gbps:.0f} GB/s matmul {ceil.matmul_tflops:.0f} TFLOP/s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
