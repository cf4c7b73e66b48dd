"""The worker pool behind --devices, with small jobs (tests/train/worker_jobs.py) in spawned CPU
workers: order, reuse, a failing task and a dying worker replaced, one task per process, Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ssmbench.train.workers import Event, WorkerSpec, death_reason, run_on_devices
from tests.train import worker_jobs


def _run(tasks, devices, *, one_task_each: bool, job=worker_jobs.echo) -> list[Event]:
    events: list[Event] = []
    spec = WorkerSpec(worker_jobs.setup, ("t",), job, threads=1)
    run_on_devices(devices, tasks, spec, events.append, one_task_each=lambda d: one_task_each)
    return events


def test_a_device_takes_its_tasks_in_order_and_a_failure_or_death_gets_a_fresh_worker() -> None:
    events = _run([0, 1, "fail", 2, "die", 3], ["cpu"], one_task_each=False)
    starts = [e for e in events if e.kind == "start"]
    assert [e.task for e in starts] == [0, 1, "fail", 2, "die", 3]
    # one worker for 0, 1 and the failing task; a fresh one for 2 and the task that kills it; a third for 3
    pids = [e.pid for e in starts]
    assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] != pids[5] != pids[0]
    assert [e.task for e in events if e.kind == "end"] == [0, 1, 2, 3]
    failed = {e.task: e.data for e in events if e.kind == "failed"}
    assert failed == {"fail": "ValueError: failed on purpose", "die": "worker process died (exit code 3)"}
    messages = [e for e in events if e.kind == "message"]
    assert [m.data[3] for m in messages] == [0, 1, 2, "die", 3]
    # each job ran in the process its start named, on its device, with the threads asked for
    assert all(m.data[:3] == ("t", m.pid, "cpu") and m.data[4] == 1 for m in messages)
    assert all(isinstance(e.data, float) and e.data >= 0 for e in events if e.kind == "end")


def test_one_task_per_process_over_two_devices() -> None:
    events = _run(["a", "b", "c"], ["cpu", "cpu"], one_task_each=True)
    starts = [e for e in events if e.kind == "start"]
    assert [e.task for e in starts] == ["a", "b", "c"]
    assert len({e.pid for e in starts}) == 3
    assert sorted(e.task for e in events if e.kind == "end") == ["a", "b", "c"]


def test_ctrl_c_stops_the_running_tasks_and_starts_no_other() -> None:
    events: list[Event] = []

    def interrupt_when_both_wait() -> None:
        deadline = time.monotonic() + 300
        while sum(e.kind == "message" for e in events) < 2:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # what a terminal's Ctrl-C sends the parent

    thread = threading.Thread(target=interrupt_when_both_wait, daemon=True)
    thread.start()
    spec = WorkerSpec(worker_jobs.setup, ("t",), worker_jobs.wait_for_stop, threads=1)
    with pytest.raises(KeyboardInterrupt):
        run_on_devices(["cpu", "cpu"], [0, 1, 2], spec, events.append, one_task_each=lambda d: False)
    thread.join()
    assert [e.task for e in events if e.kind == "start"] == [0, 1]
    assert sorted(e.task for e in events if e.kind == "interrupted") == [0, 1]
    assert not [e for e in events if e.kind in ("end", "failed")]


def test_a_worker_may_start_processes_of_its_own() -> None:
    """A CUDA run prefetches batches in processes it starts: its worker must not be daemonic."""
    events = _run([7], ["cpu"], one_task_each=True, job=worker_jobs.with_child)
    assert [e.data for e in events if e.kind == "message"] == [7]
    assert [e.task for e in events if e.kind == "end"] == [7]


def test_death_reasons() -> None:
    assert death_reason(3) == "exit code 3"
    assert death_reason(-signal.SIGKILL) == "killed by SIGKILL"
