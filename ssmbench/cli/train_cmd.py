"""`ssmbench train-compare`: train models on one data stream; steps-to-loss, BPB, throughput."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ssmbench.cli.app import app
from ssmbench.cli.common import cli_errors, console, print_json
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
        str | None, typer.Option(help="Comma list of models (default: all of the preset).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps per model.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per step.")] = None,
    seq_len: Annotated[int | None, typer.Option(help="Context length in tokens.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak AdamW learning rate.")] = None,
    data: Annotated[
        str | None, typer.Option(help="synthetic (default), enwik8, hf:c4, hf:pg19 or a path.")
    ] = None,
    tokenizer: Annotated[str | None, typer.Option(help="bytes, gpt2, gpt2:DIR, bpe or bpe:N.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    seed: Annotated[int | None, typer.Option(help="Seed of data, init and batches (default 0).")] = None,
    experts: Annotated[int | None, typer.Option(help="Experts per MoE layer (the paper's ablation).")] = None,
    reference: Annotated[str | None, typer.Option(help="Model whose final loss is the target.")] = None,
    target_loss: Annotated[
        float | None, typer.Option(help="Explicit target instead of the reference's.")
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
    """Train the chosen models on the same data and batches; report steps-to-target, loss, BPB,
    tokens/s and memory beside each model's parameter counts."""
    progress = progress_for(json_out)
    if resume is not None:
        given = {k: v for k, v in dict(
            preset=preset, suite=suite, models=models, steps=steps, batch_size=batch_size, seq_len=seq_len,
            lr=lr, data=data, tokenizer=tokenizer, seed=seed, experts=experts, reference=reference,
            target_loss=target_loss, eval_interval=eval_interval, eval_mode=eval_mode,
            eval_stride=eval_stride, checkpoint_every=checkpoint_every, threads=threads,
        ).items() if v is not None}  # fmt: skip
        if given or (out is not None and out != resume):
            names = ", ".join("--" + k.replace("_", "-") for k in given) or "--out"
            raise BadInput(f"--resume takes its settings from {resume}/manifest.json; drop {names}")
        result = resume_compare(resume, device=device, progress=progress, results_changed=_render_summary,
                                fsdp=fsdp)
    else:
        request = CompareRequest(
            preset=preset, suite=suite, models=_split(models), steps=steps, batch_size=batch_size,
            seq_len=seq_len, lr=lr, eval_interval=eval_interval, eval_mode=eval_mode, eval_stride=eval_stride,
            checkpoint_every=checkpoint_every, data=data, tokenizer=tokenizer, seed=seed or 0,
            experts=experts, reference=reference, target_loss=target_loss, threads=threads,
        )  # fmt: skip
        result = run_compare(plan_compare(request), out, device=device, progress=progress,
                             results_changed=_render_summary, fsdp=fsdp)
    if not is_main_process():
        return  # under torchrun rank 0 alone renders and prints
    renderer.render(load_run(result.path), result.path)
    if json_out:
        print_json({"run": str(result.path), "summary": result.summary})
        return
    console.print(renderer.console_table(load_run(result.path)))
    console.print(f"results: {result.path}")


def _render_summary(folder: Path) -> None:
    """summary.md after every evaluation, so a user can watch it during a long run."""
    renderer.render_summary(load_run(folder), folder)


def _split(models: str | None) -> tuple[str, ...] | None:
    if models is None:
        return None
    names = tuple(m.strip() for m in models.split(",") if m.strip())
    if not names:
        raise BadInput("--models is empty")
    return names
