"""Jobs that spawned workers run in test_workers.py and test_side_by_side.py. Module-level, so a
worker imports them by name; compare is imported inside the compare jobs only, so the pool's
workers start light."""

from __future__ import annotations

import os
import time
from typing import Any

import torch


def setup(tag: str) -> dict[str, Any]:
    """A worker's context: the tag it was given, and its process id."""
    return {"tag": tag, "pid": os.getpid()}


def echo(ctx: dict[str, Any], dev: torch.device, task: Any, send, stop) -> None:
    """Task "fail" raises; "die" ends the process with exit code 3 after one message; any other
    task sends (tag, pid, device, task, torch threads)."""
    if task == "fail":
        raise ValueError("failed on purpose")
    send((ctx["tag"], ctx["pid"], str(dev), task, torch.get_num_threads()))
    if task == "die":
        os._exit(3)


def wait_for_stop(ctx: dict[str, Any], dev: torch.device, task: Any, send, stop) -> None:
    """Sends "waiting", then polls stop() as a training loop does between steps."""
    send("waiting")
    while not stop():
        time.sleep(0.02)
    raise KeyboardInterrupt


def broken_runs(ctx, dev, key, send, stop) -> None:
    """compare's job, but mamba raises at its first logged interval and moe's process exits
    (code 3) after its first evaluation; the others run as they are."""
    from ssmbench.train import compare

    def send_and_break(msg: Any) -> None:
        send(msg)
        if key[0] == "mamba" and msg[0] == "progress":
            raise RuntimeError("broken on purpose")
        if key[0] == "moe" and msg[0] == "evaluated":
            os._exit(3)

    compare._worker_job(ctx, dev, key, send_and_break, stop)


def slow_mamba(ctx, dev, key, send, stop) -> None:
    """compare's job, with mamba taking at least 0.25 s a step (time for a Ctrl-C mid-run)."""
    from ssmbench.train import compare

    def paced() -> bool:
        time.sleep(0.25)
        return stop()

    compare._worker_job(ctx, dev, key, send, paced if key[0] == "mamba" else stop)


def _child_exit(code: int) -> None:
    os._exit(code)


def with_child(ctx: dict[str, Any], dev: torch.device, task: Any, send, stop) -> None:
    """Starts a process of its own (as a CUDA run's batch prefetching does) and sends its exit code."""
    import multiprocessing as mp

    child = mp.get_context("spawn").Process(target=_child_exit, args=(task,))
    child.start()
    child.join(60)
    send(child.exitcode)
