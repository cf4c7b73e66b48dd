"""`ssmbench kernel-profile`: scan kernels (and attention) swept over shapes; the regression gate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape

from ssmbench.cli.app import app
from ssmbench.cli.common import cli_errors, console, print_json
from ssmbench.cli.progress import progress_for
from ssmbench.device import dtype_name, resolve_device
from ssmbench.errors import BadInput
from ssmbench.profile.baseline import load_baseline
from ssmbench.profile.kernels import KIND, GateOptions, KernelProfileRun, run_kernel_profile
from ssmbench.profile.plan import plan, plan_from_baseline
from ssmbench.profile.presets import PRESETS
from ssmbench.profile.regression import GateRule
from ssmbench.profile.spec import (
    parse_impls,
    parse_modes,
    parse_percent,
    parse_shape,
    split_list,
)
from ssmbench.report.kernel_profile import console_table, gate_table, render
from ssmbench.report.tables import fmt
from ssmbench.results import GATE_CSV, MANIFEST, LoadedRun, default_run_dir, load_run


def _print_presets(json_out: bool) -> None:
    if json_out:
        print_json({name: vars(p) for name, p in PRESETS.items()})
        return
    for name, p in PRESETS.items():
        console.print(f"[bold]{name}[/]: {escape(p.description)}")
        console.print(f"  shapes (batch,dim,L,N): {list(p.shapes)}", highlight=False)
        console.print(f"  modes {list(p.modes)}, dtypes {list(p.dtypes)}, head_dim {p.head_dim}, "
                      f"rep_ms {p.rep_ms}, min_reps {p.min_reps}", highlight=False)


def _report(result: KernelProfileRun, run: LoadedRun, written: list[Path], json_out: bool) -> None:
    if json_out:
        rows = result.metrics.astype(object).where(pd.notna(result.metrics), None)
        print_json({
            "out": str(result.path),
            "summary": result.summary,
            "rows": rows.to_dict(orient="records"),
            "gate": [vars(g) for g in result.gate] if result.gate is not None else None,
            "exit_code": result.exit_code,
            "baseline_saved": str(result.baseline_saved) if result.baseline_saved else None,
        })
        return
    # Piped output (a CI log) gets a wide layout instead of rich's 80 columns.
    out = console if console.is_terminal else Console(width=max(console.width, 160))
    out.print(console_table(run))
    if result.gate is not None:
        gate = pd.read_csv(result.path / GATE_CSV)
        out.print(gate_table(gate))
        g = result.summary.get("gate", {})
        missing = g.get("could_not_compare", [])
        if missing:
            effect = "allowed by --allow-missing" if g.get("allow_missing") else "these fail the gate"
            console.print(f"could not compare {len(missing)} row(s) ({effect}): "
                          + "; ".join(f"{m['row_id']} ({m['reason']})" for m in missing), highlight=False)
        verdict = "FAILED" if result.exit_code else "passed"
        console.print(f"gate {verdict}: {g.get('verdicts')}, worst ratio {fmt(g.get('worst_ratio'))}",
                      highlight=False)
    if result.baseline_saved is not None:
        console.print(f"baseline written to {result.baseline_saved}")
    for p in written:
        console.print(f"wrote {p}")


@app.command("kernel-profile")
@cli_errors
def kernel_profile_command(
    preset: Annotated[str | None, typer.Option(
        help=f"Named sweep: {', '.join(PRESETS)} (default: smoke on CPU, standard on CUDA).")] = None,
    shape: Annotated[list[str] | None, typer.Option(
        help="batch,dim,seqlen,dstate (repeatable); replaces the preset's shapes.")] = None,
    impl: Annotated[list[str] | None, typer.Option(
        help="ref, chunked, triton, mamba_ssm, attention (repeatable or comma list; default: all usable).")]
    = None,
    mode: Annotated[list[str] | None, typer.Option(help="fwd, fwd_bwd, step (repeatable or comma list).")]
    = None,
    dtype: Annotated[list[str] | None, typer.Option(help="float32, bfloat16, float16 (repeatable).")] = None,
    head_dim: Annotated[int | None, typer.Option(help="Attention head size; n_heads = dim / head_dim.")]
    = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "auto",
    out: Annotated[Path | None, typer.Option(help="Results folder (default results/kernel-profile-<time>).")]
    = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    warmup_ms: Annotated[float | None, typer.Option(help="Warm-up time per row and round (ms).")] = None,
    rep_ms: Annotated[float | None, typer.Option(help="Timed time per row and round (ms).")] = None,
    min_reps: Annotated[int | None, typer.Option(
        help="At least this many samples per row and round.")] = None,
    threads: Annotated[int | None, typer.Option(
        help="torch CPU threads for a CPU run (default: the preset's; smoke uses 1).")] = None,
    rounds: Annotated[int | None, typer.Option(
        help="Passes over the sweep; each row's samples are spread over them (smoke: 8).")] = None,
    cpu_clock: Annotated[str | None, typer.Option(
        help="CPU samples: wall, or thread (the timing thread's CPU time; smoke's default).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random inputs.")] = 0,
    save_baseline: Annotated[Path | None, typer.Option(
        help="Also write the rows and all timing samples as a baseline JSON here.")] = None,
    compare: Annotated[Path | None, typer.Option(
        help="Rerun this baseline's rows and gate on them (exit 1 on a regression).")] = None,
    max_regression: Annotated[str | None, typer.Option(
        help="Allowed slowdown before a row can regress, e.g. 10% (default 10%).")] = None,
    p_threshold: Annotated[float, typer.Option(help="One-sided Mann-Whitney U level.")] = 0.002,
    normalize: Annotated[str, typer.Option(
        help="none, or ceilings: scale times by the ratio of in-run copy bandwidths.")] = "none",
    retries: Annotated[int, typer.Option(help="Re-measure a regressed row this many times.")] = 2,
    allow_device_mismatch: Annotated[bool, typer.Option(
        help="Compare against a baseline from another device kind.")] = False,
    allow_missing: Annotated[bool, typer.Option(
        help="Let baseline rows that cannot be compared (skipped or failed here or in the baseline) "
             "pass the gate; by default they fail it.")] = False,
    list_presets: Annotated[bool, typer.Option(help="Print the presets and exit.")] = False,
) -> None:
    """Time selective-scan implementations (and causal attention) over shapes: latency, FLOPs, bytes,
    roofline fraction, error against ref. With --compare, gate the timings against a baseline."""
    if list_presets:
        _print_presets(json_out)
        return
    dev = resolve_device(device)
    if retries < 0:
        raise BadInput(f"--retries must be >= 0, got {retries}")
    gate = None
    if compare is not None:
        chosen = {"--preset": preset, "--shape": shape, "--impl": impl, "--mode": mode, "--dtype": dtype,
                  "--head-dim": head_dim, "--threads": threads, "--rounds": rounds, "--cpu-clock": cpu_clock}
        given = [k for k, v in chosen.items() if v]
        if given:
            raise BadInput(f"--compare reruns the baseline's rows; drop {', '.join(given)}")
        rule = GateRule(parse_percent(max_regression or "10%"), p_threshold, normalize)
        baseline = load_baseline(compare)
        gate = GateOptions(baseline, rule, retries, allow_device_mismatch, allow_missing=allow_missing)
        config = plan_from_baseline(baseline, dev, warmup_ms=warmup_ms, rep_ms=rep_ms, min_reps=min_reps)
    else:
        if max_regression is not None or normalize != "none" or allow_device_mismatch or allow_missing:
            raise BadInput(
                "--max-regression, --normalize, --allow-device-mismatch and --allow-missing need --compare"
            )
        config = plan(
            dev,
            preset=preset,
            shapes=[parse_shape(s) for s in shape or ()],
            impls=parse_impls(split_list(impl)),
            modes=parse_modes(split_list(mode)),
            dtypes=[dtype_name(d) for d in split_list(dtype)],
            head_dim=head_dim,
            warmup_ms=warmup_ms,
            rep_ms=rep_ms,
            min_reps=min_reps,
            threads=threads,
            rounds=rounds,
            cpu_clock=cpu_clock,
            seed=seed,
        )
    folder = out if out is not None else default_run_dir(KIND)
    try:
        result = run_kernel_profile(
            config, folder, gate=gate, save_baseline_to=save_baseline, progress=progress_for(json_out),
            command_line=["ssmbench", *sys.argv[1:]],
        )
    except KeyboardInterrupt:
        # The task wrote every row measured before the Ctrl-C: render those too.
        if (folder / MANIFEST).is_file():
            render(load_run(folder), folder)
        raise
    run = load_run(result.path)
    _report(result, run, render(run, result.path), json_out)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
    nothing = result.nothing_measured()
    if nothing is not None:
        raise BadInput(nothing)
