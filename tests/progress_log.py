"""A Progress that records every call, for tests of what a task reports."""

from __future__ import annotations

from typing import Any

from ssmbench.progress import Info, NullProgress


class ProgressLog(NullProgress):
    """Calls as tuples: ('start', key, total, done), ('update', key, done, info), ('finish', key,
    status), ('note', text); ``entered`` counts how often the task entered it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.entered = 0

    def __enter__(self) -> ProgressLog:
        self.entered += 1
        return self

    def start(self, key: str, total: int, done: int = 0) -> None:
        self.calls.append(("start", key, total, done))

    def update(self, key: str, done: int, info: Info | None = None) -> None:
        self.calls.append(("update", key, done, dict(info or {})))

    def finish(self, key: str, status: str) -> None:
        self.calls.append(("finish", key, status))

    def note(self, text: str) -> None:
        self.calls.append(("note", text))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]
