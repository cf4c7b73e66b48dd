"""The Triton scan at short L and large N against mamba_ssm (issue 12): variants side by side.

    PYTHONPATH=. python3 benchmarks/gpu/scan_variants.py --json $OUT/scan_variants.json [--old PATH]
    PYTHONPATH=. python3 benchmarks/gpu/scan_variants.py --dry-run  # CPU, interpreter: checks only

Shapes: (8, 2048, L, 16) for L = 256, 512, 1024, 2048 and (8, 1536, 2048, N) for N = 16, 32, 64,
128; bf16 u, delta, z, B, C and fp32 A (S4D-real), D, delta_bias (dt init), z gating, softplus,
D and bias, as Mamba layers call it. Rows per shape: mamba_ssm's ``selective_scan_fn`` (when
importable), the kernel module before issue 12 (``--old``, e.g. ``git show
5e4f629:ssmbench/ops/scan/triton_scan.py > benchmarks/gpu/old_scan.py``; default that path when
present), the new ``default_config`` and candidate configs (CANDIDATES). Each row: forward (inputs
without grad) and forward + backward of all 8 inputs, ``triton.testing.do_bench`` median, p20,
p80 (ms). Each (implementation, config, N) is first checked against the sequential reference in
fp32 on the same bf16 inputs at (2, 128, 512, N), output and all gradients; a row whose check
fails is marked FAIL and never counted as faster.
Also: host time per call (wall time of 100 calls without synchronising, divided by 100) of the
forward and forward + backward, and of the bare kernel launch through Triton's ``kernel[grid]``
against the module's cached launcher; and at L <= 1024 the same calls captured in a CUDA graph
(output compared with the eager call) and timed by replay, which is GPU time without host time.
Compiles run first in worker processes that share Triton's cache. The table at the end is
compact (the device tool returns the last 12,000 characters); --json gets everything.
"""

from __future__ import annotations

import os
import sys

DRY = "--dry-run" in sys.argv
if DRY:
    # before any kernel module is imported: Triton reads it when it decorates the kernels
    os.environ["TRITON_INTERPRET"] = "1"

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from benchmarks.scan_problems import NAMES, capture_graph, mamba_layer_inputs  # noqa: E402
from ssmbench.ops.scan import triton as new  # noqa: E402
from ssmbench.ops.scan.ref import selective_scan_ref  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OLD = ROOT / "benchmarks/gpu/old_scan.py"
L_SWEEP = [(8, 2048, L, 16) for L in (256, 512, 1024, 2048)]
N_SWEEP = [(8, 1536, 2048, n) for n in (16, 32, 64, 128)]
CHECK_SHAPE = (2, 128, 512)  # all sizes divisible by 16: the same compiled kernels as the timed shapes
TOL = 2e-2  # bf16 inputs against fp32: about 2e-3 expected
GRAPH_MAX_L = 512  # rows at L <= this also time forward + backward as a CUDA graph replay
LS, CFG = new.LaunchShape, new.TritonScanConfig


@dataclass(frozen=True)
class Variant:
    """One implementation and config. impl: 'new', 'old' or 'mamba_ssm'; change: for 'new', the
    fields of the default config at each shape that this variant replaces (none: the default)."""

    impl: str
    label: str
    change: tuple[tuple[str, object], ...] = ()
    # the shapes it runs at: 'short' (L sweep, L <= 1024), 'n16'/'n32'/'n64'/'n128' (N sweep), 'all'
    where: str = "all"

    def runs_at(self, shape: tuple[int, int, int, int]) -> bool:
        b, d, L, n = shape
        if self.where == "all":
            return True
        if self.where == "short":
            return n == 16 and L <= 1024
        return self.where == f"n{n}" and L == 2048


