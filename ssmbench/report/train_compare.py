"""Renderer of train-compare folders: summary.md, the final table and the plots, from the files.

metrics.csv is long: one row per (model, step, metric) with its value, training seconds and
tokens so far, and the kernels that ran. summary.json is a list with one object per model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from rich import box
from rich.table import Table

from ssmbench.models.official import display_name
from ssmbench.report.figures import save_png
from ssmbench.report.tables import fmt, markdown_table
from ssmbench.results import SUMMARY_MD, LoadedRun, atomic_write_text

KEY_COLUMNS = ["model", "step", "metric"]
VALUE_COLUMNS = ["value"]

TABLE_COLUMNS = {
    # summary key -> column title
    "name": "model",
    "status": "status",
    "params_total_nonembed": "params (non-emb)",
    "params_active_nonembed": "active (non-emb)",
    "final_eval_loss": "eval loss",
    "final_eval_bpb": "BPB",
    "final_train_loss_ema": "train loss EMA",
    "steps_to_target": "steps to target",
    "steps_to_target_text": "% of ref steps",
    "speedup": "speedup",
    "tokens_per_s": "tokens/s",
    "peak_mem_mb": "peak MB",
}
BYTES_COLUMNS = {"flops_per_byte": "FLOPs/byte"}
ZOO_COLUMNS = {"flops_per_token": "FLOPs/token"}


def _summary_frame(summary: list[dict[str, Any]] | None, suite: str) -> tuple[pd.DataFrame, dict[str, str]]:
    df = pd.DataFrame(summary or [])
    cols = dict(TABLE_COLUMNS)
    cols.update(BYTES_COLUMNS if suite == "bytes" else ZOO_COLUMNS)
    if df.empty:
        return pd.DataFrame(columns=list(cols.values())), cols
    df["peak_mem_mb"] = df["peak_mem_bytes"].map(lambda b: b / 2**20 if isinstance(b, (int, float)) else None)
    df["name"] = df["name"].map(display_name)
    for c in cols:
        if c not in df:
            df[c] = None
    df = df[list(cols)].rename(columns=cols)
    return df, cols


def _paper_frame(summary: list[dict[str, Any]]) -> pd.DataFrame | None:
    rows = []
    for s in summary:
        if s.get("paper_final_loss") is None and s.get("paper_steps_pct") is None:
            continue
        ema = s.get("target_metric") == "train_loss_ema"
        rows.append({
            "model": s["name"],
            "paper final loss": s.get("paper_final_loss"),
            "measured final": s.get("final_train_loss_ema") if ema else s.get("final_eval_loss"),
            "paper % of ref steps": s.get("paper_steps_pct"),
            "measured % of ref steps": s.get("steps_to_target_pct"),
        })  # fmt: skip
    return pd.DataFrame(rows) if rows else None


def summary_markdown(manifest: dict[str, Any], summary: list[dict[str, Any]]) -> str:
    """summary.md: setup, the results table with parameter counts, the target, paper figures."""
    cfg = manifest.get("config", {})
    train = cfg.get("train", {})
    data = manifest.get("data", {}) or {}
    tok = manifest.get("tokenizer", {}) or {}
    ev = manifest.get("eval", {}) or {}
    env = manifest.get("environment", {}) or {}
    suite = cfg.get("suite", "zoo")
    lines = [f"# train-compare: preset `{cfg.get('preset')}` (suite {suite})", ""]
    lines.append(
        f"- data: {data.get('name')} ({data.get('train_bytes')} train bytes, {data.get('val_bytes')} "
        f"validation bytes)"
    )
    if data.get("entropy_rate_bits_per_byte") is not None:
        floor = data.get("loss_floor_nats_per_token")
        lines.append(
            f"- the source's entropy rate (no model can beat it): {data['entropy_rate_bits_per_byte']:.4f} "
            f"bits/byte = {fmt(floor)} nats/token with this tokenizer"
        )
    lines.append(f"- tokenizer: {tok.get('used')} (vocab {tok.get('vocab_size')}; {tok.get('reason')})")
    lines.append(
        f"- training: {train.get('steps')} steps, batch {train.get('batch_size')}, context "
        f"{train.get('seq_len')}, AdamW lr {train.get('lr')} ({train.get('schedule')}, warm-up "
        f"{train.get('warmup_frac')}), clip {train.get('grad_clip')}, weight decay "
        f"{train.get('weight_decay')}, seed {manifest.get('seed')}"
    )
    lines.append(
        f"- evaluation: every {train.get('eval_interval')} steps on {ev.get('windows')} fixed validation "
        f"windows ({ev.get('mode')}, stride {ev.get('stride')}; {ev.get('scored_tokens')} tokens = "
        f"{ev.get('scored_bytes')} bytes scored)"
    )
    lines.append(f"- device: {env.get('device_name')}; torch {env.get('torch')}; commit {env.get('commit')}")
    if summary:
        s0 = summary[0]
        target = s0.get("target_value")
        lines.append(
            f"- steps-to-target on `{s0.get('target_metric')}`: target "
            f"{fmt(target) if target is not None else 'not set yet'} ({s0.get('target_source')}); "
            f"reference `{s0.get('reference')}`"
        )
    if cfg.get("reference_note"):
        lines.append(f"- note: {cfg['reference_note']}")
    df, _ = _summary_frame(summary, suite)
    lines += ["", "## Results", "", markdown_table(df)]
    bad = [s for s in summary if s.get("status") not in ("done",)]
    for s in bad:
        lines.append(f"- `{s['name']}`: {s.get('status')}" + (f" ({s['error']})" if s.get("error") else ""))
    paper = manifest.get("paper")
    pf = _paper_frame(summary)
    if paper and pf is not None:
        lines += ["", "## Beside the paper", "", f"{paper.get('source')}; metric: {paper.get('metric')}.",
                  "Absolute losses differ with data and length of training; compare the ordering and ratios.",
                  "", markdown_table(pf)]
    lines += ["", "## Plots", ""]
    lines += [f"![{p}]({p}.png)" for p in PLOTS]
    lines += ["", "Definitions: loss in nats per token; BPB = summed token NLL / ln 2 / raw bytes covered; "
              "steps to target interpolated linearly between evaluations; % of ref steps = steps / "
              "reference's steps (>100% when never reached); speedup = reference's steps / steps; "
              "tokens/s is the median over logged intervals after the first; parameter counts leave out "
              "the token embedding and LM head; active = what one token uses.", ""]
    return "\n".join(lines)


PLOTS = ("loss_vs_steps", "loss_vs_time", "bpb_vs_steps", "steps_to_target")


def _curves(metrics: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    if metrics.empty:
        return {}
    df = metrics[metrics["metric"] == metric]
    return {str(m): g.sort_values("step") for m, g in df.groupby("model", sort=False)}


def _line_plot(metrics: pd.DataFrame, metric: str, x: str, title: str, ylabel: str,
               hlines: list[tuple[float, str]], log_x: bool) -> Figure:
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    for name, g in _curves(metrics, metric).items():
        g = g[g["step"] > 0] if log_x else g
        ax.plot(g[x], g["value"], marker="o", markersize=3, label=name)
    for y, label in hlines:
        if y is not None and math.isfinite(y):
            ax.axhline(y, color="gray", linestyle="--", linewidth=1)
            ax.annotate(label, (0.01, y), xycoords=("axes fraction", "data"), fontsize=8, color="gray",
                        va="bottom")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel({"step": "training step" + (" (log)" if log_x else ""), "wall_s": "training time (s)"}[x])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _bars(summary: list[dict[str, Any]]) -> Figure:
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    names = [s["name"] for s in summary]
    measured = [s.get("steps_to_target_pct") for s in summary]
    paper = [s.get("paper_steps_pct") for s in summary]
    has_paper = any(p is not None for p in paper)
    w = 0.4 if has_paper else 0.6
    xs = range(len(names))
    heights = [m if m is not None else 100.0 for m in measured]
    bars = ax.bar([i - (w / 2 if has_paper else 0) for i in xs], heights, w, label="measured")
    for b, m, s in zip(bars, measured, summary, strict=True):
        text = f"{m:.0f}%" if m is not None else (s.get("steps_to_target_text") or "n/a")
        if m is None:
            b.set_hatch("//")
            b.set_alpha(0.4)
        ax.annotate(text, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                    fontsize=8)
    if has_paper:
        pb = ax.bar([i + w / 2 for i in xs], [p or 0 for p in paper], w, label="paper", color="gray")
        for b, p in zip(pb, paper, strict=True):
            if p is not None:
                ax.annotate(f"{p:.0f}%", (b.get_x() + b.get_width() / 2, p), ha="center", va="bottom",
                            fontsize=8)
    ax.axhline(100, color="black", linewidth=0.8)
    ax.set_xticks(list(xs), names, rotation=20)
    metric = summary[0].get("target_metric") if summary else ""
    ax.set_ylabel(f"% of the reference's steps to reach the target {metric}")
    ax.set_title("steps to target (lower is better; hatched: never reached)")
    ax.legend(fontsize=8)
    return fig


def render_summary(run: LoadedRun, out: Path) -> Path:
    """Write summary.md alone into ``out`` (cheap: the CLI calls it after every evaluation)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SUMMARY_MD, summary_markdown(run.manifest, run.summary or []))
    return out / SUMMARY_MD


