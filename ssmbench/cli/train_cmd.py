"""`ssmbench train-compare`: train models on one data stream, over seeds; steps-to-loss, BPB, throughput."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from ssmbench.cli.app import app
from ssmbench.cli.common import cli_errors, console, err_console, print_json
from ssmbench.cli.progress import progress_for
from ssmbench.errors import BadInput
from ssmbench.report import train_compare as renderer
from ssmbench.results import load_run
from ssmbench.train.compare import CompareRequest, plan_compare, resume_compare, run_compare
from ssmbench.train.distributed import is_main_process


@app.command("train-compare")
@cli_errors
def train_compare_command(
    preset: Annotated[str | None, typer.Option(help="smoke, small, paper-v1, paper-v2-25m, paper-v2-100m, "
                                               "bytes-smoke, bytes-small (default smoke).")] = None,
    suite: Annotated[
        str | None, typer.Option(help="zoo or bytes; alone, 'bytes' means preset bytes-smoke.")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma list of models (default: all of the preset); NAME@mamba_ssm adds "
                     "mamba_ssm's own model of NAME's size, e.g. mamba@mamba_ssm (unavailable without "
                     "mamba_ssm)."),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps per model.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per step.")] = None,
    seq_len: Annotated[int | None, typer.Option(help="Context length in tokens.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak AdamW learning rate.")] = None,
    data: Annotated[
        str | None, typer.Option(help="synthetic (default), pystdlib, enwik8, hf:c4, hf:pg19 or a path.")
    ] = None,
    data_bytes: Annotated[
        str | None, typer.Option(help="Training text size in bytes, K/M/G (10^3/10^6/10^9) or Ki/Mi/Gi "
                                      "(2^10/2^20/2^30). Default: a local corpus whole, the unbounded "
                                      "synthetic stream, one pass of streamed C4/PG19; with synthetic data, "
                                      "a finite corpus of that size.")
    ] = None,
    tokenizer: Annotated[str | None, typer.Option(help="bytes, gpt2, gpt2:DIR, bpe or bpe:N.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    devices: Annotated[
        str | None, typer.Option(help="Run the (model, seed) runs side by side, one process per device: "
                                      "a comma list such as cuda:0,cuda:1 (cpu,cpu on a CPU). Not under "
                                      "torchrun.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Base seed (default 0): runs use seeds base, base+1, ... "
                                      "(each sets the init and the data order).")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(help="Runs per model, one per seed (default: the preset's: 3 on GPU "
                                      "presets, 1 on smoke presets).")
    ] = None,
    experts: Annotated[int | None, typer.Option(help="Experts per MoE layer (the paper's ablation).")] = None,
    reference: Annotated[
        str | None, typer.Option(help="Model whose final loss (seed mean, smoothed) is the target.")
    ] = None,
    target_loss: Annotated[
        float | None, typer.Option(help="Explicit target of the headline steps-to-target figure.")
    ] = None,
    eval_interval: Annotated[int | None, typer.Option(help="Steps between evaluations.")] = None,
    eval_mode: Annotated[str | None, typer.Option(help="nonoverlap (default) or sliding.")] = None,
    eval_stride: Annotated[int | None, typer.Option(help="Stride of sliding evaluation windows.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint every N steps (0: never).")] = None,
    threads: Annotated[
        int | None, typer.Option(help="PyTorch CPU threads (default: the preset's, else PyTorch's).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Results folder (default results/train-compare-<time>).")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the comparison in this results folder.")
    ] = None,
    fsdp: Annotated[bool, typer.Option(
        "--fsdp", help="Under torchrun: shard parameters, gradients and optimizer state (FSDP2), not DDP."
    )] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print summary JSON instead of tables.")] = False,
) -> None:
    """Train the chosen models on the same data and batches, once per seed; report steps-to-target,
    loss and BPB (means with 95% intervals over seeds), data passes, tokens/s and memory beside
    each model's parameter counts."""
    progress = progress_for(json_out)
    if resume is not None:
        given = {k: v for k, v in dict(
            preset=preset, suite=suite, models=models, steps=steps, batch_size=batch_size, seq_len=seq_len,
            lr=lr, data=data, data_bytes=data_bytes, tokenizer=tokenizer, seed=seed, seeds=seeds,
            experts=experts, reference=reference, target_loss=target_loss, eval_interval=eval_interval,
            eval_mode=eval_mode, eval_stride=eval_stride, checkpoint_every=checkpoint_every, threads=threads,
        ).items() if v is not None}  # fmt: skip
        if given or (out is not None and out != resume):
            names = ", ".join("--" + k.replace("_", "-") for k in given) or "--out"
            raise BadInput(f"--resume takes its settings from {resume}/manifest.json; drop {names}")
        result = resume_compare(resume, device=device, devices=_devices(devices), progress=progress,
                                results_changed=_render_summary, fsdp=fsdp)
    else:
        request = CompareRequest(
            preset=preset, suite=suite, models=_split(models), steps=steps, batch_size=batch_size,
            seq_len=seq_len, lr=lr, eval_interval=eval_interval, eval_mode=eval_mode, eval_stride=eval_stride,
            checkpoint_every=checkpoint_every, data=data, data_bytes=parse_size(data_bytes),
            tokenizer=tokenizer, seed=seed or 0, seeds=seeds, experts=experts, reference=reference,
            target_loss=target_loss, threads=threads,
        )  # fmt: skip
        result = run_compare(plan_compare(request), out, device=device, devices=_devices(devices),
                             progress=progress, results_changed=_render_summary, fsdp=fsdp)
    if not is_main_process():
        return  # under torchrun rank 0 alone renders and prints
    run = load_run(result.path)
    renderer.render(run, result.path)
    if json_out:
        print_json({"run": str(result.path), "summary": result.summary})
    else:
        console.print(renderer.console_table(run))
        console.print(f"results: {result.path}")
    failed = [f"{m['name']} seed {r['seed']}" for m in result.summary for r in m.get("runs", [])
              if r.get("status") == "failed"]  # fmt: skip
    if failed:
        more = ", ..." if len(failed) > 3 else ""
        err_console.print(f"error: {len(failed)} run(s) failed ({', '.join(failed[:3])}{more}); "
                          f"the errors are in {result.path}/summary.md", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _render_summary(folder: Path) -> None:
    """summary.md after every evaluation, so a user can watch it during a long run."""
    renderer.render_summary(load_run(folder), folder)


def _devices(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(text.split(","))


def _split(models: str | None) -> tuple[str, ...] | None:
    if models is None:
        return None
    names = tuple(m.strip() for m in models.split(",") if m.strip())
    if not names:
        raise BadInput("--models is empty")
    return names


SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_size(text: str | None) -> int | None:
    """'400000', '400K', '1.5M', '2G', '64Mi' (a trailing B is allowed) -> bytes; BadInput unless positive."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([kmg]i?)?b?\s*", text, flags=re.IGNORECASE)
    if m is None:
        raise BadInput(f"--data-bytes {text!r}: expected bytes, e.g. 400000, 400K, 1.5M, 2G or 64Mi")
    n = int(float(m.group(1)) * SIZE_UNITS[(m.group(2) or "").lower()])
    if n <= 0:
        raise BadInput(f"--data-bytes must be positive, got {text!r}")
    return n
