"""Independent jobs side by side over devices: one worker process per device (``--devices``).

The parent process hands out tasks in the order given, each to the first device that is free
(greedy list scheduling), and turns what the workers report into ``Event``s for its ``handle``
callback; it never trains. A worker is spawned (CUDA cannot be forked), runs ``setup`` once
(opening the data, say), then ``job`` for each task it is given, sending messages back on one
queue. A CPU worker runs one task and exits (so each task's process is its own: its peak memory
is its own); a GPU worker takes the device's tasks one after another. A task whose job raises
is reported ``failed`` and its worker replaced by a fresh one (a CUDA error can leave the
process unusable); a worker that dies (killed, out of host memory) is noticed, its task reported
``failed`` with the exit code or signal, and its device goes on with a fresh worker.

Ctrl-C: workers ignore SIGINT (a terminal sends it to every process of the group); the parent
catches it, sets a shared stop flag that the jobs poll between training steps, waits for the
workers to report and exit (terminating any that do not within ``STOP_TIMEOUT_S``), reports
their tasks ``interrupted`` and raises KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from ssmbench.errors import SsmbenchError

STOP_TIMEOUT_S = 60.0  # after a Ctrl-C, how long workers get to report and exit
POLL_S = 0.2  # how often the parent looks for dead workers and a Ctrl-C

Send = Callable[[Any], None]
"""A job's way to send a picklable message to the parent (an Event of kind "message")."""


@dataclass(frozen=True)
class WorkerSpec:
    """What each worker runs; ``setup`` and ``job`` are module-level functions (a spawned process
    imports them by name). setup(*setup_args) -> context, once per worker process;
    job(context, device, task, send, stop) for each task, where stop() turns True when the run
    should end as after a Ctrl-C (raise KeyboardInterrupt). threads: torch threads of a CPU worker."""

    setup: Callable[..., Any]
    setup_args: tuple[Any, ...]
    job: Callable[[Any, torch.device, Any, Send, Callable[[], bool]], None]
    threads: int | None = None


@dataclass(frozen=True)
class Event:
    """What the parent's ``handle`` sees. kind: "start" (the task was handed to a worker),
    "message" (data: what the job sent), "end" (data: the job's wall seconds), "failed" (data:
    one line: the error, or how the worker died), "interrupted" (stopped by a Ctrl-C)."""

    kind: str
    task: Hashable
    device: str
    pid: int | None
    data: Any = None


class WorkerStartError(SsmbenchError):
    """A worker could not start (its setup failed or it died before it was ready)."""


def stop_on_signal() -> contextlib.AbstractContextManager[threading.Event]:
    """A flag set by SIGINT while the block runs (in the main thread; elsewhere only by hand)."""
    return _sigint_flag()


@contextlib.contextmanager
def _sigint_flag() -> Iterator[threading.Event]:
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _reason(e: BaseException) -> str:
    """One line: 'RuntimeError: message' (the message's first line, at most 300 characters)."""
    text = (str(e).strip().splitlines() or [""])[0][:300]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def death_reason(exitcode: int | None) -> str:
    """How a worker process ended, in words: 'killed by SIGKILL', 'exit code 3'."""
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def _worker_main(wid: int, device: str, spec: WorkerSpec, conn: Connection, stop: Any) -> None:
    """A worker process: setup, then the tasks it is given until None. ``conn`` carries tasks in
    and (kind, task, data) messages out; ``stop`` is a shared byte, no lock (a worker killed
    while reading it cannot block the others)."""
    # the parent alone decides what a Ctrl-C does (a terminal sends SIGINT to the whole group)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    dev = torch.device(device)
    try:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        elif spec.threads:
            torch.set_num_threads(spec.threads)
        context = spec.setup(*spec.setup_args)
    except Exception as e:
        conn.send(("setup_failed", None, _reason(e)))
        return
    conn.send(("ready", None, None))
    while (task := conn.recv()) is not None:
        t0 = time.perf_counter()
        try:
            spec.job(context, dev, task, lambda data, task=task: conn.send(("message", task, data)),
                     lambda: bool(stop.value))
        except KeyboardInterrupt:
            conn.send(("interrupted", task, None))
            return
        except Exception as e:
            conn.send(("failed", task, _reason(e)))
            return  # a fresh process for the next task
        conn.send(("end", task, time.perf_counter() - t0))


@dataclass
class _Worker:
    slot: int
    device: str
    process: Any
    conn: Connection
    ready: bool = False
    task: Hashable | None = None
    leaving: bool = False  # told to exit, or exiting by itself (after a failure or a Ctrl-C)
    closed: bool = False  # its end of the pipe is closed: nothing more will come

    def tell(self, task: Hashable | None) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(task)
        if task is None:
            self.leaving = True