def render(run: LoadedRun, out: Path) -> list[Path]:
    """Write summary.md and the PNG plots into ``out`` from the run's files."""
    md = render_summary(run, out)
    summary = run.summary or []
    manifest = run.manifest
    data = manifest.get("data", {}) or {}
    target = summary[0].get("target_value") if summary else None
    metric = summary[0].get("target_metric") if summary else "eval_loss"
    floor_loss = data.get("loss_floor_nats_per_token")
    floor_bpb = data.get("entropy_rate_bits_per_byte")
    loss_lines = [(floor_loss, "entropy floor")]
    if metric == "eval_loss" and target is not None:
        loss_lines.append((target, "target"))
    bpb_lines = [(floor_bpb, "entropy floor")]
    if metric == "eval_bpb" and target is not None:
        bpb_lines.append((target, "target"))
    m = run.metrics
    loss = "loss (nats/token)"
    figures = {
        "loss_vs_steps": _line_plot(m, "eval_loss", "step", "validation loss against steps", loss,
                                    loss_lines, log_x=True),
        "loss_vs_time": _line_plot(m, "eval_loss", "wall_s", "validation loss against training time", loss,
                                   loss_lines, log_x=False),
        "bpb_vs_steps": _line_plot(m, "eval_bpb", "step", "bits per byte against steps", "bits per byte",
                                   bpb_lines, log_x=True),
        "steps_to_target": _bars(summary),
    }
    paths = [save_png(fig, out, name) for name, fig in figures.items()]
    return [md, *paths]


