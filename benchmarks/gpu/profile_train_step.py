"""Where one paper-v1 training step's time goes: GPU busy time against wall time, top kernels.

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu/profile_train_step.py [MODEL ...]

Builds each model of the 'paper-v1' set (default: mamba-mlp and moe-mamba) as
benchmarks/test_train_step.py does (64 x 256 tokens, bf16 autocast, AdamW), warms up, then
prints the median wall time of 5 synchronised steps and a torch.profiler table of one step: if
the summed kernel time is far below the wall time, the step waits on the host.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from ssmbench.models.registry import build_model, get_model_set

DEV = torch.device("cuda")


def profile(name: str) -> None:
    cfg = get_model_set("paper-v1").get(name)
    torch.manual_seed(0)
    model = build_model(cfg).to(DEV)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    idx = torch.randint(0, cfg.vocab_size, (64, 257), device=DEV)
    x, y = idx[:, :-1], idx[:, 1:]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x, y)
        (out.loss + out.aux_loss).backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    walls = []
    for _ in range(5):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        walls.append((time.perf_counter() - t0) * 1e3)
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    gpu_ms = sum(e.self_device_time_total for e in events) / 1e3
    print(f"== {name}: wall {statistics.median(walls):.2f} ms (5 steps), kernels {gpu_ms:.2f} ms")
    print(events.table(sort_by="self_device_time_total", row_limit=18, max_name_column_width=60))
    print(events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60))


if __name__ == "__main__":
    for model_name in sys.argv[1:] or ["mamba-mlp", "moe-mamba"]:
        profile(model_name)