def candidates() -> list[Variant]:
    """The configs timed beside the new default (lean: the run must stay within about 4 minutes)."""
    out = [
        # short L: how the backward sums dB/dC (one copy = the old way), more and smaller forward programs
        Variant("new", "dbc 1 copy", (("dbc_copies", 1),), "short"),
        Variant("new", "dbc 32 copies", (("dbc_copies", 32),), "short"),
        Variant("new", "dbc store", (("dbc_copies", 0),), "short"),
        Variant("new", "fwd d8l8", (("fwd", LS(8, 8)),), "short"),
        Variant("new", "fwd d4l8", (("fwd", LS(4, 8)),), "short"),
        Variant("new", "bwd d4l8", (("bwd", LS(4, 8)),), "short"),
        # short L: more channels per backward program, so each adds its dB/dC share (summed over its
        # channels in registers) with fewer atomics; more warps keep the elements per thread at 32
        Variant("new", "bwd d8l16w2", (("bwd", LS(8, 16, num_warps=2)),), "short"),
        Variant("new", "bwd d16l16w4", (("bwd", LS(16, 16, num_warps=4)),), "short"),
        Variant("new", "bwd d16l8w2", (("bwd", LS(16, 8, num_warps=2)),), "short"),
    ]
    # large N: the backward's states in chunks of 16 or 32 per program, or all of N over more
    # warps; forward shapes of 64 elements per thread with more warps
    split16, split32 = LS(4, 16, block_n=16), LS(4, 8, block_n=32)
    for n, fwd_alts, bwd_alts in (
        (32, [LS(16, 8, num_warps=2)], [split16, LS(4, 16, num_warps=2)]),
        (64, [LS(8, 8, num_warps=2), LS(16, 8, num_warps=4)], [split32, LS(4, 8, num_warps=4)]),
        (128, [LS(8, 8, num_warps=4), LS(16, 8, num_warps=8)], [split32, LS(4, 8, num_warps=8)]),
    ):
        out += [Variant("new", _shape_label("fwd", f), (("fwd", f),), f"n{n}") for f in fwd_alts]
        out += [Variant("new", _shape_label("bwd", b), (("bwd", b),), f"n{n}") for b in bwd_alts]
    return out


def new_config(v: Variant, shape):
    """The default config at ``shape`` with the variant's change (bwd.block_l kept a multiple
    of fwd.block_l: the forward's block_l is cut when needed)."""
    cfg = new.default_config(*shape)
    change = dict(v.change)
    fwd, bwd = change.get("fwd", cfg.fwd), change.get("bwd", cfg.bwd)
    if bwd.block_l % fwd.block_l:
        fwd = replace(fwd, block_l=bwd.block_l)
    return CFG(fwd, bwd, change.get("dbc_copies", cfg.dbc_copies))


def _shape_label(kind: str, ls) -> str:
    return f"{kind} d{ls.block_d}l{ls.block_l}w{ls.num_warps}" + (f"n{ls.block_n}" if ls.block_n else "")


def variants(old_path: Path | None, have_mamba: bool) -> list[Variant]:
    rows = [Variant("mamba_ssm", "mamba_ssm")] if have_mamba else []
    if old_path is not None:
        # before issue 12; its N = 128 backward spills kilobytes per thread (minutes of timing)
        rows.append(Variant("old", "old (5e4f629)"))
    rows.append(Variant("new", "new default"))
    return rows + candidates()


