"""Renderer of gen-speed results folders: summary.md and plots from the folder's files alone.

metrics.csv rows: measurement 'generate' (one per model and batch size: times, bytes/s, streaming
limit, peak memory, status) and 'step_latency' (mean ms per step over a window starting at
``position``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from ssmbench.models.official import display_name
from ssmbench.report.figures import save_png
from ssmbench.report.tables import fmt, markdown_table, rich_table
from ssmbench.results import SUMMARY_MD, LoadedRun, atomic_write_text

KEY_COLUMNS = ("model", "batch_size", "measurement", "position")
VALUE_COLUMNS = (
    "gen_time_s", "bytes_per_s", "decode_bytes_per_s", "prefill_bytes_per_s", "step_ms",
    "peak_mem_bytes", "stream_limit_frac",
)  # fmt: skip

TABLE_COLUMNS = (
    "model", "batch_size", "status", "gen_time_s", "bytes_per_s", "step_ms", "prefill_bytes_per_s",
    "stream_limit_bytes_per_s", "stream_limit_frac", "peak_mem_gib", "decode_path",
)  # fmt: skip


BYTES_PER_S_PNG = "bytes_per_s_vs_batch"
STEP_LATENCY_PNG = "step_latency_vs_position"
GEN_TIME_PNG = "time_to_generate"

CONSOLE_COLUMNS = (
    "model", "batch_size", "status", "gen_time_s", "bytes_per_s", "step_ms", "stream_limit_frac",
    "peak_mem_gib", "decode_path",
)  # fmt: skip


def generate_rows(run: LoadedRun) -> pd.DataFrame:
    """The 'generate' rows, with peak memory in GiB and display names (mamba (mamba_ssm))."""
    df = run.metrics
    if df.empty or "measurement" not in df:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    gen = df[df["measurement"] == "generate"].copy()
    gen["model"] = gen["model"].map(display_name)
    if "peak_mem_bytes" in gen:
        gen["peak_mem_gib"] = gen["peak_mem_bytes"] / 2**30
    for c in TABLE_COLUMNS:
        if c not in gen:
            gen[c] = float("nan")
    return gen


def latency_rows(run: LoadedRun) -> pd.DataFrame:
    df = run.metrics
    if df.empty or "measurement" not in df:
        return pd.DataFrame(columns=["model", "batch_size", "position", "step_ms"])
    return df[df["measurement"] == "step_latency"]


def console_table(run: LoadedRun) -> Table:
    gen = generate_rows(run)
    n = run.manifest.get("config", {}).get("gen_len", "")
    return rich_table(gen, title=f"gen-speed: {n} bytes per sequence (random init)", columns=CONSOLE_COLUMNS)


def _summary_markdown(run: LoadedRun) -> str:
    m, s = run.manifest, run.summary or {}
    cfg = m.get("config", {})
    env = m.get("environment", {})
    ceil = m.get("ceilings") or {}
    lines = [
        "# gen-speed",
        "",
        f"**{s.get('note', 'random-init weights')}.**",
        "",
        f"Device: {env.get('device_name', '?')}; dtype {m.get('dtype', cfg.get('dtype'))}; "
        f"{cfg.get('gen_len')} bytes generated after a {cfg.get('prompt_len')}-byte prompt "
        f"({cfg.get('prompt_source', 'random')}); {cfg.get('sampling', {}).get('description', '')}; "
        f"CUDA graphs {'on' if cfg.get('cuda_graph') else 'off'}. Measured copy bandwidth "
        f"{fmt(ceil.get('copy_gbps'))} GB/s.",
        "",
        markdown_table(generate_rows(run), TABLE_COLUMNS),
        "Weight-streaming limit: batch size x copy bandwidth / weight bytes read per decoded byte "
        "(embedding tables excluded; MegaByte's global model divided by the patch size). "
        "stream_limit_frac is decode bytes/s over that limit.",
        "",
    ]
    ratios = s.get("bytes_per_s_ratio") or {}
    if ratios:
        lines += [f"## bytes/s relative to {s.get('ratio_reference')}", ""]
        ratio_df = pd.DataFrame(
            [{"batch_size": int(b), **{k: v for k, v in r.items()}} for b, r in ratios.items()]
        )
        lines += [markdown_table(ratio_df), ""]
    lat = latency_rows(run)
    if not lat.empty:
        wide = lat.pivot_table(index="position", columns=["model", "batch_size"], values="step_ms")
        wide.columns = [f"{a} b{b}" for a, b in wide.columns]
        lines += ["## ms per step against position", "", markdown_table(wide.reset_index()), ""]
    verify = s.get("verify") or m.get("verify")
    if verify:
        lines += ["## --verify: cached decoding against the forward pass", "",
                  "error: the worst position's relative difference of the logits (at most the tolerance); "
                  "sensitivity: how far the prompt moves the second half's logits (at least the minimum), "
                  "on weights that make the state matter (ssmbench.generate.verify).", ""]
        lines += [markdown_table(pd.DataFrame(verify)), ""]
    return "\n".join(lines)


def _legend_outside(ax: Any, handles: list[Any], title: str, anchor_y: float = 1.0) -> Any:
    """One of several legends right of the axes (saved with bbox_inches="tight"): it never covers
    a line. Not clipped to the axes, as ``add_artist`` would have it."""
    from matplotlib.legend import Legend

    legend = Legend(ax, handles, [h.get_label() for h in handles], title=title, fontsize=7,
                    title_fontsize=8, loc="upper left", bbox_to_anchor=(1.02, anchor_y), borderaxespad=0.0)
    ax.add_artist(legend)
    legend.set_clip_on(False)
    return legend


def plot_bytes_per_s(gen: pd.DataFrame) -> Any:
    """Generated bytes/s against batch size per model (solid, measured) under each model's
    weight-streaming limit (dotted, same colour)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(6.5, 4))
    models = []
    for i, (model, g) in enumerate(gen.groupby("model", sort=False)):
        g = g.sort_values("batch_size")
        color = f"C{i % 10}"
        ax.plot(g["batch_size"], g["bytes_per_s"], marker="o", color=color)
        ax.plot(g["batch_size"], g["stream_limit_bytes_per_s"], ls=":", color=color)
        models.append(Line2D([], [], color=color, marker="o", label=str(model)))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (sequences decoded together)")
    ax.set_ylabel("generated bytes/s (all sequences)")
    ax.set_title("generation throughput against batch size")
    ax.grid(alpha=0.3)
    _legend_outside(ax, models, "model (colour)")
    styles = [Line2D([], [], color="0.3", ls="-", label="measured (prefill + decode)"),
              Line2D([], [], color="0.3", ls=":", label="weight-streaming limit")]
    _legend_outside(ax, styles, "line", anchor_y=0.45)
    return fig


