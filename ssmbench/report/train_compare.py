"""Renderer of train-compare folders: summary.md, the final table and the plots, from the files.

metrics.csv is long: one row per (model, seed, step, metric) with its value, training seconds
and tokens so far, and the kernels that ran. summary.json is a list with one object per model:
statistics over its seeds, steps-to-target, and its runs (one per seed) under ``runs``
(ssmbench.train.summary writes it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from rich import box
from rich.markup import escape
from rich.table import Table

from ssmbench.errors import ResultsError
from ssmbench.models.official import display_name
from ssmbench.report.figures import save_png
from ssmbench.report.tables import fmt, markdown_table
from ssmbench.results import SUMMARY_MD, LoadedRun, atomic_write_text

KEY_COLUMNS = ["model", "seed", "step", "metric"]
VALUE_COLUMNS = ["value"]
KINDS = ("eval", "ema")
KIND_TITLE = {"eval": "evaluation", "ema": "training-loss EMA"}
UNITS = {"eval_loss": "nats/token", "train_loss_ema": "nats/token", "eval_bpb": "bits/byte"}
CI_NOTE = "[low, high]: Student-t 95% interval of the mean over seeds (none with one seed)"
PLOTS = ("loss_vs_steps", "loss_vs_time", "bpb_vs_steps", "ema_loss_vs_steps", "final_loss",
         "steps_to_target")


def _summary(run: LoadedRun) -> list[dict[str, Any]]:
    summary = run.summary or []
    if any("runs" not in s for s in summary):
        raise ResultsError(f"{run.path}/summary.json was written by an older ssmbench (one seed, no runs "
                           "per seed); rerun the comparison to render it")
    return summary


def _num(v: Any, digits: int = 4) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt(float(v), digits)


def _whole(v: Any) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.0f}"


def _interval(mean: Any, ci: Sequence[float] | None, form: Callable[[Any], str] = _num) -> str:
    """'3.512 [3.49, 3.534]', '3.512' with one seed, '-' with none."""
    if mean is None:
        return "-"
    return form(mean) if ci is None else f"{form(mean)} [{form(ci[0])}, {form(ci[1])}]"


def _count(v: Any) -> str:
    """Counts (and rates from 10^4 up) as 98.9k / 1.31M / 2.1B; other numbers through fmt."""
    if isinstance(v, float) and math.isfinite(v) and v >= 1e4:
        v = int(round(v))
    if isinstance(v, int) and not isinstance(v, bool):
        for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= scale:
                return f"{v / scale:.3g}{unit}"
        return str(v)
    return _num(v)


def _params(s: dict[str, Any]) -> str:
    return f"{_count(s.get('params_total_nonembed'))}/{_count(s.get('params_active_nonembed'))}"


def _seeds(s: dict[str, Any]) -> str:
    """'2' when every planned seed finished as done; else '1/2 (status)'."""
    planned = len(s.get("seed_list") or [])
    if s.get("status") == "done":
        return str(s.get("seeds"))
    return f"{s.get('seeds')}/{planned} ({s.get('status')})"


def _steps(s: dict[str, Any], kind: str) -> str:
    """Steps to target: mean [CI] over the seeds that reached it, with how many did when not all."""
    key = f"steps_to_target_{kind}"
    reached, done = s.get(f"{key}_reached") or 0, s.get("seeds") or 0
    if done == 0 or s.get(f"target_{kind}", {}).get("value") is None:
        return "-"
    if reached == 0:
        return "never"
    text = _interval(s.get(f"{key}_mean"), s.get(f"{key}_ci95"), _whole)
    return text if reached == done else f"{text} ({reached}/{done} seeds)"


def _pct(s: dict[str, Any], kind: str) -> str:
    pct = s.get(f"steps_to_target_{kind}_pct")
    if pct is None:
        return ">100%" if s.get(f"steps_to_target_{kind}_reached") == 0 and s.get("seeds") else "-"
    return f"{pct:.0f}%"


def _passes(s: dict[str, Any]) -> str:
    p = s.get("data_passes")
    return "-" if p is None else f"{p:.2f}"


def _headline_final(s: dict[str, Any]) -> str:
    return {"eval": "final_eval_loss", "ema": "final_train_loss_ema"}[s.get("headline", "eval")]


def results_rows(summary: list[dict[str, Any]]) -> pd.DataFrame:
    """The compact results table: one row per model (shown by display name), text cells."""
    rows = []
    for s in summary:
        head = s.get("headline", "eval")
        rows.append({
            "model": display_name(s["name"]),
            "params (non-emb total / active)": _params(s),
            "seeds": _seeds(s),
            "eval loss": _interval(s.get("final_eval_loss_mean"), s.get("final_eval_loss_ci95")),
            "BPB": _interval(s.get("final_eval_bpb_mean"), s.get("final_eval_bpb_ci95")),
            f"steps to target ({KIND_TITLE[head]})": _steps(s, head),
            "% of ref steps": _pct(s, head),
            "data passes": _passes(s),
            "tokens/s": _count(s.get("tokens_per_s")),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _steps_rows(summary: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for s in summary:
        row: dict[str, Any] = {"model": s["name"]}
        for kind in KINDS:
            title = KIND_TITLE[kind]
            row[f"{title}: steps"] = _steps(s, kind)
            row[f"{title}: % of ref"] = _pct(s, kind)
            row[f"{title}: speedup"] = _num(s.get(f"speedup_{kind}"), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def _run_steps(r: dict[str, Any], s: dict[str, Any], kind: str) -> str:
    """One run's steps to target: the step, 'never' (finished, not reached) or '-' (no result)."""
    steps = r.get(f"steps_to_target_{kind}")
    if steps is None:
        finished = r["status"] == "done" and s.get(f"target_{kind}", {}).get("value") is not None
        return "never" if finished else "-"
    return _whole(steps)