CONSOLE_COLUMNS = {
    # summary key -> short title (the table has to fit a terminal)
    "name": "model",
    "status": "status",
    "params_total_nonembed": "params",
    "params_active_nonembed": "active",
    "final_eval_loss": "loss",
    "final_eval_bpb": "BPB",
    "steps_to_target": "steps",
    "steps_to_target_text": "% ref",
    "speedup": "speedup",
    "tokens_per_s": "tok/s",
}


def console_table(run: LoadedRun) -> Table:
    """The final table: every model with its parameter counts (non-embedding, total and active)
    beside its results; the target and FLOPs are in the caption."""
    cfg = run.manifest.get("config", {})
    summary = run.summary or []
    flops_key = "flops_per_byte" if cfg.get("suite") == "bytes" else "flops_per_token"
    table = Table(title=f"train-compare {cfg.get('preset')}", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for title in CONSOLE_COLUMNS.values():
        table.add_column(title, justify="left" if title in ("model", "status", "% ref") else "right",
                         no_wrap=title == "model")
    for s in summary:
        shown = {**s, "name": display_name(s["name"])}
        table.add_row(*(_cell(shown.get(k)) for k in CONSOLE_COLUMNS))
    if summary:
        s0 = summary[0]
        flops = ", ".join(f"{s['name']} {fmt(s.get(flops_key))}" for s in summary)
        target = s0.get("target_value")
        table.caption = (f"params: non-embedding (total / active per token). target "
                         f"{s0.get('target_metric')} {fmt(target) if target is not None else '-'} "
                         f"({s0.get('target_source')}). {flops_key}: {flops}")
    return table


def _cell(v: object) -> str:
    """Counts (and rates from 10^4 up) as 98.9k / 1.31M / 2.1B; other numbers through fmt."""
    if isinstance(v, float) and v >= 1e4:
        v = int(round(v))
    if isinstance(v, int) and not isinstance(v, bool):
        for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= scale:
                return f"{v / scale:.3g}{unit}"
        return str(v)
    return fmt(v) if v is not None else "-"
