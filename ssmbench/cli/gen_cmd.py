"""`ssmbench gen-speed`: generation throughput and per-step latency of byte-level models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ssmbench.cli.app import app
from ssmbench.cli.common import cli_errors, console, err_console, print_json
from ssmbench.cli.progress import progress_for
from ssmbench.errors import BadInput
from ssmbench.generate.sampling import Sampling
from ssmbench.generate.speed import GenSpeedConfig, run_gen_speed, select_models
from ssmbench.generate.verify import VerifyResult
from ssmbench.report.gen_speed import console_table, render
from ssmbench.report.tables import fmt
from ssmbench.results import load_run


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise BadInput(f"--batch-sizes wants comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise BadInput(f"--batch-sizes must be positive integers, got {text!r}")
    return sizes


def read_prompt(path: Path) -> bytes:
    if not path.is_file():
        raise BadInput(f"prompt file {path} does not exist")
    data = path.read_bytes()
    if not data:
        raise BadInput(f"prompt file {path} is empty")
    return data


def verify_table(results: list[VerifyResult]) -> Table:
    table = Table(title="cached decoding (prefill + steps) against the forward pass, float32")
    for c in ("model", "path", "max |diff|", "relative", "tolerance", "result"):
        table.add_column(c)
    for r in results:
        ok = "[green]pass[/]" if r.passed else "[bold red]FAIL[/]"
        table.add_row(r.model, r.path, fmt(r.max_abs_diff), fmt(r.rel_diff), fmt(r.tolerance), ok)
    return table


@app.command("gen-speed")
@cli_errors
def gen_speed_command(
    preset: Annotated[
        str | None, typer.Option(help="Model set (gen-smoke, gen-small, gen-paper, bytes-*...).")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated model names (from --preset, or any set); NAME@mamba_ssm is "
                     "mamba_ssm's own model of NAME's size, decoded by its generate(cg=True)."),
    ] = None,
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8,64",
    gen_len: Annotated[int, typer.Option(help="Bytes to generate per sequence.")] = 8192,
    prompt_len: Annotated[int, typer.Option(help="Random prompt length in bytes.")] = 16,
    prompt_file: Annotated[
        Path | None, typer.Option(help="Use this file's bytes as the prompt (overrides --prompt-len).")
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16.")
    ] = "auto",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    cuda_graph: Annotated[bool, typer.Option(help="Capture the decode step in CUDA graphs (GPU).")] = True,
    sample: Annotated[bool, typer.Option("--sample/--greedy", help="Sampled or greedy decoding.")] = False,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (with --sample).")] = 1.0,
    top_k: Annotated[
        int | None, typer.Option(help="Sample among the k likeliest bytes (with --sample).")
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="First check cached decoding == forward for every model; exit 1 if not.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for weights and prompt.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Results folder (default results/gen-speed-<time>).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Time prefill and per-byte decoding (recurrent Mamba, KV-cached Transformer, MegaByte
    global/local), random-init weights, against the weight-streaming limit."""
    chosen, preset_name = select_models(preset, models.split(",") if models else None)
    config = GenSpeedConfig(
        models=chosen,
        preset=preset_name,
        batch_sizes=parse_batch_sizes(batch_sizes),
        gen_len=gen_len,
        prompt_len=prompt_len,
        prompt=read_prompt(prompt_file) if prompt_file is not None else None,
        prompt_source=str(prompt_file) if prompt_file is not None else "random",
        dtype=dtype,
        device=device,
        cuda_graph=cuda_graph,
        sampling=Sampling(greedy=not sample, temperature=temperature, top_k=top_k),
        verify=verify,
        seed=seed,
    )
    result = run_gen_speed(config, out, progress=progress_for(json_out))
    run = None
    if result.folder is not None:
        run = load_run(result.folder)
        render(run, result.folder)
    if json_out:
        print_json({
            "folder": str(result.folder) if result.folder else None,
            "verify": [v.to_dict() for v in result.verify] or None,
            "summary": result.summary,
        })  # fmt: skip
    else:
        if result.verify:
            console.print(verify_table(result.verify))
        if run is not None:
            console.print(console_table(run))
            console.print(f"results in {result.folder}")
    if not result.verify_passed:
        err_console.print("error: cached decoding differs from the forward pass beyond tolerance")
        raise typer.Exit(1)