def _seed_rows(summary: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for s in summary:
        for r in s["runs"]:
            mem = r.get("peak_mem_bytes")
            rows.append({
                "model": s["name"], "seed": r["seed"], "status": r["status"], "steps": r["steps_done"],
                "eval loss": _num(r.get("final_eval_loss")), "BPB": _num(r.get("final_eval_bpb")),
                "train loss EMA": _num(r.get("final_train_loss_ema")),
                "steps to target (eval)": _run_steps(r, s, "eval"),
                "steps to target (EMA)": _run_steps(r, s, "ema"),
                "data passes": _num(r.get("data_passes"), 3), "tokens/s": _count(r.get("tokens_per_s")),
                "peak MB": _num(mem / 2**20 if isinstance(mem, (int, float)) else None),
                "device": r.get("device") or "-", "wall s": _num(r.get("wall_time_s"), 3),
            })  # fmt: skip
    return pd.DataFrame(rows)


def passes_warnings(summary: list[dict[str, Any]]) -> list[str]:
    """One line per model that trained on some token more than once."""
    return [f"`{s['name']}` made {s['data_passes']:.2f} passes over the training data: tokens were "
            "trained on more than once, so its losses partly measure memorisation (give more data with "
            "--data-bytes, or fewer steps)" for s in summary if (s.get("data_passes") or 0) > 1.0]


def _target_line(t: dict[str, Any]) -> str:
    value = _num(t.get("value"))
    ref_steps = t.get("reference_steps")
    reached = f"; the reference reaches it at step {ref_steps:.0f}" if ref_steps is not None else ""
    return (f"{KIND_TITLE[t['kind']]}: target {t['metric']} {value} ({t['source']}; smoothing: "
            f"{t['smoothing']}){reached}")


def _paper_frame(summary: list[dict[str, Any]]) -> pd.DataFrame | None:
    rows = []
    for s in summary:
        if s.get("paper_final_loss") is None and s.get("paper_steps_pct") is None:
            continue
        final = _headline_final(s)
        rows.append({
            "model": s["name"],
            "paper final loss": _num(s.get("paper_final_loss")),
            "measured final": _interval(s.get(f"{final}_mean"), s.get(f"{final}_ci95")),
            "paper % of ref steps": _num(s.get("paper_steps_pct"), 3),
            "measured % of ref steps": _pct(s, s.get("headline", "eval")),
        })  # fmt: skip
    return pd.DataFrame(rows) if rows else None


def _setup_lines(manifest: dict[str, Any]) -> list[str]:
    cfg = manifest.get("config", {})
    train = cfg.get("train", {})
    data = manifest.get("data", {}) or {}
    tok = manifest.get("tokenizer", {}) or {}
    ev = manifest.get("eval", {}) or {}
    env = manifest.get("environment", {}) or {}
    per_pass = data.get("tokens_per_pass")
    train_text = (f"{data['train_bytes']} training bytes" if data.get("train_bytes") is not None
                  else "an unbounded training stream generated on the fly")
    lines = [
        f"- data: {data.get('name')}: {train_text}, "
        + (f"{per_pass} tokens per pass" if per_pass is not None else "never repeated")
        + f"; {data.get('val_bytes')} validation bytes"
        + (f" ({data['sized_by']})" if data.get("sized_by") else ""),
    ]
    if data.get("entropy_rate_bits_per_byte") is not None:
        lines.append(
            f"- the source's entropy rate (no model can beat it): {data['entropy_rate_bits_per_byte']:.4f} "
            f"bits/byte = {_num(data.get('loss_floor_nats_per_token'))} nats/token with this tokenizer"
        )
    seeds = cfg.get("seeds") or [manifest.get("seed")]
    lines += [
        f"- tokenizer: {tok.get('used')} (vocab {tok.get('vocab_size')}; {tok.get('reason')})",
        f"- training: {train.get('steps')} steps, batch {train.get('batch_size')}, context "
        f"{train.get('seq_len')}, AdamW lr {train.get('lr')} ({train.get('schedule')}, warm-up "
        f"{train.get('warmup_frac')}), clip {train.get('grad_clip')}, weight decay "
        f"{train.get('weight_decay')}, training-loss EMA alpha {train.get('ema_alpha')}",
        f"- seeds: {', '.join(str(s) for s in seeds)} (each sets the init and the data order; the same "
        "seeds for every model, so the batches of step s are the same for every model of a seed)",
        f"- evaluation: every {train.get('eval_interval')} steps on {ev.get('windows')} fixed validation "
        f"windows ({ev.get('mode')}, stride {ev.get('stride')}; {ev.get('scored_tokens')} tokens = "
        f"{ev.get('scored_bytes')} bytes scored)",
        f"- device: {env.get('device_name')}; torch {env.get('torch')}; commit {env.get('commit')}",
    ]
    if env.get("parallel") == "runs":
        lines.append(f"- runs side by side, one process per device: {', '.join(env.get('devices') or [])} "
                     f"({(manifest.get('schedule') or {}).get('policy', 'schedule not recorded')})")
    elif (env.get("world_size") or 1) > 1:
        lines.append(f"- each model data-parallel ({env.get('parallel')}, {env.get('backend')}) over "
                     f"{env['world_size']} processes: {', '.join(env.get('devices') or [])}; tokens/s is "
                     "their total")
    if cfg.get("reference_note"):
        lines.append(f"- note: {cfg['reference_note']}")
    return lines


def summary_markdown(manifest: dict[str, Any], summary: list[dict[str, Any]]) -> str:
    """summary.md: setup, results (means and intervals over seeds) with parameter counts, both
    steps-to-target figures, every run, the paper's figures when the setup is the paper's."""
    cfg = manifest.get("config", {})
    lines = [f"# train-compare: preset `{cfg.get('preset')}` (suite {cfg.get('suite', 'zoo')})", ""]
    lines += _setup_lines(manifest)
    warnings = passes_warnings(summary)
    if warnings:
        lines += ["", *(f"> **Warning:** {w}." for w in warnings)]
    lines += ["", "## Results", "", markdown_table(results_rows(summary)),
              f"{CI_NOTE}. Parameters leave out the token embedding and LM head; active = what one "
              "token uses."]
    lines += [f"- `{s['name']}`: {s.get('status')}" + (f" ({s['error']})" if s.get("error") else "")
              for s in summary if s.get("status") != "done"]
    if summary:
        s0 = summary[0]
        lines += ["", "## Steps to target", "",
                  f"Reference `{s0.get('reference')}`; headline figure: "
                  f"{KIND_TITLE[s0.get('headline', 'eval')]}. A run reaches a target at "
                  f"{s0['target_eval']['rule']}.", ""]
        lines += [f"- {_target_line(s0[f'target_{kind}'])}" for kind in KINDS]
        lines += ["", markdown_table(_steps_rows(summary)),
                  "Steps: mean [95% interval] over the seeds that reached the target (how many, when not "
                  "all); % of ref = steps / the reference's steps on its seed-mean curve; speedup = the "
                  "reference's steps / steps.", ""]
        lines += ["## Every run", "", markdown_table(_seed_rows(summary))]
    paper = manifest.get("paper")
    if paper:
        pf = _paper_frame(summary)
        lines += ["", "## Beside the paper", ""]
        if paper.get("setup_note"):
            lines.append(f"{paper.get('source')}: not shown. Note: {paper['setup_note']}.")
        elif pf is not None:
            lines += [f"{paper.get('source')}; metric: {paper.get('metric')}.",
                      "Absolute losses differ with the length of training; compare the ordering and ratios.",
                      "", markdown_table(pf)]
    lines += ["", "## Plots", ""]
    lines += [f"![{p}]({p}.png)" for p in PLOTS]
    lines += ["", "Definitions: loss in nats per token; BPB = summed token NLL / ln 2 / raw bytes covered; "
              "data passes = tokens trained / tokens one pass over the training data holds (at most 1: no "
              "token trained twice; an unbounded stream never repeats); tokens/s is the median over logged "
              "intervals after the first, averaged over seeds."]
    peak = next((s.get("peak_mem_definition") for s in summary if s.get("peak_mem_definition")), None)
    if peak:
        lines += ["", f"peak MB: {peak}."]
    wall = summary[0].get("comparison_wall_time_s") if summary else None
    if wall is not None:
        lines += ["", "wall s: wall-clock seconds of the run (model build, training, evaluations, "
                  f"checkpoints); the whole comparison took {wall:.1f} s."]
    lines.append("")
    return "\n".join(lines)


def _bands(metrics: pd.DataFrame, metric: str, x: str) -> dict[str, pd.DataFrame]:
    """model -> per step: x (mean over seeds), mean, min and max of the values, seeds counted."""
    if metrics.empty:
        return {}
    df = metrics[metrics["metric"] == metric]
    out = {}
    for model, g in df.groupby("model", sort=False):
        agg = g.groupby("step").agg(x=(x, "mean"), mean=("value", "mean"), lo=("value", "min"),
                                    hi=("value", "max"), n=("value", "count"))
        out[str(model)] = agg.reset_index().sort_values("step")
    return out


def _line_plot(metrics: pd.DataFrame, metric: str, x: str, title: str,
               hlines: list[tuple[float | None, str]]) -> Figure:
    fig = Figure(figsize=(7.5, 4.4))
    ax = fig.add_subplot()
    bands = _bands(metrics, metric, x)
    several = any(int(b["n"].max()) > 1 for b in bands.values())
    for i, (name, b) in enumerate(bands.items()):
        color = f"C{i % 10}"
        seeds = int(b["n"].max())
        label = name if seeds == 1 else f"{name} (mean of {seeds} seeds)"
        ax.plot(b["x"], b["mean"], marker="o", markersize=2.5, color=color, label=label)
        if seeds > 1:
            ax.fill_between(b["x"], b["lo"], b["hi"], color=color, alpha=0.2, linewidth=0)
    for j, (y, label) in enumerate(hlines):
        if y is not None and math.isfinite(y):
            ax.axhline(y, color="gray", linestyle=("--", ":")[j % 2], linewidth=1, label=label)
    ax.set_xlabel({"step": "training step", "wall_s": "training time (s)"}[x])
    ax.set_ylabel(f"{metric} ({UNITS.get(metric, '')})")
    ax.set_title(title + ("\nline: mean over seeds; band: min to max over seeds" if several else ""))
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return fig


def _pct_bars(ax: Axes, summary: list[dict[str, Any]], kind: str, with_paper: bool) -> None:
    names = [s["name"] for s in summary]
    xs = np.arange(len(names))
    w = 0.4 if with_paper else 0.6
    shift = -w / 2 if with_paper else 0.0
    pct = [s.get(f"steps_to_target_{kind}_pct") for s in summary]
    got = [i for i, p in enumerate(pct) if p is not None]
    any_ci = any(summary[i].get(f"steps_to_target_{kind}_pct_ci95") for i in got)
    if got:
        heights = [pct[i] for i in got]
        err = np.array([[pct[i] - ci[0], ci[1] - pct[i]] if (ci := summary[i].get(
            f"steps_to_target_{kind}_pct_ci95")) else [math.nan, math.nan] for i in got]).T
        label = "measured: mean over seeds that reached it" + ("; error bar: 95% CI" if any_ci else "")
        bars = ax.bar(xs[got] + shift, heights, w, yerr=err if any_ci else None, capsize=4, color="C0",
                      label=label)
        for b, i in zip(bars, got, strict=True):
            s = summary[i]
            text = f"{pct[i]:.0f}%"
            if s.get(f"steps_to_target_{kind}_reached") != s.get("seeds"):
                text += f"\n{s.get(f'steps_to_target_{kind}_reached')}/{s.get('seeds')} seeds"
            ci = s.get(f"steps_to_target_{kind}_pct_ci95")
            ax.annotate(text, (b.get_x() + b.get_width() / 2, ci[1] if ci else pct[i]), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7)
    highs = [ci[1] for s in summary if (ci := s.get(f"steps_to_target_{kind}_pct_ci95"))]
    top = max([p for p in pct if p is not None] + highs + [100.0])
    for i, s in enumerate(summary):
        if pct[i] is None:
            never = s.get(f"steps_to_target_{kind}_reached") == 0 and s.get("seeds")
            why = "never\nreached" if never else "no\nresult"
            ax.text(xs[i] + shift, 0.02 * top, why, ha="center", va="bottom", fontsize=8)
    if with_paper:
        paper = [s.get("paper_steps_pct") for s in summary]
        has = [i for i, p in enumerate(paper) if p is not None]
        ax.bar(xs[has] + w / 2, [paper[i] for i in has], w, color="gray", label="paper")
    ax.axhline(100, color="black", linewidth=0.8, label="the reference's steps (100%)")
    ax.set_xticks(xs, names, rotation=20)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("% of the reference's steps to the target")
    ax.set_ylim(0, top * 1.25)
    target = summary[0].get(f"target_{kind}", {}) if summary else {}
    ax.set_title(f"{KIND_TITLE[kind]}: target {target.get('metric')} {_num(target.get('value'))}",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper left")


def steps_figure(summary: list[dict[str, Any]]) -> Figure:
    """Two panels (evaluation- and EMA-based): % of the reference's steps each model needed, with
    95% intervals over seeds; models that never reached the target are named, with no bar."""
    fig = Figure(figsize=(11, 4.4))
    axes = fig.subplots(1, 2)
    head = summary[0].get("headline", "eval") if summary else "eval"
    any_paper = any(s.get("paper_steps_pct") is not None for s in summary)
    for ax, kind in zip(axes, KINDS, strict=True):
        _pct_bars(ax, summary, kind, with_paper=any_paper and kind == head)
    fig.suptitle("steps to reach the reference's final loss (lower is better)")
    return fig


def final_figure(summary: list[dict[str, Any]], key: str, ylabel: str) -> Figure:
    """Final values per model: mean with its 95% interval (error bar) and each seed (crosses)."""
    fig = Figure(figsize=(7.5, 4.4))
    ax = fig.add_subplot()
    labels = {"mean": "mean over seeds, error bar: 95% CI", "seed": "one seed"}
    for i, s in enumerate(summary):
        mean, ci = s.get(f"{key}_mean"), s.get(f"{key}_ci95")
        seeds = [v for v in s.get(f"{key}_per_seed") or [] if v is not None]
        if seeds:
            ax.scatter([i] * len(seeds), seeds, marker="x", color="gray", zorder=3,
                       label=labels.pop("seed", None))
        if mean is not None:
            err = [[mean - ci[0]], [ci[1] - mean]] if ci else None
            ax.errorbar([i], [mean], yerr=err, fmt="o", color="C0", capsize=5, label=labels.pop("mean", None))
    ax.set_xticks(range(len(summary)), [s["name"] for s in summary], rotation=20)
    ax.set_xlim(-0.5, len(summary) - 0.5)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel.split(' (')[0]} at the end of training, per model")
    ax.grid(True, axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return fig


def render_summary(run: LoadedRun, out: Path) -> Path:
    """Write summary.md alone into ``out`` (cheap: the CLI calls it after every evaluation)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SUMMARY_MD, summary_markdown(run.manifest, _summary(run)))
    return out / SUMMARY_MD


def render(run: LoadedRun, out: Path) -> list[Path]:
    """Write summary.md and the PNG plots into ``out`` from the run's files."""
    md = render_summary(run, out)
    summary = _summary(run)
    data = run.manifest.get("data", {}) or {}
    targets = {k: (summary[0].get(f"target_{k}") or {}) if summary else {} for k in KINDS}

    def target_line(metric: str) -> list[tuple[float | None, str]]:
        return [(t.get("value"), f"target ({KIND_TITLE[k]}) {_num(t.get('value'))}")
                for k, t in targets.items() if t.get("metric") == metric]

    floor = [(data.get("loss_floor_nats_per_token"), "the source's entropy floor")]
    floor_bpb = [(data.get("entropy_rate_bits_per_byte"), "the source's entropy floor")]
    m = run.metrics
    head = summary[0].get("headline", "eval") if summary else "eval"
    eval_final = "final_eval_bpb" if targets["eval"].get("metric") == "eval_bpb" else "final_eval_loss"
    final_key = {"eval": eval_final, "ema": "final_train_loss_ema"}[head]
    final_metric = final_key.removeprefix("final_")
    figures = {
        "loss_vs_steps": _line_plot(m, "eval_loss", "step", "validation loss against steps",
                                    floor + target_line("eval_loss")),
        "loss_vs_time": _line_plot(m, "eval_loss", "wall_s", "validation loss against training time",
                                   floor + target_line("eval_loss")),
        "bpb_vs_steps": _line_plot(m, "eval_bpb", "step", "validation bits per byte against steps",
                                   floor_bpb + target_line("eval_bpb")),
        "ema_loss_vs_steps": _line_plot(m, "train_loss_ema", "step",
                                        "training loss EMA (bias-corrected) against steps",
                                        floor + target_line("train_loss_ema")),
        "final_loss": final_figure(summary, final_key, f"final {final_metric} ({UNITS[final_metric]})"),
        "steps_to_target": steps_figure(summary),
    }
    paths = [save_png(fig, out, name) for name, fig in figures.items()]
    return [md, *paths]


CONSOLE_COLUMNS = ("model", "params", "seeds", "eval loss", "BPB", "steps to target", "% ref", "passes",
                   "tok/s")


def console_table(run: LoadedRun) -> Table:
    """The final table: every model with its parameter counts (non-embedding, total / active)
    beside its results (means and 95% intervals over seeds); the target, the rule, FLOPs and any
    warning are in the caption."""
    cfg = run.manifest.get("config", {})
    summary = _summary(run)
    flops_key = "flops_per_byte" if cfg.get("suite") == "bytes" else "flops_per_token"
    table = Table(title=f"train-compare {cfg.get('preset')}", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for title in CONSOLE_COLUMNS:
        table.add_column(title, justify="left" if title in ("model", "seeds") else "right",
                         no_wrap=title == "model")
    for row in results_rows(summary).itertuples(index=False):
        table.add_row(*(escape(str(c)) for c in row))
    if summary:
        s0 = summary[0]
        t = s0[f"target_{s0.get('headline', 'eval')}"]
        flops = ", ".join(f"{s['name']} {_count(s.get(flops_key))}" for s in summary)
        unbounded = " (an unbounded stream: never repeats)" if s0.get("tokens_per_pass") is None else ""
        table.caption = escape("\n".join([
            *(f"WARNING: {w.replace('`', '')}" for w in passes_warnings(summary)),
            f"params: non-embedding, total/active per token. {CI_NOTE}. passes: over the data{unbounded}.",
            f"steps to target ({KIND_TITLE[t['kind']]}): first step after which the smoothed curve stays "
            f"at or below {t['metric']} {_num(t.get('value'))} ({t['source']}); full rule in summary.md.",
            f"{flops_key}: {flops}",
        ]))  # fmt: skip
    return table
