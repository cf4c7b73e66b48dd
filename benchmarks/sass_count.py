"""Count the sm_90 instructions of a scan kernel's main loop, or its registers and spills, without a GPU.

    python benchmarks/sass_count.py [--kernel bwd|fwd] [--n 16] [--block-d 4] [--block-l 8] [--num-warps 1]
                                    [--file PATH]
    python benchmarks/sass_count.py --resources [--n 16,32,64,128] [--shapes d4l16w1,d4l8w1n32] [--jobs 2]

Compiles ``selective_scan_{fwd,bwd}_kernel`` (from ``ssmbench/ops/scan/triton.py`` or
``--file``, e.g. an older copy) for sm_90 with bf16 activations, z, D, delta_bias, softplus,
ungrouped B/C and 16-divisible sizes (as Triton specialises L = 2048 on the device),
disassembles the cubin with the cuobjdump Triton ships, takes the loop body as the instructions
between the backward branch with the largest span and its target, and prints the instruction
count per state element (warp-instructions / (BLOCK_L * BLOCK_N * BLOCK_D)), the opcode
histogram and the registers per thread.
``--resources``: registers and stack bytes per thread (cuobjdump -res-usage; stack > 0 means
spills or local arrays) of both kernels for each N, at the launch shapes of ``default_config``
and at ``--shapes`` (dDlLwW: both kernels; dDlLwWnB: the backward with B states per program),
compiled in ``--jobs`` processes.
Counts depend on the Triton version (3.9 here, 3.6 on the device image): use them to compare
versions of the kernel under one Triton, not as absolute device numbers.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import importlib.util
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(triton.__path__[0]) / "backends/nvidia/bin"
INTS = {"L", "DIM", "N", "DIM_PER_GROUP", "N_BLOCKS", "N_STATES"}  # DIM_PER_GROUP: files before issue 12
BF16 = {"u", "delta", "z", "B", "C", "dout", "du", "ddelta", "dz", "out", "ygate"}
# N_GROUPS = 1 and DBC_COPIES = 1 are compiled in, as Triton specialises integers equal to 1
FLAGS = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, ACC=tl.float32, FAST_EXP=True, STAGES=1,
             PREFETCH=True, HAS_DLAST=False, SAVE_STATES=True, STATE_EVERY=1, STORE_LAST=False,
             SAVE_Y=True, DBC_STORE=False, N_GROUPS=1, DBC_COPIES=1)  # fmt: skip


def compile_kernel(path: Path, which: str, block_d: int, block_l: int, num_warps: int, n: int = 16,
                   split: bool = False):
    """One kernel for sm_90 at BLOCK_N = n; ``split``: the backward's states split over programs."""
    spec = importlib.util.spec_from_file_location("scan_under_count", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    fn = mod.selective_scan_bwd_kernel if which == "bwd" else mod.selective_scan_fwd_kernel
    first_int = fn.arg_names.index("L")
    sig = {
        a: ("*bf16" if a in BF16 else "*fp32") if i < first_int else ("i32" if a in INTS else "constexpr")
        for i, a in enumerate(fn.arg_names)
    }
    flags = {**FLAGS, "BLOCK_D": block_d, "BLOCK_L": block_l, "BLOCK_N": n, "SPLIT_N": split}
    consts = {k: v for k, v in flags.items() if k in fn.arg_names}
    # pointers 16-byte aligned and sizes divisible by 16, as Triton specialises them at L = 2048
    attrs = {(i,): [["tt.divisibility", 16]] for i, a in enumerate(fn.arg_names)
             if i < first_int or a in INTS - {"N_BLOCKS", "N_STATES"}}
    src = ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


def loop_body(sass: str) -> list[str]:
    """Instructions between the longest backward branch and its target."""
    instrs = []
    for line in sass.splitlines():
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m:
            instrs.append((int(m.group(1), 16), m.group(2)))
    best = None
    for addr, ins in instrs:
        b = re.search(r"BRA\s.*?(0x[0-9a-f]+)", ins)
        target = int(b.group(1), 16) if b else addr
        if target < addr and (best is None or addr - target > best[1] - best[0]):
            best = (target, addr)
    if best is None:
        raise SystemExit("no loop found in the SASS")
    return [ins for addr, ins in instrs if best[0] <= addr <= best[1]]


def registers(ptx: str) -> str:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "k.ptx").write_text(ptx)
        out = subprocess.run([str(BIN / "ptxas-blackwell"), "-arch=sm_90a", "-v", "k.ptx", "-o", "k.cubin"],
                             cwd=d, capture_output=True, text=True)  # fmt: skip
    found = re.search(r"Used (\d+) registers", out.stderr)
    return found.group(1) if found else "?"


