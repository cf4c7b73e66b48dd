"""Live progress of a comparison on the terminal (stderr): one bar per model with step, loss,
tokens/s and ETA. ``NullProgress`` is the silent stand-in (--json, tests)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class NullProgress:
    """Same calls as CompareProgress, prints nothing."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def start_model(self, name: str, total: int, done: int = 0) -> None: ...

    def update(self, name: str, step: int, loss: float, tokens_per_s: float) -> None: ...

    def finish(self, name: str, status: str) -> None: ...

    def note(self, text: str) -> None: ...


class CompareProgress(NullProgress):
    """rich Progress with one task per model."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:>7}  {task.fields[tps]:>9} tok/s  {task.fields[status]}"),
            TimeRemainingColumn(),
            console=self._console,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> CompareProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def start_model(self, name: str, total: int, done: int = 0) -> None:
        self._tasks[name] = self._progress.add_task(name, total=total, completed=done, loss="", tps="",
                                                    status="")

    def update(self, name: str, step: int, loss: float, tokens_per_s: float) -> None:
        self._progress.update(self._tasks[name], completed=step, loss=f"{loss:.4f}",
                              tps=f"{tokens_per_s:,.0f}")

    def finish(self, name: str, status: str) -> None:
        if name not in self._tasks:
            self.start_model(name, total=1, done=1)
        self._progress.update(self._tasks[name], status=status)

    def note(self, text: str) -> None:
        self._progress.console.print(text, highlight=False)
