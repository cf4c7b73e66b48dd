"""The one progress display of every long command: rich bars on stderr (``RichProgress``), or
nothing with --json. Tasks see only the ``ssmbench.progress.Progress`` protocol."""

from __future__ import annotations

from types import TracebackType

from rich import progress as rp
from rich.console import Console
from rich.markup import escape

from ssmbench.cli.common import err_console
from ssmbench.progress import Info, NullProgress, Progress


def progress_for(json_out: bool) -> Progress:
    """Bars on stderr, or silence when the command prints JSON."""
    return NullProgress() if json_out else RichProgress()


def info_text(info: Info | None) -> str:
    """'loss 2.346  tok/s 15,300': floats from 1000 up with thousands separators, others to 4 digits."""
    parts = []
    for name, value in (info or {}).items():
        if isinstance(value, float):
            value = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
        parts.append(f"{name} {value}")
    return "  ".join(parts)


class RichProgress:
    """One rich task per key: name, bar, done/total, info, status, time left."""

    def __init__(self, console: Console | None = None) -> None:
        self._bars = rp.Progress(
            rp.TextColumn("[bold]{task.description:<16}"),
            rp.BarColumn(),
            rp.MofNCompleteColumn(),
            rp.TextColumn("{task.fields[info]}  {task.fields[status]}", markup=False),
            rp.TimeRemainingColumn(),
            console=console or err_console,
            # Redrawn on each call, not from a background thread that would share the CPU
            # with the work being timed.
            auto_refresh=False,
        )
        self._tasks: dict[str, rp.TaskID] = {}
        self._live = False

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live:
            self._bars.stop()
            self._live = False

    def start(self, key: str, total: int, done: int = 0) -> None:
        # The display starts with the first bar: a command that fails before any work prints
        # only its one-line error.
        if not self._live:
            self._bars.start()
            self._live = True
        self._tasks[key] = self._bars.add_task(escape(key), total=total, completed=done, info="", status="")
        self._bars.refresh()

    def update(self, key: str, done: int, info: Info | None = None) -> None:
        self._bars.update(self._tasks[key], completed=done, info=info_text(info), refresh=True)

    def finish(self, key: str, status: str) -> None:
        if key not in self._tasks:
            self.start(key, total=1, done=1)
        self._bars.update(self._tasks[key], status=status, refresh=True)

    def note(self, text: str) -> None:
        self._bars.console.print(text, highlight=False, markup=False)