def cuobjdump(cubin: bytes, flag: str) -> str:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "k.cubin").write_bytes(cubin)
        out = subprocess.run([str(BIN / "cuobjdump"), flag, "k.cubin"], cwd=d, capture_output=True, text=True,
                             check=True)  # fmt: skip
        return out.stdout


def resources(path: Path, which: str, n: int, block_d: int, block_l: int, num_warps: int,
              block_n: int | None = None) -> dict:
    """Registers and stack bytes per thread of one compiled kernel (cuobjdump -res-usage);
    ``block_n``: the backward's states per program (split over programs when < n)."""
    bn = n if which == "fwd" or block_n is None else min(n, block_n)
    k = compile_kernel(path, which, block_d, block_l, num_warps, bn, split=bn < n)
    usage = cuobjdump(k.asm["cubin"], "-res-usage")
    found = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", usage))
    shape = f"d{block_d}l{block_l}w{num_warps}" + (f"n{bn}" if bn < n else "")
    per_thread = block_l * bn * block_d // (32 * num_warps)
    return {"kernel": which, "N": n, "shape": shape, "elems_per_thread": per_thread,
            **{k.lower(): int(v) for k, v in found.items()}}


def parse_shape(text: str) -> tuple[int, int, int, int | None]:
    """dDlLwW[nB]: block_d, block_l, num_warps and (backward) states per program."""
    m = re.fullmatch(r"d(\d+)l(\d+)w(\d+)(?:n(\d+))?", text)
    if not m:
        raise SystemExit(f"shape {text!r}: expected dDlLwW[nB], e.g. d4l16w1 or d4l8w1n32")
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)) if m.group(4) else None


def resource_table(path: Path, ns: list[int], shapes: list[str], jobs: int) -> None:
    """Print registers and stack for both kernels, per N, at the default shapes and ``shapes``."""
    spec = importlib.util.spec_from_file_location("scan_for_defaults", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    todo = []
    for n in ns:
        cfg = mod.default_config(N=n)
        for which, ls in (("fwd", cfg.fwd), ("bwd", cfg.bwd)):
            bn = getattr(ls, "block_n", None)
            todo.append((which, n, ls.block_d, ls.block_l, ls.num_warps, bn, "default"))
        for text in shapes:
            bd, bl, w, bn = parse_shape(text)
            todo += [("fwd", n, bd, bl, w, None, "")] if bn is None else []
            todo.append(("bwd", n, bd, bl, w, bn, ""))
    todo = list(dict.fromkeys(todo))
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(resources, path, *t[:6]) for t in todo]
        for t, f in zip(todo, futures, strict=True):
            r = f.result()
            print(f"{r['kernel']} N={r['N']:<4d} {r['shape']:12s} elems/thread {r['elems_per_thread']:4d}  "
                  f"regs {r['reg']:3d}  stack {r['stack']:5d} B  {t[6]}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", choices=("bwd", "fwd"), default="bwd")
    ap.add_argument("--n", default="16", help="BLOCK_N; with --resources a comma-separated list")
    ap.add_argument("--block-d", type=int, default=4)
    ap.add_argument("--block-l", type=int, default=8)
    ap.add_argument("--num-warps", type=int, default=1)
    ap.add_argument("--file", type=Path, default=ROOT / "ssmbench/ops/scan/triton.py")
    ap.add_argument("--resources", action="store_true")
    ap.add_argument("--shapes", default="", help="with --resources: extra launch shapes, e.g. d4l16w1,d4l8w2")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if args.resources:
        shapes = [s for s in args.shapes.split(",") if s]
        resource_table(args.file, [int(n) for n in args.n.split(",")], shapes, args.jobs)
        return
    n = int(args.n)
    k = compile_kernel(args.file, args.kernel, args.block_d, args.block_l, args.num_warps, n)
    body = loop_body(cuobjdump(k.asm["cubin"], "-sass"))
    ops = collections.Counter(re.sub(r"^@!?U?P\w+\s+", "", ins).split()[0].split(".")[0] for ins in body)
    elems = args.block_l * n * args.block_d
    regs = registers(k.asm["ptx"])
    print(f"{args.kernel} N{n} d{args.block_d} l{args.block_l} w{args.num_warps}: loop body {len(body)} "
          f"warp-instructions = {len(body) / elems:.3f} per state element, {regs} registers")
    print(" ".join(f"{op}:{n}" for op, n in ops.most_common()))


if __name__ == "__main__":
    main()
