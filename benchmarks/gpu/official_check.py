"""ssmbench's Mamba beside mamba_ssm's MambaLMHeadModel at paper-v1 size, on CUDA.

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu/official_check.py [MODEL ...] [--json PATH]

Builds ``mamba`` and ``mamba@mamba_ssm`` of the paper-v1 set (16 x d 512, GPT-2 vocabulary) the
way train-compare does (``ssmbench.models.official``), checks that their parameter counts agree
within 1%, and times one training step of each exactly as the training-step benchmark runs it
(64 x 256 tokens, bf16 autocast, the trainer's fused AdamW): the median of 10 synchronised steps,
in two alternating rounds after 3 warm-up steps. MODEL adds other models of the set to the rounds
(e.g. transformer mamba-mlp moe-mamba, for the step ratios). Then, for one step of each, the
profiler's aten::copy_ count and time and the GPU time by kernel kind, and the op counts of one
ssmbench Mamba layer (forward + backward) from ssmbench/bench/op_counts.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

from ssmbench.models.official import with_references
from ssmbench.models.registry import build_model, get_model_set
from ssmbench.models.size import param_counts
from ssmbench.train.loop import make_optimizer, optimizer_record
from ssmbench.train.presets import get_train_preset

DEV = torch.device("cuda")
BATCH, SEQ = 64, 256
GROUPS = (
    ("scan", ("selective_scan", "scan_fwd", "scan_bwd")),
    ("conv", ("conv", "causal_conv1d")),
    ("gemm", ("gemm", "gemv", "sm90", "cutlass", "nvjet", "xmma", "cublas", "matmul")),
    ("norm", ("layer_norm", "layernorm", "rms", "_layer_norm")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("loss", ("cross_entropy", "log_softmax", "nll", "softmax")),
    ("copy", ("copy", "cat")),
)


def make_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = make_optimizer(model, get_train_preset("paper-v1").train)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x, y)
        (out.loss + out.aux_loss).backward()
        opt.step()

    return step, opt


def timed(step, n: int) -> list[float]:
    walls = []
    for _ in range(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        walls.append((time.perf_counter() - t0) * 1e3)
    return walls


def profile_step(step) -> dict[str, float]:
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    copy = next((e for e in events if e.key == "aten::copy_"), None)
    groups: dict[str, float] = defaultdict(float)
    for e in events:
        if e.self_device_time_total > 0:
            name = e.key.lower()
            kind = next((g for g, keys in GROUPS if any(k in name for k in keys)), "other")
            groups[kind] += e.self_device_time_total / 1e3
    return {
        "copy_calls": copy.count if copy else 0,
        "copy_ms": copy.device_time_total / 1e3 if copy else 0.0,
        "gpu_ms": sum(groups.values()),
        **{f"{k}_ms": round(v, 3) for k, v in groups.items()},
    }


def layer_op_counts() -> dict[str, int]:
    """One ssmbench Mamba layer of paper-v1 size, forward + backward under bf16 autocast."""
    from ssmbench.bench.op_counts import count_ops
    from ssmbench.layers.mamba import Mamba

    layer = Mamba(512).to(DEV)
    x = torch.randn(BATCH, SEQ, 512, device=DEV, requires_grad=True)

    def fwd_bwd() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = layer(x)
        out.backward(torch.ones_like(out))

    fwd_bwd()
    counts = count_ops(fwd_bwd, large=BATCH * SEQ * 512)
    for entry in counts.log:
        print("   large op:", entry)
    return counts.table()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", help="other paper-v1 models to time in the same rounds")
    ap.add_argument("--json")
    args = ap.parse_args()
    names = ["mamba", "mamba@mamba_ssm", *args.models]
    model_set = with_references(get_model_set("paper-v1"), names)
    torch.manual_seed(0)
    vocab = model_set.get("mamba").vocab_size
    idx = torch.randint(0, vocab, (BATCH, SEQ + 1), device=DEV)
    x, y = idx[:, :-1], idx[:, 1:]
    result: dict[str, dict] = {}
    steps = {}
    for name in names:
        torch.manual_seed(0)
        model = build_model(model_set.get(name)).to(DEV)
        steps[name], opt = make_step(model, x, y)
        steps[name]()  # optimizer state, autotuning, mamba_ssm's kernels loaded
        counts = param_counts(model)
        result[name] = {"params_total": counts.total, "params_nonembed": counts.total_nonembed,
                        "optimizer": optimizer_record(opt), "kernels": model.kernel_paths()}  # fmt: skip
        print(f"{name}: {counts.total:,} params ({counts.total_nonembed:,} non-embedding); "
              f"{result[name]['optimizer']}; {result[name]['kernels']}")
    ours, official = result["mamba"]["params_total"], result["mamba@mamba_ssm"]["params_total"]
    rel = abs(ours - official) / official
    print(f"parameter counts: ours {ours:,}, mamba_ssm {official:,}, relative difference {rel:.2e}")
    assert rel <= 0.01, f"parameter counts differ by {rel:.2%}: the models are not the same size"
    for step in steps.values():
        timed(step, 3)
    for _ in range(2):
        for name, step in steps.items():
            result[name].setdefault("rounds_ms", []).append(statistics.median(timed(step, 10)))
    for name, step in steps.items():
        result[name]["profile"] = profile_step(step)
        print(f"== {name}: median step {[round(v, 2) for v in result[name]['rounds_ms']]} ms; "
              f"one step: {result[name]['profile']}")
    rounds = zip(result["mamba"]["rounds_ms"], result["mamba@mamba_ssm"]["rounds_ms"], strict=True)
    ratio = [a / b for a, b in rounds]
    print(f"ssmbench mamba / mamba_ssm step time: {[round(r, 3) for r in ratio]}")
    result["mamba_layer_op_counts"] = layer_op_counts()
    print("one ssmbench Mamba layer, forward + backward:", result["mamba_layer_op_counts"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
