"""Every PNG that kernel-profile and gen-speed write (and `ssmbench report` re-draws) from a small
run is opened: a real image, not blank; every figure has a title, labelled axes and legends that
cover no data point."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.legend import Legend
from PIL import Image
from typer.testing import CliRunner

from ssmbench.cli import app
from ssmbench.report import gen_speed, kernel_profile
from ssmbench.results import load_run

matplotlib.use("Agg")
runner = CliRunner()
KERNEL = ["kernel-profile", "--preset", "smoke", "--shape", "1,16,16,4", "--shape", "1,16,32,4", "--impl",
          "ref,chunked,attention", "--rounds", "1", "--rep-ms", "1", "--min-reps", "2", "--head-dim", "8"]
GEN = ["gen-speed", "--preset", "gen-smoke", "--device", "cpu"]
PNGS = {
    "kernel-profile": {"latency_vs_seqlen.png", "roofline.png"},
    "gen-speed": {"bytes_per_s_vs_batch.png", "step_latency_vs_position.png", "time_to_generate.png"},
}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plots")
    out = {"kernel-profile": root / "kp", "gen-speed": root / "gs"}
    for args, folder in ((KERNEL, out["kernel-profile"]), (GEN, out["gen-speed"])):
        result = runner.invoke(app, [*args, "--out", str(folder)])
        assert result.exit_code == 0, result.output
    return out


def assert_real_image(path: Path) -> None:
    """At least 300x200 pixels, more than a few colours, and more than 2% of it not background."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        assert w >= 300 and h >= 200, (path.name, im.size)
        rgb = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours = np.unique(rgb, axis=0)
    assert len(colours) > 8, (path.name, len(colours))
    values, counts = np.unique(rgb, axis=0, return_counts=True)
    background = values[counts.argmax()]
    assert (rgb != background).any(axis=1).mean() > 0.02, path.name


@pytest.mark.parametrize("kind", list(PNGS))
def test_every_png_of_a_run_and_of_its_report_opens_and_is_not_blank(runs, kind, tmp_path):
    folder = runs[kind]
    assert {p.name for p in folder.glob("*.png")} == PNGS[kind]
    again = tmp_path / "report"
    result = runner.invoke(app, ["report", str(folder), "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in again.glob("*.png")} == PNGS[kind]
    for png in [*folder.glob("*.png"), *again.glob("*.png")]:
        assert_real_image(png)


def _figures(kind: str, folder: Path) -> list:
    run = load_run(folder)
    if kind == "kernel-profile":
        return [kernel_profile.plot_latency(run.metrics),
                kernel_profile.plot_roofline(run.metrics, run.manifest["ceilings"])]
    gen = gen_speed.generate_rows(run)
    return [gen_speed.plot_bytes_per_s(gen), gen_speed.plot_step_latency(gen_speed.latency_rows(run)),
            gen_speed.plot_gen_time(gen, 64)]


def _legends(fig) -> list[Legend]:
    found = list(fig.legends)
    for ax in fig.axes:
        found += [a for a in ax.get_children() if isinstance(a, Legend)]
    return found


def _along(xy: np.ndarray, n: int = 25) -> np.ndarray:
    """Points along a polyline in display coordinates: its vertices and n between each pair."""
    if len(xy) < 2:
        return xy
    t = np.linspace(0.0, 1.0, n)[:, None, None]
    return (xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2)


def _data_points(ax) -> np.ndarray:
    """Every drawn data point of ``ax`` in display coordinates: along lines, markers, bar corners."""
    pts = []
    for line in ax.get_lines():
        xy = ax.transData.transform(line.get_xydata())
        if len(xy):
            pts.append(xy if line.get_linestyle() in ("None", "", " ") else _along(xy))
    for coll in ax.collections:
        offsets = coll.get_offsets()
        if len(offsets):
            pts.append(coll.get_offset_transform().transform(offsets))
    for patch in ax.patches:
        pts.append(patch.get_window_extent().corners())
    return np.concatenate(pts) if pts else np.zeros((0, 2))


@pytest.mark.parametrize("kind", list(PNGS))
def test_titles_units_and_legends_that_hide_no_data(runs, kind):
    import matplotlib.pyplot as plt

    for fig in _figures(kind, runs[kind]):
        fig.canvas.draw()
        title = fig._suptitle.get_text() if fig._suptitle is not None else ""
        legends = _legends(fig)
        assert legends, "every plot has a legend"
        boxes = [leg.get_window_extent() for leg in legends]
        for ax in fig.axes:
            assert title or ax.get_title(), "every plot has a title"
            assert ax.get_xlabel() and ax.get_ylabel()
            for x, y in _data_points(ax):
                assert not any(b.contains(x, y) for b in boxes), f"a legend covers {ax.get_title()!r}"
        plt.close(fig)


def test_roofline_explains_points_above_the_copy_roof(runs):
    import matplotlib.pyplot as plt

    run = load_run(runs["kernel-profile"])
    df = run.metrics.copy()
    step = (df["status"] == "ok") & (df["mode"] == "step")
    df.loc[step, "frac_copy_bw"] = 1.38
    fig = kernel_profile.plot_roofline(df, run.manifest["ceilings"])
    texts = " ".join(t.get_text() for t in fig.texts)
    assert f"{int(step.sum())} point(s) above the copy roof (up to 138%" in texts and "L2" in texts
    plt.close(fig)
