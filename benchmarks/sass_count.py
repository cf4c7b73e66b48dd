"""Count the sm_90 instructions of a scan kernel's main loop, without a GPU.

    python benchmarks/sass_count.py [--kernel bwd|fwd] [--block-d 4] [--block-l 8] [--file PATH]

Compiles ``selective_scan_{fwd,bwd}_kernel`` (from ``ssmbench/ops/scan/triton.py`` or
``--file``, e.g. an older copy) for sm_90 with bf16 activations, z, D, delta_bias, softplus and
16-divisible sizes (as Triton specialises L = 2048 on the device), disassembles the cubin with
the cuobjdump Triton ships, takes the loop body as the instructions between the backward branch
with the largest span and its target, and prints the instruction count per state element
(warp-instructions / (BLOCK_L * 16 * BLOCK_D)), the opcode histogram and ptxas' register count.
Counts depend on the Triton version (3.9 here, 3.6 on the device image): use them to compare
versions of the kernel under one Triton, not as absolute device numbers.
"""

from __future__ import annotations

import argparse
import collections
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
INTS = {"L", "DIM", "N", "DIM_PER_GROUP", "N_GROUPS", "N_BLOCKS", "N_STATES"}
BF16 = {"u", "delta", "z", "B", "C", "dout", "du", "ddelta", "dz", "out", "ygate"}
FLAGS = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, ACC=tl.float32, FAST_EXP=True, STAGES=1,
             BLOCK_N=16, PREFETCH=True, HAS_DLAST=False, SAVE_STATES=True, STATE_EVERY=1, STORE_LAST=True,
             SAVE_Y=True)  # fmt: skip


def compile_kernel(path: Path, which: str, block_d: int, block_l: int, num_warps: int):
    spec = importlib.util.spec_from_file_location("scan_under_count", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    fn = mod.selective_scan_bwd_kernel if which == "bwd" else mod.selective_scan_fwd_kernel
    first_int = fn.arg_names.index("L")
    sig = {
        n: ("*bf16" if n in BF16 else "*fp32") if i < first_int else ("i32" if n in INTS else "constexpr")
        for i, n in enumerate(fn.arg_names)
    }
    consts = {k: v for k, v in {**FLAGS, "BLOCK_D": block_d, "BLOCK_L": block_l}.items() if k in fn.arg_names}
    # pointers 16-byte aligned and sizes divisible by 16, as Triton specialises them at L = 2048
    attrs = {
        (i,): [["tt.divisibility", 16]]
        for i, n in enumerate(fn.arg_names)
        if (i < first_int or n in INTS) and n not in ("N_BLOCKS", "N_STATES")
    }
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", choices=("bwd", "fwd"), default="bwd")
    ap.add_argument("--block-d", type=int, default=4)
    ap.add_argument("--block-l", type=int, default=8)
    ap.add_argument("--num-warps", type=int, default=1)
    ap.add_argument("--file", type=Path, default=ROOT / "ssmbench/ops/scan/triton.py")
    args = ap.parse_args()
    k = compile_kernel(args.file, args.kernel, args.block_d, args.block_l, args.num_warps)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "k.cubin").write_bytes(k.asm["cubin"])
        sass = subprocess.run([str(BIN / "cuobjdump"), "-sass", "k.cubin"], cwd=d, capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
    body = loop_body(sass)
    ops = collections.Counter(re.sub(r"^@!?U?P\w+\s+", "", ins).split()[0].split(".")[0] for ins in body)
    elems = args.block_l * 16 * args.block_d
    regs = registers(k.asm["ptx"])
    print(f"{args.kernel} d{args.block_d} l{args.block_l} w{args.num_warps}: loop body {len(body)} "
          f"warp-instructions = {len(body) / elems:.3f} per state element, {regs} registers")
    print(" ".join(f"{op}:{n}" for op, n in ops.most_common()))


if __name__ == "__main__":
    main()