def plot_step_latency(lat: pd.DataFrame) -> Any:
    """ms per decode step against position: colour = model, line style = batch size."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys(lat["model"]))}
    batches = sorted(set(lat["batch_size"]))
    styles = {b: ("-", "--", ":", "-.")[i % 4] for i, b in enumerate(batches)}
    for (model, batch), g in lat.groupby(["model", "batch_size"], sort=False):
        ax.plot(g["position"], g["step_ms"], marker=".", color=colors[model], ls=styles[batch])
    ax.set_xlabel("position (bytes in context)")
    ax.set_ylabel("ms per decode step (window mean)")
    ax.set_title("decode step latency against position")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _legend_outside(ax, [Line2D([], [], color=c, marker=".", label=str(m)) for m, c in colors.items()],
                    "model (colour)")
    _legend_outside(ax, [Line2D([], [], color="0.3", ls=styles[b], label=f"batch {b}") for b in batches],
                    "batch size (line)", anchor_y=0.45)
    return fig


def plot_gen_time(gen: pd.DataFrame, n: object) -> Any:
    """Seconds to generate ``n`` bytes per sequence, bars per model at each batch size."""
    import matplotlib.pyplot as plt

    wide = gen.pivot_table(index="batch_size", columns="model", values="gen_time_s", sort=False)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    wide.plot.bar(ax=ax, rot=0, legend=False)
    ax.set_xlabel("batch size")
    ax.set_ylabel(f"seconds to generate {n} bytes per sequence")
    ax.set_title("time to generate (prefill + decode)")
    ax.grid(alpha=0.3, axis="y")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, title="model", fontsize=7, title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return fig


def render(run: LoadedRun, out: Path) -> list[Path]:
    """summary.md and the three plots into ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / SUMMARY_MD, _summary_markdown(run))
    paths = [folder / SUMMARY_MD]
    gen = generate_rows(run)
    ok = gen[gen["status"] == "ok"] if "status" in gen else gen
    if not ok.empty:
        paths.append(save_png(plot_bytes_per_s(ok), folder, BYTES_PER_S_PNG))
        n = run.manifest.get("config", {}).get("gen_len", "N")
        paths.append(save_png(plot_gen_time(ok, n), folder, GEN_TIME_PNG))
    lat = latency_rows(run)
    if not lat.empty:
        paths.append(save_png(plot_step_latency(lat), folder, STEP_LATENCY_PNG))
    return paths
