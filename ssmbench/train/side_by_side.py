"""``train-compare --devices cuda:0,cuda:1``: the (model, seed) runs of one comparison side by
side, one worker process per device (``ssmbench.train.workers``).

The parent (this module's ``run_side_by_side``) owns the results folder as a sequential run does:
metrics.csv and summary.json after every evaluation a worker reports (and the results_changed
callback), the manifest's ``schedule`` (which run ran where, when and how long), one progress bar
per run, and the checkpoints of finished runs (deleted once their rows are saved). The workers
build, train and checkpoint their runs and send each run's state back. The numbers are those of
a sequential run with the same seeds: the same code on the same batches (on the CPU, with the
same number of threads, bit for bit).

Schedule: longest first (``POLICY``); a run that fails (an error, or its worker process died)
is recorded with status "failed" and its error, and the others go on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ssmbench.progress import Progress
from ssmbench.results import MANIFEST, RunFolder
from ssmbench.train.checkpoint import checkpoint_path
from ssmbench.train.loop import FINISHED, ModelRun
from ssmbench.train.workers import Event, WorkerSpec, run_on_devices

RunKey = tuple[str, int]  # (model, seed)


class RunRecords(Protocol):
    """What the parent writes the runs into (compare's results of one comparison): the runs by key,
    the plan (``train.steps``), the prepared models (``described``: name -> row with
    ``flops_per_token``), the results folder, and ``save()`` (metrics.csv and summary.json)."""

    runs: dict[RunKey, ModelRun]
    plan: Any
    prep: Any
    folder: RunFolder

    def save(self) -> Any: ...

POLICY = ("longest first: the runs ordered by expected cost, FLOPs per token x steps, largest first "
          "(plan order among equals: seed by seed, models in the plan's order); each starts on the first "
          "device that is free")
WORKERS = ("one spawned worker process per device: on a GPU it runs the device's runs one after another; "
           "on the CPU it runs one run and exits, so that run's peak memory is its own; a worker whose run "
           "failed, or that died, is replaced by a fresh one")


def longest_first(todo: Sequence[RunKey], flops_per_token: dict[str, float | None],
                  steps: int) -> list[RunKey]:
    """``todo`` by expected cost (FLOPs per token x steps), largest first; a stable sort, so runs of
    equal cost keep their order (unknown FLOPs count as 0)."""
    return sorted(todo, key=lambda key: -(flops_per_token.get(key[0]) or 0.0) * steps)


def run_side_by_side(todo: Sequence[RunKey], devices: Sequence[str], spec: WorkerSpec, results: RunRecords,
                     progress: Progress, bar_of: Callable[[RunKey], str]) -> None:
    """Train the runs ``todo`` over ``devices`` (``spec``: compare's worker setup and job),
    recording them in ``results``; KeyboardInterrupt after a Ctrl-C, once the workers are gone and
    the runs they held are saved as interrupted."""
    flops = {n: d.get("flops_per_token") for n, d in results.prep.described.items()}
    order = longest_first(todo, flops, results.plan.train.steps)
    parent = _Parent(results, progress, bar_of, devices)
    progress.note(f"{len(order)} run(s) side by side on {', '.join(devices)}, longest first")
    try:
        run_on_devices(devices, order, spec, parent.handle)
    finally:
        parent.close()


class _Parent:
    """What the parent does with each worker event: the runs' state, bars, files, the schedule."""

    def __init__(self, results: RunRecords, progress: Progress, bar_of: Callable[[RunKey], str],
                 devices: Sequence[str]) -> None:
        self.results, self.progress, self.bar_of = results, progress, bar_of
        self.t0 = time.perf_counter()
        manifest = json.loads((results.folder.path / MANIFEST).read_text())
        earlier = (manifest.get("schedule") or {}).get("runs", [])
        self.part = 1 + max((e.get("part", 0) for e in earlier), default=-1)  # 0, then 1 after a --resume ...
        self.schedule: dict[str, Any] = {"policy": POLICY, "workers": WORKERS, "devices": list(devices),
                                         "runs": list(earlier)}
        self.entries: dict[RunKey, dict[str, Any]] = {}
        self.final: set[RunKey] = set()  # runs whose worker sent their last state

    def handle(self, ev: Event) -> None:
        key: RunKey = ev.task  # type: ignore[assignment]
        runs = self.results.runs
        if ev.kind == "start":
            runs[key] = ModelRun(key[0], status="running", device=ev.device)
            entry = {"model": key[0], "seed": key[1], "device": ev.device, "pid": ev.pid,
                     "part": self.part, "started_s": time.perf_counter() - self.t0,
                     "status": "running", "wall_time_s": None}
            self.entries[key] = entry
            self.schedule["runs"].append(entry)
            self._write_schedule()
        elif ev.kind == "message":
            self._message(key, ev)
        elif ev.kind == "end":
            self._finish(key)
        else:  # failed, interrupted
            run = runs[key]
            if ev.kind == "failed":
                run.status, run.error = "failed", ev.data
            elif run.status not in FINISHED:
                run.status = "interrupted"
            self._finish(key)

    def _message(self, key: RunKey, ev: Event) -> None:
        what, *data = ev.data
        bar = self.bar_of(key)
        if what == "progress":
            step, loss, tps = data
            self.progress.update(bar, step, {"loss": loss, "tok/s": tps, "on": ev.device})
            return
        run = self.results.runs[key] = ModelRun.from_dict(data[0])
        if what == "started":
            self.progress.start(bar, self.results.plan.train.steps, run.step)
        elif what == "evaluated":
            self.results.save()
        elif what == "final":
            self.final.add(key)

    def _finish(self, key: RunKey) -> None:
        run = self.results.runs[key]
        entry = self.entries[key]
        if key not in self.final:
            # no last word from its worker (it died): the wall time as the parent saw it
            run.wall_time_s = time.perf_counter() - self.t0 - entry["started_s"]
        entry.update(status=run.status, wall_time_s=run.wall_time_s, error=run.error)
        self.results.save()
        if run.status in FINISHED:
            checkpoint_path(self.results.folder.path, *key).unlink(missing_ok=True)
        self.progress.finish(self.bar_of(key), run.status)
        self._write_schedule()

    def _write_schedule(self) -> None:
        self.schedule["wall_time_s"] = time.perf_counter() - self.t0
        self.results.folder.update_manifest(schedule=self.schedule)

    def close(self) -> None:
        self.results.save()
        self._write_schedule()
