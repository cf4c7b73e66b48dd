"""`ssmbench gen-speed`: generation throughput and per-step latency of byte-level models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ssmbench.cli.app import app
from ssmbench.cli.common import cli_errors, console, err_console, print_json
from ssmbench.cli.progress import progress_for
from ssmbench.errors import BadInput
from ssmbench.generate.presets import describe_defaults, gen_defaults
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
    dtype = results[0].dtype if results else "float32"
    table = Table(
        title=f"cached decoding (prefill + steps) against the forward pass, {dtype}",
        caption="error: worst position's relative difference of the logits (must be <= tolerance); "
        "sensitivity: how far the prompt moves the second half's logits (must be >= minimum)",
    )
    for c in ("model", "path", "positions", "error", "tolerance", "sensitivity", "minimum", "result"):
        table.add_column(c)
    for r in results:
        ok = "[green]pass[/]" if r.passed else f"[bold red]FAIL[/] {escape(r.reason)}"
        table.add_row(r.model, escape(r.path), f"{r.prefill_len - 1}..{r.seq_len - 1}", fmt(r.error),
                      fmt(r.tolerance), fmt(r.sensitivity), fmt(r.min_sensitivity), ok)
    return table


@app.command("gen-speed")
@cli_errors
def gen_speed_command(
    preset: Annotated[
        str | None, typer.Option(help="Model set (gen-smoke, gen-small, gen-paper, bytes-*...; default "
                                 "gen-smoke unless --models names models of another set).")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated model names (from --preset, or any set); NAME@mamba_ssm is "
                     "mamba_ssm's own model of NAME's size, decoded by its generate(cg=True)."),
    ] = None,
    batch_sizes: Annotated[str | None, typer.Option(
        help="Comma-separated batch sizes (default: the preset's, see --gen-len).")] = None,
    gen_len: Annotated[int | None, typer.Option(
        help=f"Bytes to generate per sequence. Defaults by preset: {describe_defaults()}; "
             "other sets 8192 bytes at 1,8,64.")] = None,
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
    verify: Annotated[bool, typer.Option(
        help="First check, for every model, that cached decoding gives the forward pass's logits far "
             "past the prompt (float32, weights that make the state matter); exit 1 if not.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for weights and prompt.")] = 0,
    threads: Annotated[int | None, typer.Option(
        help="torch CPU threads for a CPU run (default: the preset's; gen-smoke 1, else PyTorch's).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Results folder (default results/gen-speed-<time>).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Time prefill and per-byte decoding (recurrent Mamba, KV-cached Transformer, MegaByte
    global/local), random-init weights, against the weight-streaming limit."""
    chosen, preset_name = select_models(preset, models.split(",") if models else None)
    defaults = gen_defaults(preset_name)
    config = GenSpeedConfig(
        models=chosen,
        preset=preset_name,
        batch_sizes=parse_batch_sizes(batch_sizes) if batch_sizes is not None else defaults.batch_sizes,
        gen_len=gen_len if gen_len is not None else defaults.gen_len,
        prompt_len=prompt_len,
        prompt=read_prompt(prompt_file) if prompt_file is not None else None,
        prompt_source=str(prompt_file) if prompt_file is not None else "random",
        dtype=dtype,
        device=device,
        cuda_graph=cuda_graph,
        sampling=Sampling(greedy=not sample, temperature=temperature, top_k=top_k),
        verify=verify,
        seed=seed,
        threads=threads if threads is not None else defaults.cpu_threads,
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
        failed = "; ".join(f"{v.model}: {v.reason}" for v in result.verify if not v.passed)
        err_console.print(f"error: --verify failed, nothing measured: {failed}", highlight=False,
                          markup=False)
        raise typer.Exit(1)
    nothing = result.nothing_measured()
    if nothing is not None:
        raise BadInput(nothing)