class _Pool:
    """The parent's side: workers by id, each on a device slot, and the tasks not handed out yet."""

    def __init__(self, devices: Sequence[str], tasks: Sequence[Hashable], spec: WorkerSpec,
                 handle: Callable[[Event], None], one_task_each: Callable[[str], bool]) -> None:
        self.devices, self.spec, self.handle, self.one_task_each = devices, spec, handle, one_task_each
        self.pending: deque[Hashable] = deque(tasks)
        self.ctx = mp.get_context("spawn")
        self.stop = self.ctx.RawValue("b", 0)
        self.workers: dict[int, _Worker] = {}
        self.next_id = 0

    @property
    def stopping(self) -> bool:
        return bool(self.stop.value)

    def start(self, slot: int) -> None:
        device = self.devices[slot]
        wid, self.next_id = self.next_id, self.next_id + 1
        mine, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(wid, device, self.spec, theirs, self.stop),
                                name=f"ssmbench-worker-{wid}-{device}")  # not daemonic: a CUDA run starts its
        # own batch-prefetch processes; shutdown() ends every worker
        proc.start()
        theirs.close()
        self.workers[wid] = _Worker(slot, device, proc, mine)

    def give(self, w: _Worker) -> None:
        """The next task to an idle worker; or, when none is left, tell it to leave."""
        if not self.pending or self.stopping or w.process.exitcode is not None:
            w.tell(None)
            return
        w.task = self.pending.popleft()
        w.tell(w.task)
        self.handle(Event("start", w.task, w.device, w.process.pid))

    def receive(self, w: _Worker) -> None:
        """One message of ``w`` (or notice that its pipe closed)."""
        try:
            kind, task, data = w.conn.recv()
        except (EOFError, OSError):
            w.closed = True
            return
        pid = w.process.pid
        if kind == "setup_failed":
            raise WorkerStartError(f"the worker for {w.device} could not start: {data}")
        if kind == "ready":
            w.ready = True
            self.give(w)
        elif kind == "message":
            self.handle(Event("message", task, w.device, pid, data))
        elif kind == "end":
            w.task = None
            self.handle(Event("end", task, w.device, pid, data))
            if self.one_task_each(w.device):
                w.tell(None)
            else:
                self.give(w)
        else:  # failed, interrupted: the worker leaves by itself
            w.task, w.leaving = None, True
            self.handle(Event(kind, task, w.device, pid, data))

    def poll(self, timeout: float) -> None:
        """Handle what arrives within ``timeout``, then notice workers that ended."""
        conns = {w.conn: w for w in self.workers.values() if not w.closed}
        for conn in wait(list(conns), timeout) if conns else []:
            self.receive(conns[conn])  # type: ignore[index]
        if not conns:
            time.sleep(timeout)
        self.reap()

    def reap(self) -> None:
        """Workers that ended: a task one held failed; its device goes on with a fresh worker."""
        for wid, w in list(self.workers.items()):
            if w.process.exitcode is None:
                continue
            while not w.closed and w.conn.poll():
                self.receive(w)  # what it sent before it ended comes first
            w.conn.close()
            del self.workers[wid]
            how = death_reason(w.process.exitcode)
            if w.task is not None:
                self.handle(Event("failed", w.task, w.device, w.process.pid, f"worker process died ({how})"))
            elif not w.ready and not self.stopping:
                raise WorkerStartError(f"the worker for {w.device} died while starting ({how})")
            if self.pending and not self.stopping:
                self.start(w.slot)

    @property
    def busy(self) -> bool:
        return any(w.task is not None or not w.ready for w in self.workers.values()) or (
            bool(self.pending) and not self.stopping)

    def wind_down(self, deadline: float) -> None:
        """After a Ctrl-C: idle workers leave, running jobs see stop(); wait for their last messages."""
        self.stop.value = 1
        for w in self.workers.values():
            if w.ready and w.task is None and not w.leaving:
                w.tell(None)
        while self.workers and time.monotonic() < deadline:
            self.poll(POLL_S)

    def close(self) -> None:
        """Every worker gone: those leaving get a moment, the others are terminated (their tasks:
        interrupted)."""
        self.stop.value = 1
        for w in self.workers.values():
            if w.leaving:
                w.process.join(10)
            if w.process.is_alive():
                w.process.terminate()
        for wid, w in list(self.workers.items()):
            w.process.join(5)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()
            if w.task is not None:
                self.handle(Event("interrupted", w.task, w.device, w.process.pid))
            del self.workers[wid]


def run_on_devices(devices: Sequence[str], tasks: Sequence[Hashable], spec: WorkerSpec,
                   handle: Callable[[Event], None], *,
                   one_task_each: Callable[[str], bool] | None = None) -> None:
    """Run every task on the first free device, in the order given; ``handle`` sees each Event in
    the parent. one_task_each(device): whether a worker there runs one task and leaves (default:
    on CPU devices). Ctrl-C: see the module notes; raises KeyboardInterrupt once the workers are
    gone. WorkerStartError when a worker cannot start."""
    if not tasks:
        return
    pool = _Pool(devices, tasks, spec, handle, one_task_each or (lambda d: torch.device(d).type == "cpu"))
    with stop_on_signal() as interrupted:
        try:
            for slot in range(min(len(devices), len(tasks))):
                pool.start(slot)
            while pool.busy:
                if interrupted.is_set():
                    pool.wind_down(time.monotonic() + STOP_TIMEOUT_S)
                    raise KeyboardInterrupt
                pool.poll(POLL_S)
        finally:
            pool.close()
