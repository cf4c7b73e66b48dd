"""Render a kernel-profile results folder from its files: summary.md, latency and roofline plots.

Reads manifest.json (ceilings), metrics.csv, summary.json and, after a gate run, gate.csv.
Nothing is re-measured.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from ssmbench.report.figures import save_png
from ssmbench.report.tables import fmt, markdown_table, rich_table
from ssmbench.results import GATE_CSV, SUMMARY_MD, LoadedRun, atomic_write_text

KEY_COLUMNS = ["impl", "mode", "batch", "dim", "seqlen", "dstate", "dtype", "head_dim"]
VALUE_COLUMNS = ["ms_median", "ms_p20", "ms_p80", "tflops", "gbps", "frac_copy_bw", "frac_matmul", "rel_err"]

TABLE_COLUMNS = ["impl", "backend", "mode", "batch", "dim", "seqlen", "dstate", "dtype", "ms_median",
                 "ms_p20", "ms_p80", "tflops", "gbps", "frac_copy_bw", "rel_err", "status"]
GATE_COLUMNS = ["row_id", "baseline_ms", "now_ms", "ratio", "p_slower", "attempts", "verdict", "note"]
LATENCY_PNG = "latency_vs_seqlen"
ROOFLINE_PNG = "roofline"
MODE_TITLES = {"fwd": "forward", "fwd_bwd": "forward + backward", "step": "decode step (L = KV cache)"}


def _gate(run: LoadedRun) -> pd.DataFrame | None:
    path = run.path / GATE_CSV
    return pd.read_csv(path) if path.is_file() else None


def console_table(run: LoadedRun) -> Table:
    """Compact screen table: one line per row, shape as BxDxLxN, times in ms."""
    df = run.metrics
    device = run.manifest.get("environment", {}).get("device_name", "")
    table = Table(title=f"kernel-profile on {device}", show_lines=False)
    for name in ("impl", "backend", "mode", "shape BxDxLxN", "dtype", "ms", "p20-p80", "TFLOP/s", "GB/s",
                 "%copy", "rel_err", "status"):
        table.add_column(name, justify="left" if name in ("impl", "backend", "mode", "status") else "right")
    for _, r in df.iterrows():
        table.add_row(
            str(r["impl"]), str(r.get("backend", "") if pd.notna(r.get("backend")) else ""), str(r["mode"]),
            f"{r['batch']}x{r['dim']}x{r['seqlen']}x{r['dstate']}", str(r["dtype"]), fmt(r["ms_median"]),
            f"{fmt(r['ms_p20'], 3)}-{fmt(r['ms_p80'], 3)}" if pd.notna(r["ms_p20"]) else "",
            fmt(r["tflops"], 3), fmt(r["gbps"], 3),
            fmt(100 * r["frac_copy_bw"], 3) if pd.notna(r["frac_copy_bw"]) else "",
            fmt(r["rel_err"], 2), escape(str(r["status"])),
        )
    return table


def gate_table(gate: pd.DataFrame, title: str = "regression gate") -> Table:
    return rich_table(gate, title=title, columns=[c for c in GATE_COLUMNS if c in gate.columns])


def _impl_colors(impls: list[str]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    palette = plt.get_cmap("tab10")
    return {impl: palette(i % 10) for i, impl in enumerate(impls)}


SHAPE_COLS = ["batch", "dim", "dstate", "dtype"]
MARKERS = "osD^vP*Xh<>p"


def _shape_label(b: object, d: object, n: object, dtype: object) -> str:
    return f"B{b} D{d} N{n} {dtype}"


def plot_latency(df: pd.DataFrame) -> Any:
    """Median latency against L, one panel per mode (log-log, p20-p80 as error bars), correct rows
    only. Colour = implementation, marker = shape (B, D, N, dtype): two legends under the panels
    instead of one entry per (implementation, shape)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ok = df[df["status"] == "ok"]
    modes = [m for m in MODE_TITLES if m in set(df["mode"])] or ["fwd"]
    fig, axes = plt.subplots(1, len(modes), figsize=(5.2 * len(modes), 4.2), squeeze=False)
    impls = sorted(df["impl"].unique())
    colors = _impl_colors(impls)
    shapes = sorted({tuple(k) for k in df[SHAPE_COLS].itertuples(index=False)}, key=str)
    markers = {shape: MARKERS[i % len(MARKERS)] for i, shape in enumerate(shapes)}
    for ax, mode in zip(axes[0], modes, strict=True):
        sub = ok[ok["mode"] == mode]
        for (impl, b, d, n, dtype), g in sub.groupby(["impl", *SHAPE_COLS]):
            g = g.sort_values("seqlen")
            err = [g["ms_median"] - g["ms_p20"], g["ms_p80"] - g["ms_median"]]
            ax.errorbar(g["seqlen"], g["ms_median"], yerr=err, marker=markers[(b, d, n, dtype)], ms=4,
                        capsize=2, color=colors[impl])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length L, tokens" if mode == "step" else "sequence length L, tokens")
        ax.set_ylabel("latency, ms (median; bars p20-p80)")
        ax.set_title(MODE_TITLES.get(mode, mode))
        ax.grid(True, which="both", alpha=0.3)
        if not len(sub):
            ax.text(0.5, 0.5, "no correct rows", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("kernel latency against sequence length (correct rows only)")
    fig.tight_layout()
    impl_handles = [Line2D([], [], color=colors[i], marker="o", ms=4, label=i) for i in impls]
    shape_handles = [Line2D([], [], color="0.35", ls="none", marker=markers[s], ms=5, label=_shape_label(*s))
                     for s in shapes]
    # below the panels (saved with bbox_inches="tight"): they never cover a point or an axis label
    first = fig.legend(handles=impl_handles, title="implementation (colour)", loc="upper right",
                       bbox_to_anchor=(0.5, 0.0), ncol=min(3, len(impl_handles)), fontsize=7,
                       title_fontsize=8)
    fig.add_artist(first)
    fig.legend(handles=shape_handles, title="shape B, D, N, dtype (marker)", loc="upper left",
               bbox_to_anchor=(0.5, 0.0), ncol=min(3, len(shape_handles)), fontsize=7, title_fontsize=8)
    return fig


def above_copy_roof(df: pd.DataFrame) -> pd.DataFrame:
    """Correct rows whose bytes moved per second exceed the measured copy bandwidth."""
    ok = df[(df["status"] == "ok") & (df["tflops"] > 0)]
    return ok[ok["frac_copy_bw"] > 1]


ROOF_NOTE = (
    "{n} point(s) above the copy roof (up to {pct:.0f}% of it: {rows}). The roof is the measured "
    "device copy rate, half reads and half writes, from and to DRAM. A kernel that mostly reads, or whose "
    "inputs stay in the L2 cache between calls (a decode step at small batch: a few MB of state, KV cache "
    "or weights, against 50-60 MB of L2 on an H100/H200), moves its minimum bytes faster than that."
)


def plot_roofline(df: pd.DataFrame, ceilings: dict[str, Any]) -> Any:
    """Achieved TFLOP/s against arithmetic intensity (FLOP/byte), under the measured roofs:
    copy bandwidth (TFLOP/s = GB/s * intensity / 1000) and the matmul rate. Points above the
    copy roof are ringed and explained in a note under the plot; the legend sits outside."""
    import matplotlib.pyplot as plt
    import numpy as np

    ok = df[(df["status"] == "ok") & (df["tflops"] > 0)]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = _impl_colors(sorted(df["impl"].unique()))
    markers = {"fwd": "o", "fwd_bwd": "s", "step": "^"}
    for (impl, mode), g in ok.groupby(["impl", "mode"]):
        ax.scatter(g["intensity"], g["tflops"], color=colors[impl], marker=markers.get(mode, "x"),
                   s=22, label=f"{impl} {mode}")
    above = above_copy_roof(df)
    if len(above):
        ax.scatter(above["intensity"], above["tflops"], s=110, facecolors="none", edgecolors="red",
                   linewidths=1.0, label="above the copy roof (see note)")
    bw, mm = ceilings.get("copy_gbps"), ceilings.get("matmul_tflops")
    lo = float(ok["intensity"].min()) / 4 if len(ok) else 0.1
    hi = float(ok["intensity"].max()) * 4 if len(ok) else 100.0
    if isinstance(bw, (int, float)) and isinstance(mm, (int, float)) and bw > 0 and mm > 0:
        ridge = mm * 1000 / bw
        xs = np.geomspace(min(lo, ridge / 8), max(hi, ridge * 8), 200)
        ax.plot(xs, np.minimum(bw * xs / 1000, mm), "k-", lw=1.2,
                label=f"roof: copy {bw:.0f} GB/s, matmul {mm:.3g} TFLOP/s ({ceilings.get('matmul_dtype')})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte, analytic minimum bytes)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.set_title("roofline: correct rows, ceilings measured in the same run")
    ax.grid(True, which="both", alpha=0.3)
    if not len(ok):
        ax.text(0.5, 0.5, "no correct rows", ha="center", va="center", transform=ax.transAxes)
    # outside the axes, right of the plot: never over a point
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    if len(above):
        worst = above.sort_values("frac_copy_bw", ascending=False)
        rows = ", ".join(worst["row_id"].head(3)) + (", ..." if len(worst) > 3 else "")
        note = ROOF_NOTE.format(n=len(above), pct=100 * worst["frac_copy_bw"].iloc[0], rows=rows)
        fig.text(0.01, -0.02, textwrap.fill(note, 120), ha="left", va="top", fontsize=7)
    fig.tight_layout()
    return fig


def _records_table(records: list[dict[str, Any]], columns: list[str]) -> str:
    if not records:
        return "(none)\n"
    return markdown_table(pd.DataFrame(records), [c for c in columns if c in records[0]])


def summary_markdown(run: LoadedRun) -> str:
    """summary.md: setup, every row, scan vs attention, crossover, speed-ups and the gate table."""
    m, df, s = run.manifest, run.metrics, run.summary or {}
    env, ceil = m.get("environment", {}), m.get("ceilings") or {}
    lines = [
        "# kernel-profile",
        "",
        f"- device: {env.get('device_name')} (kind {m.get('device_kind')}), torch {env.get('torch')}, "
        f"triton {env.get('triton')}, commit {env.get('commit')}",
        f"- preset: {m.get('config', {}).get('preset')}; timing: {m.get('config', {}).get('timing')}",
        f"- ceilings measured in this run: copy {fmt(ceil.get('copy_gbps'))} GB/s, matmul "
        f"{fmt(ceil.get('matmul_tflops'))} TFLOP/s ({ceil.get('matmul_dtype')}, n={ceil.get('matmul_n')})",
        f"- rows: {len(df)}; status: {s.get('status_counts')}",
        "- FLOPs: scan 9*B*D*L*N + 7*B*D*L per forward, fwd_bwd = 3x forward; causal attention "
        "4*B*H*L^2*hd/2 forward, fwd_bwd = 3.5x; bytes: analytic minimum (inputs read once, outputs "
        "written once). rel_err: ||out - ref|| / ||ref|| against a float64 oracle on the same inputs (the "
        "sequential scan, or plain attention), over the output, every gradient (fwd_bwd) and the state "
        "(step); a row over its dtype's tolerance is 'incorrect' and enters no comparison.",
        "",
        "## Rows",
        "",
        markdown_table(df, [c for c in TABLE_COLUMNS + ["rel_err_on"] if c in df.columns]),
        "## Scan against attention (ratio > 1: the scan is faster; correct rows only)",
        "",
        _records_table(s.get("scan_vs_attention", []), ["mode", "batch", "dim", "seqlen", "dstate", "dtype",
                                                         "best_scan", "scan_ms", "attention_ms",
                                                         "attention_over_scan"]),
        "## Crossover",
        "",
    ]
    for c in s.get("crossover", []):
        where = c["scan_faster_from_seqlen"]
        verdict = f"scan faster from L = {where}" if where is not None else "attention faster at longest L"
        lines.append(f"- {c['mode']} B{c['batch']} D{c['dim']} N{c['dstate']} {c['dtype']} "
                     f"(L in {c['lengths']}): {verdict}")
    if not s.get("crossover"):
        lines.append("(needs scan and attention rows at two or more lengths)")
    lines += ["", "## Speed-up against ref (correct rows only)", "",
              _records_table(s.get("speedup_vs_ref", []), ["mode", "batch", "dim", "seqlen", "dstate",
                                                          "dtype", "impl", "ms_median", "ref_ms",
                                                          "speedup_vs_ref"])]
    gate = _gate(run)
    if gate is not None:
        g = s.get("gate", {})
        lines += [
            "## Regression gate",
            "",
            f"Baseline {g.get('baseline')}. REGRESSED when the median ratio and the fastest-sample ratio "
            f"both exceed 1 + {g.get('max_regression')} and a one-sided Mann-Whitney U test gives "
            f"p < {g.get('p_threshold')}, in every re-measurement; normalize: {g.get('normalize')}. "
            f"Verdicts: {g.get('verdicts')}; exit code {g.get('exit_code')}.",
            "",
            markdown_table(gate, [c for c in GATE_COLUMNS if c in gate.columns]),
        ]
    return "\n".join(lines) + "\n"


def render(run: LoadedRun, out: Path) -> list[Path]:
    """Write summary.md, latency_vs_seqlen.png and roofline.png into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = out / SUMMARY_MD
    atomic_write_text(md, summary_markdown(run))
    written = [md]
    df = run.metrics
    if df.empty or "status" not in df.columns:
        return written
    written.append(save_png(plot_latency(df), out, LATENCY_PNG))
    written.append(save_png(plot_roofline(df, run.manifest.get("ceilings") or {}), out, ROOFLINE_PNG))
    return written