def load_old(path: Path | None):
    """The old kernel module, or None (no file, or it no longer imports against this tree)."""
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location("scan_old", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # noqa: BLE001 - the run goes on without the old rows
        print(f"old module {path} not loaded: {type(e).__name__}: {e}"[:300], flush=True)
        return None
    return mod


def scan_fn(v: Variant, old_mod, shape):
    """fn(u, delta, A, B, C, D, z, delta_bias, softplus, return_last) for variant ``v``."""
    if v.impl == "mamba_ssm":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        return selective_scan_fn
    if v.impl == "old":
        return old_mod.selective_scan_triton
    cfg = new_config(v, shape)
    return lambda *a: new.selective_scan_triton(*a, config=cfg)


def config_text(v: Variant, shape) -> str:
    if v.impl != "new":
        return ""
    cfg = new_config(v, shape)
    return f"{_shape_label('fwd', cfg.fwd)} {_shape_label('bwd', cfg.bwd)} copies {cfg.dbc_copies}"


def inputs(shape, device, seed=0, grad=False) -> dict[str, torch.Tensor]:
    return mamba_layer_inputs(shape, device, seed, grad)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    if not torch.isfinite(a).all():
        return math.inf
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def check(fn, shape, device) -> dict[str, float]:
    """Relative errors of the output and all 8 gradients against the fp32 reference."""
    x = inputs(shape, device, seed=1, grad=True)
    x32 = {k: t.detach().float().requires_grad_() for k, t in x.items()}
    out = fn(*[x[k] for k in NAMES], True, False)
    ref = selective_scan_ref(*[x32[k] for k in NAMES], True, False)
    dout = torch.randn(out.shape, device=device, generator=torch.Generator(device=device).manual_seed(2))
    grads = torch.autograd.grad(out, [x[k] for k in NAMES], dout.to(out.dtype))
    ref_grads = torch.autograd.grad(ref, [x32[k] for k in NAMES], dout.to(out.dtype).float())
    errs = {"out": rel(out, ref)}
    errs.update({f"d{k}": rel(g, r) for k, g, r in zip(NAMES, grads, ref_grads, strict=True)})
    with torch.no_grad():
        errs["out_nograd"] = rel(fn(*[x[k] for k in NAMES], True, False), ref)
    return errs


def calls(fn, shape, device):
    """(forward without grad, forward + backward of all 8 inputs), on fresh inputs."""
    x = inputs(shape, device)
    xg = inputs(shape, device, grad=True)
    dout = torch.randn(shape[:3], device=device, dtype=torch.bfloat16)
    leaves = [xg[k] for k in NAMES]

    def fwd():
        return fn(*[x[k] for k in NAMES], True, False)

    def fwd_bwd():
        return torch.autograd.grad(fn(*leaves, True, False), leaves, dout)

    return fwd, fwd_bwd


def timed(f) -> dict[str, float]:
    import triton.testing

    med, p20, p80 = triton.testing.do_bench(f, quantiles=[0.5, 0.2, 0.8])
    return {"median_ms": med, "p20_ms": p20, "p80_ms": p80}


def host_us(f, n: int = 100) -> float:
    """Wall time per call of n calls without synchronising (host side only, while the GPU keeps up
    or the launch queue has room)."""
    f()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / n * 1e6


def graph_row(f, label: str) -> dict:
    """Capture f in a CUDA graph, compare one replay with the eager call, time replays."""
    eager = f()
    g, static = capture_graph(f)
    g.replay()
    torch.cuda.synchronize()
    flat = lambda o: [o] if isinstance(o, torch.Tensor) else list(o)  # noqa: E731
    err = max(rel(a, b) for a, b in zip(flat(static), flat(eager), strict=True))
    return {"kind": "graph", "label": label, "replay_vs_eager_rel_err": err, **timed(g.replay)}


def warm(index: int, workers: int, old_path: Path | None, ns) -> None:
    """Worker: compile every (variant, N) with position % workers == index by running it at the
    check shape (forward without grad, forward + backward)."""
    old_mod = load_old(old_path)
    for i, (v, shape) in enumerate(jobs(old_path if old_mod else None, False, ns)):
        if i % workers != index:
            continue
        small = (*CHECK_SHAPE, shape[3])
        fn = scan_fn(v, old_mod, shape)
        try:
            for f in calls(fn, small, "cuda"):
                f()
        except Exception as e:  # noqa: BLE001 - the main pass reports it
            print(f"warm {v.label} N={shape[3]}: {type(e).__name__}: {e}"[:300], flush=True)
    torch.cuda.synchronize()


def jobs(old_path, have_mamba, ns=None) -> list[tuple[Variant, tuple]]:
    """(variant, shape) pairs to time, in order; a candidate whose config is the default's at a
    shape is left out there; ns: only these state sizes."""
    out = []
    for shape in L_SWEEP + N_SWEEP:
        if ns and shape[3] not in ns:
            continue
        seen = set()
        for v in variants(old_path, have_mamba):
            if not v.runs_at(shape) or (v.impl == "old" and shape[3] > 64):
                continue
            if v.impl == "new":
                if config_text(v, shape) in seen:
                    continue
                seen.add(config_text(v, shape))
            out.append((v, shape))
    return out


def dry_shape(shape):
    """--dry-run checks run in the interpreter: a tiny shape of the same N (two channel blocks,
    one partial L block)."""
    return (1, 5, 6, shape[3])


def run(args) -> list[dict]:
    device = "cpu" if DRY else "cuda"
    have_mamba = not DRY and importlib.util.find_spec("mamba_ssm") is not None
    old_mod = load_old(args.old if args.old and args.old.exists() else None)
    old_path = args.old if old_mod else None
    rows: list[dict] = [{"kind": "env", "torch": torch.__version__, "triton": _version("triton"),
                         "mamba_ssm": _version("mamba_ssm") if have_mamba else None, "old": str(old_path),
                         "device": torch.cuda.get_device_name() if not DRY else "cpu (interpreter)"}]
    todo = jobs(old_path, have_mamba, args.n)
    workers = []
    if not DRY:
        n_workers = min(12, len(todo))
        cmd = [sys.executable, __file__, "--warm-worker"] + (["--old", str(old_path)] if old_path else [])
        cmd += ["--n", ",".join(map(str, args.n))] if args.n else []
        workers = [subprocess.Popen([*cmd, f"{i}/{n_workers}"], env=os.environ) for i in range(n_workers)]
        print(f"{len(todo)} timed jobs; {n_workers} compile workers", flush=True)
        print("compile workers exit codes", [w.wait() for w in workers], flush=True)
    t_start = time.time()
    checked: dict[tuple[str, str, int], dict] = {}
    for v, shape in todo:
        key = (v.impl, config_text(v, shape) or v.label, shape[3])
        fn = scan_fn(v, old_mod, shape)
        if key not in checked:
            small = dry_shape(shape) if DRY else (*CHECK_SHAPE, shape[3])
            try:
                errs = check(fn, small, device)
                worst = max(errs.values())
                checked[key] = {"ok": worst <= TOL, "worst_rel_err": worst, "errs": errs}
            except Exception as e:  # noqa: BLE001 - a failing variant must not cost the run
                error = f"{type(e).__name__}: {e}"[:300]
                checked[key] = {"ok": False, "worst_rel_err": math.inf, "error": error}
            c = checked[key]
            print(f"check {v.label:22s} N={shape[3]:<4d} {'ok' if c['ok'] else 'FAIL'} "
                  f"worst rel err {c['worst_rel_err']:.2e} {c.get('error', '')}", flush=True)
        row = {"kind": "time", "shape": list(shape), "impl": v.impl, "label": v.label,
               "config": config_text(v, shape), "check_ok": checked[key]["ok"],
               "check_worst_rel_err": checked[key]["worst_rel_err"]}
        if not DRY:
            for mode, f in zip(("fwd", "fwd_bwd"), calls(fn, shape, device), strict=True):
                try:
                    row[mode] = timed(f)
                    if mode == "fwd_bwd" and shape[2] <= GRAPH_MAX_L:
                        # host-bound eagerly at short L: the GPU time alone ranks the kernels
                        row["fwd_bwd_graph"] = timed(capture_graph(f)[0].replay)
                except Exception as e:  # noqa: BLE001
                    row[mode] = {"error": f"{type(e).__name__}: {e}"[:300]}
                torch.cuda.empty_cache()
        rows.append(row)
        print(_line(row), flush=True)
    if not DRY:
        rows += host_rows(old_mod, have_mamba)
        rows += graph_rows()
    rows.append({"kind": "wall", "timing_s": time.time() - t_start})
    return rows


def host_rows(old_mod, have_mamba) -> list[dict]:
    """Host time per call at (8, 2048, 256, 16): whole calls, and the bare forward launch."""
    shape = L_SWEEP[0]
    out = []
    impls = [Variant("new", "new default")] + ([Variant("old", "old")] if old_mod else [])
    impls += [Variant("mamba_ssm", "mamba_ssm")] if have_mamba else []
    for v in impls:
        fwd, fwd_bwd = calls(scan_fn(v, old_mod, shape), shape, "cuda")
        out.append({"kind": "host", "label": v.label, "fwd_us": host_us(fwd), "fwd_bwd_us": host_us(fwd_bwd)})
    # the bare forward kernel: Triton's launch path against the cached launcher
    x = inputs(shape, "cuda")
    u = x["u"]
    b, d, L, n = shape
    cfg = new.default_config(*shape)
    plan = new._fwd_plan(cfg, b, d, L, n, 1, False, False, (True, True, True, True), False, False)
    outb = torch.empty_like(u)
    args = (u, x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"], x["delta_bias"], outb, outb, outb, outb)
    kernel = new.selective_scan_fwd_kernel
    opts = dict(plan.options)
    out.append({"kind": "host", "label": "fwd kernel[grid] (Triton's path)",
                "fwd_us": host_us(lambda: kernel[plan.grid](*args, *plan.ints, **plan.consts, **opts))})
    out.append({"kind": "host", "label": f"fwd cached launcher (fast={new.FWD.fast})",
                "fwd_us": host_us(lambda: new.FWD(plan, args))})
    for r in out:
        print(f"host {r['label']:36s} fwd {r['fwd_us']:7.1f} us" +
              (f"  fwd+bwd {r['fwd_bwd_us']:7.1f} us" if "fwd_bwd_us" in r else ""), flush=True)
    return out


def graph_rows() -> list[dict]:
    """The new default captured in CUDA graphs at L <= 1024: GPU time alone."""
    out = []
    for shape in L_SWEEP[:3]:
        fwd, fwd_bwd = calls(scan_fn(Variant("new", "new default"), None, shape), shape, "cuda")
        for mode, f in (("fwd", fwd), ("fwd_bwd", fwd_bwd)):
            try:
                r = graph_row(f, f"{shape} {mode}")
            except Exception as e:  # noqa: BLE001
                r = {"kind": "graph", "label": f"{shape} {mode}", "error": f"{type(e).__name__}: {e}"[:300]}
            out.append(r)
            print(f"graph {r['label']:28s} " + (f"replay {r['median_ms']:.3f} ms [{r['p20_ms']:.3f}, "
                  f"{r['p80_ms']:.3f}] err vs eager {r['replay_vs_eager_rel_err']:.1e}" if "median_ms" in r
                  else r["error"]), flush=True)
    return out


def _version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


def _t(m: dict | None) -> str:
    if not m:
        return "-"
    if "error" in m:
        return "ERROR"
    return f"{m['median_ms']:.3f} [{m['p20_ms']:.3f},{m['p80_ms']:.3f}]"


def _line(r: dict) -> str:
    tag = "" if r["check_ok"] else " FAIL"
    graph = f" graph {_t(r['fwd_bwd_graph'])}" if "fwd_bwd_graph" in r else ""
    return (f"{str(tuple(r['shape'])):20s} {r['label']:22s} fwd {_t(r.get('fwd')):26s} "
            f"fwd+bwd {_t(r.get('fwd_bwd')):26s}{graph}{tag}")


def summary(rows: list[dict]) -> str:
    """Per shape: each row's medians and its ratio to mamba_ssm (passing rows only), the best."""
    lines = ["", "=== summary: median ms (ratio to mamba_ssm; < 1 is faster): fwd, fwd+bwd, fwd+bwd as a "
             "CUDA graph replay (L <= 512); FAIL = check failed ==="]
    times = [r for r in rows if r["kind"] == "time"]
    for shape in dict.fromkeys(tuple(r["shape"]) for r in times):
        here = [r for r in times if tuple(r["shape"]) == shape]
        ref = next((r for r in here if r["impl"] == "mamba_ssm"), None)
        lines.append(f"{shape}")
        for r in here:
            cells = []
            for mode in ("fwd", "fwd_bwd", "fwd_bwd_graph"):
                if mode == "fwd_bwd_graph" and mode not in r:
                    continue
                m = r.get(mode)
                if not m or "error" in m:
                    cells.append(f"{'ERROR' if m else '-':>16s}")
                    continue
                base = ref.get(mode) if ref else None
                ratio = (f"({m['median_ms'] / base['median_ms']:.2f})" if r["check_ok"] and base
                         and "median_ms" in base else "")
                cells.append(f"{m['median_ms']:8.3f} {ratio:7s}")
            lines.append(f"  {r['label']:22s} {' '.join(cells)}{'' if r['check_ok'] else '  FAIL'}"
                         f"  {r['config']}")
        for mode in ("fwd", "fwd_bwd", "fwd_bwd_graph"):
            ok = [r for r in here
                  if r["check_ok"] and r["impl"] == "new" and "median_ms" in (r.get(mode) or {})]
            if ok:
                best = min(ok, key=lambda r: r[mode]["median_ms"])
                lines.append(f"  best new {mode}: {best['label']} {best[mode]['median_ms']:.3f} ms")
    for r in rows:
        if r["kind"] == "host":
            lines.append(f"host {r['label']}: fwd {r['fwd_us']:.1f} us"
                         + (f", fwd+bwd {r['fwd_bwd_us']:.1f} us" if "fwd_bwd_us" in r else ""))
        if r["kind"] == "graph":
            lines.append(f"graph {r['label']}: " + (f"replay {r['median_ms']:.3f} ms, err vs eager "
                         f"{r['replay_vs_eager_rel_err']:.1e}" if "median_ms" in r else r["error"]))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--old", type=Path, default=DEFAULT_OLD, help="the kernel module before issue 12")
    ap.add_argument("--dry-run", action="store_true", help="CPU: interpreter, tiny shapes, checks only")
    ap.add_argument("--n", type=lambda t: [int(x) for x in t.split(",")], default=None,
                    help="only these state sizes, e.g. 16,64 (default: all)")
    ap.add_argument("--warm-worker", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.warm_worker:
        i, n = map(int, args.warm_worker.split("/"))
        warm(i, n, args.old if args.old and args.old.exists() else None, args.n)
        return
    rows = run(args)
    text = summary(rows)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
