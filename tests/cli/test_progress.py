"""The rich progress display behind the Progress protocol."""

from __future__ import annotations

import io

from rich.console import Console

from ssmbench.cli.progress import RichProgress, info_text, progress_for
from ssmbench.progress import NullProgress


def recording_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=160, force_terminal=False, color_system=None), buf


def test_info_text_formats_rates_and_small_numbers() -> None:
    assert info_text({"loss": 2.34567, "tok/s": 15300.4}) == "loss 2.346  tok/s 15,300"
    assert info_text({"round": "2/8", "batch": 64}) == "round 2/8  batch 64"
    assert info_text(None) == ""


def test_bars_show_counts_info_and_status() -> None:
    console, buf = recording_console()
    with RichProgress(console) as p:
        p.start("mamba", 10)
        p.update("mamba", 4, {"loss": 3.5})
        p.note("a [note] with brackets")
        p.finish("mamba", "oom")
        p.finish("transformer", "done (earlier run)")
    text = buf.getvalue()
    assert "a [note] with brackets" in text
    assert "4/10" in text and "loss 3.5" in text and "oom" in text
    assert "transformer" in text and "1/1" in text and "done (earlier run)" in text


def test_nothing_is_drawn_before_the_first_bar() -> None:
    console, buf = recording_console()
    with RichProgress(console):
        pass
    assert buf.getvalue() == ""


def test_json_output_gets_no_display() -> None:
    assert isinstance(progress_for(True), NullProgress)
    assert isinstance(progress_for(False), RichProgress)
