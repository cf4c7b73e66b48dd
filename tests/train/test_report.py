"""The train-compare renderer on hand-made summaries: bars only for models that reached the target,
legends that say what is drawn, titles and units on every plot, paper figures only for the paper's
setup, old folders refused with one line."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from ssmbench.errors import ResultsError
from ssmbench.report import train_compare as tc
from ssmbench.results import LoadedRun
from ssmbench.train.loop import ModelRun
from ssmbench.train.presets import TRAIN_PRESETS
from ssmbench.train.summary import SummarySetup, build_summary

STEPS = list(range(0, 101, 10))
DESC = {"params_total": 10, "params_active": 8, "params_total_nonembed": 6_000_000,
        "params_active_nonembed": 4_000_000, "flops_per_token": 100.0}


def _run(name: str, slope: float, offset: float) -> ModelRun:
    run = ModelRun(name, status="done", tokens=1000)
    for s in STEPS:
        run.step = s
        run.add("eval_loss", 5.0 - slope * s + offset)
        run.add("eval_bpb", (5.0 - slope * s + offset) / math.log(2))
        if s:
            run.add("train_loss_ema", 5.2 - slope * s + offset)
            run.add("tokens_per_s", 1000.0)
    return run


def _summary(paper=None) -> list[dict]:
    names = ("mamba", "moe-mamba", "transformer")
    slopes = {"mamba": 0.015, "moe-mamba": 0.02, "transformer": 0.01}
    runs = {(n, s): _run(n, slopes[n], 0.05 * (1 - 2 * s)) for n in names for s in (0, 1)}
    setup = SummarySetup(names=names, seeds=(0, 1), reference="mamba", steps_planned=100,
                         steps_metric="eval_loss", ema_alpha=0.01, target_loss=None,
                         described={n: DESC for n in names}, tokens_per_byte=0.3, tokens_per_pass=None,
                         paper=paper)
    return build_summary(runs, setup)


def _metrics(summary: list[dict]) -> pd.DataFrame:
    rows = []
    for s in summary:
        for seed in (0, 1):
            run = _run(s["name"], {"mamba": 0.015, "moe-mamba": 0.02, "transformer": 0.01}[s["name"]],
                       0.05 * (1 - 2 * seed))
            rows += [{**r, "seed": seed} for r in run.rows]
    return pd.DataFrame(rows)


def _loaded(tmp_path, summary, paper=None) -> LoadedRun:
    manifest = {"kind": "train-compare", "config": {"preset": "smoke", "suite": "zoo", "seeds": [0, 1],
                                                     "train": {"steps": 100}},
                "data": {"name": "synthetic", "loss_floor_nats_per_token": 2.0}, "paper": paper}
    return LoadedRun(tmp_path, manifest, _metrics(summary), summary)


def test_steps_bars_only_for_models_that_reached_the_target() -> None:
    summary = _summary()
    fig = tc.steps_figure(summary)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]
    # moe-mamba and mamba reached the evaluation target; transformer never did and gets no bar
    centres = sorted(round(b.get_x() + b.get_width() / 2) for b in bars)
    assert centres == [0, 1]
    heights = sorted(b.get_height() for b in bars)
    assert heights == pytest.approx(sorted([summary[0]["steps_to_target_eval_pct"],
                                            summary[1]["steps_to_target_eval_pct"]]))
    texts = [t.get_text() for t in ax.texts]
    assert "never\nreached" in texts and "1/2 seeds" in " ".join(texts)  # the reference: one seed of two
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("mean over seeds that reached it" in t for t in legend)
    assert not any("hatch" in t or t == "measured" for t in legend)
    assert all(ax.get_title() and ax.get_ylabel() for ax in fig.axes)


def test_every_plot_has_a_title_units_and_a_legend_for_each_line(tmp_path) -> None:
    summary = _summary()
    run = _loaded(tmp_path, summary)
    paths = tc.render(run, tmp_path)
    assert sorted(p.name for p in paths) == sorted(["summary.md", *(f"{p}.png" for p in tc.PLOTS)])
    fig = tc._line_plot(run.metrics, "eval_loss", "step", "validation loss against steps",
                        [(2.0, "the source's entropy floor"), (3.5, "target")])
    ax = fig.axes[0]
    assert "band: min to max over seeds" in ax.get_title()
    assert ax.get_xlabel() == "training step" and "nats/token" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["mamba (mean of 2 seeds)", "moe-mamba (mean of 2 seeds)",
                      "transformer (mean of 2 seeds)", "the source's entropy floor", "target"]
    assert ax.get_xscale() == "linear"
    final = tc.final_figure(summary, "final_eval_loss", "final eval_loss (nats/token)").axes[0]
    assert final.get_title() and "95% CI" in " ".join(t.get_text() for t in final.get_legend().get_texts())


def test_summary_md_and_console_table(tmp_path) -> None:
    summary = _summary()
    md = tc.summary_markdown(_loaded(tmp_path, summary).manifest, summary)
    moe = summary[1]
    low, high = moe["final_eval_loss_ci95"]
    assert f"| moe-mamba | 6M/4M | 2 | {moe['final_eval_loss_mean']:.4g} [{low:.4g}, {high:.4g}] |" in md
    assert "| transformer | never |" in md and "centred moving average" in md and "stays at or below" in md
    table = tc.console_table(_loaded(tmp_path, summary))
    assert [c.header for c in table.columns] == list(tc.CONSOLE_COLUMNS)
    assert "[low, high]" in str(table.caption)  # escaped, not eaten as markup


def test_paper_figures_only_when_the_setup_matches(tmp_path) -> None:
    paper = TRAIN_PRESETS["paper-v1"].paper
    matched = _summary(paper=paper)
    figures = {**paper.to_dict(), "setup_note": None}
    md = tc.summary_markdown(_loaded(tmp_path, matched, figures).manifest, matched)
    assert "## Beside the paper" in md and "| moe-mamba | 3.41 |" in md
    other = _summary()  # the summary holds no paper figures when the setup differs
    note = paper.setup_note("synthetic", "bpe-512")
    manifest = _loaded(tmp_path, other, {**paper.to_dict(), "setup_note": note}).manifest
    md = tc.summary_markdown(manifest, other)
    assert "not shown" in md and "left out" in md and "| moe-mamba | 3.41 |" not in md


def test_a_single_seed_summary_from_an_older_ssmbench_is_refused(tmp_path) -> None:
    old = [{"name": "mamba", "status": "done", "final_eval_loss": 3.5}]
    with pytest.raises(ResultsError, match="older ssmbench"):
        tc.render(LoadedRun(tmp_path, {"kind": "train-compare"}, pd.DataFrame(), old), tmp_path)
