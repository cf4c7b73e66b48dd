"""How a long task reports progress: the ``Progress`` protocol tasks accept, and ``NullProgress``,
which shows nothing (--json, tests, library use). The display itself (rich bars on stderr) is
the CLI's: ``ssmbench.cli.progress.RichProgress``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

# Short measurements shown beside a bar, in order: {"loss": 2.31, "tok/s": 15300.0}.
Info = Mapping[str, float | int | str]


class Progress(Protocol):
    """Named bars, each counting units of work (steps, rows, batch sizes); entered as a context
    manager around the work."""

    def __enter__(self) -> Progress: ...

    def __exit__(self, *exc: object) -> None: ...

    def start(self, key: str, total: int, done: int = 0) -> None:
        """A bar named ``key`` of ``total`` units, ``done`` of them already done (a resumed run)."""

    def update(self, key: str, done: int, info: Info | None = None) -> None:
        """``done`` units of ``key`` are finished; ``info`` replaces the text beside the bar."""

    def finish(self, key: str, status: str) -> None:
        """``key`` ended with ``status`` ('done', 'oom', 'interrupted', ...); a bar never started
        is shown complete."""

    def note(self, text: str) -> None:
        """One line of text above the bars."""


class NullProgress:
    """A Progress that shows nothing."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def start(self, key: str, total: int, done: int = 0) -> None: ...

    def update(self, key: str, done: int, info: Info | None = None) -> None: ...

    def finish(self, key: str, status: str) -> None: ...

    def note(self, text: str) -> None: ...
