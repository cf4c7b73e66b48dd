"""One model over several processes: ``torchrun --nproc-per-node N -m ssmbench train-compare ...``.

Every process runs the same command. ``launch`` reads torchrun's environment (RANK, LOCAL_RANK,
WORLD_SIZE; MASTER_ADDR/PORT are read by PyTorch), gives each process its device (cuda:LOCAL_RANK,
or the CPU) and joins the process group (nccl on CUDA, gloo on CPU). Rank r trains on rows
[r B / W, (r + 1) B / W) of every global batch of B rows, so the W shards together are exactly
the one-process batch; DDP averages the gradients (equal shards: the one-process gradient), or
FSDP2 (``fully_shard``) does the same with parameters, gradients and optimizer state sharded.
Rank 0 alone writes the results folder; the others hold a ``FollowerFolder`` whose writes do
nothing. Without torchrun (or with one process) nothing here changes what a run does.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ssmbench.device import resolve_device
from ssmbench.errors import BadInput
from ssmbench.results import METRICS, SUMMARY_JSON, RunFolder

# A peer that died or hangs ends the others' collectives after this long, not never.
TIMEOUT_S = 600
T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place in the run. backend: "nccl", "gloo", or None (one process, no
    process group); fsdp: shard parameters with FSDP2 instead of replicating them (DDP)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None
    fsdp: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> str:
        """How the model is spread: "fsdp", "ddp" or "none"."""
        return ("fsdp" if self.fsdp else "ddp") if self.active else "none"

    def shard(self, batch_size: int) -> tuple[int, int]:
        """(start, stop): this rank's rows of a global batch of ``batch_size`` rows."""
        if batch_size % self.world_size:
            raise BadInput(f"--batch-size {batch_size} must be a multiple of the {self.world_size} processes")
        per = batch_size // self.world_size
        return self.rank * per, (self.rank + 1) * per

    def local_batch(self, batch_size: int, grad_accum: int) -> int:
        """Rows per step on this rank; BadInput unless they split into ``grad_accum`` micro-batches."""
        start, stop = self.shard(batch_size)
        if (stop - start) % grad_accum:
            raise BadInput(f"{stop - start} rows per process (batch {batch_size} over {self.world_size}) "
                           f"do not split into {grad_accum} micro-batches (grad accumulation)")
        return stop - start

    def window_share(self, n: int) -> tuple[int, int, int]:
        """(lo, hi, per): this rank evaluates windows lo..hi-1 of ``n``, padded to ``per`` windows
        (the same on every rank, so that FSDP's collectives inside forward stay in step)."""
        per = math.ceil(n / self.world_size) if n else 0
        return min(n, self.rank * per), min(n, (self.rank + 1) * per), per


SINGLE = Dist()


def torchrun_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0, or no torchrun: the process that writes files and prints results."""
    return int(os.environ.get("RANK", "0")) == 0


def process_device(device: str, local_rank: int, world_size: int) -> torch.device:
    """The device of the process of ``local_rank``: "cuda"/"auto" become cuda:LOCAL_RANK under torchrun."""
    dev = resolve_device(device)
    if world_size == 1 or dev.type != "cuda":
        return dev
    if dev.index is not None:
        raise BadInput(f"under torchrun each process takes cuda:LOCAL_RANK; use --device cuda, not {device}")
    if local_rank >= torch.cuda.device_count():
        raise BadInput(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible)")
    return torch.device("cuda", local_rank)


@contextlib.contextmanager
def launch(device: str, *, fsdp: bool = False) -> Iterator[tuple[Dist, torch.device]]:
    """(this process's Dist, its device) for the length of a run, in the process group when
    torchrun started several processes; the group is left at the end.

    SIGTERM (what torchrun sends its workers after a Ctrl-C or a failed peer) becomes
    KeyboardInterrupt, so rank 0 leaves the results folder as after a Ctrl-C.
    """
    world = torchrun_world_size()
    if fsdp and world == 1:
        raise BadInput("--fsdp shards a model over processes: run under torchrun --nproc-per-node N (N >= 2)")
    if world == 1:
        yield SINGLE, resolve_device(device)
        return
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = process_device(device, local_rank, world)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    tdist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S),
                             device_id=dev if dev.type == "cuda" else None)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield Dist(rank, local_rank, world, backend, fsdp), dev
    finally:
        signal.signal(signal.SIGTERM, previous)
        tdist.destroy_process_group()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def all_reduce(t: torch.Tensor, dist: Dist, op: str = "sum") -> torch.Tensor:
    """``t`` summed ("sum") or maximised ("max") over ranks, in place; unchanged in one process."""
    if dist.active:
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM if op == "sum" else tdist.ReduceOp.MAX)
    return t


def gather_objects(obj: T, dist: Dist) -> list[T]:
    """``obj`` of every rank, in rank order (picklable objects)."""
    if not dist.active:
        return [obj]
    out: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(out, obj)
    return out


def on_main(fn: Callable[[], T], dist: Dist) -> T:
    """``fn()`` run by rank 0 alone; every rank returns its result, or raises its exception."""
    if not dist.active:
        return fn()
    box: list[Any] = [None]
    if dist.is_main:
        try:
            box[0] = (True, fn())
        except Exception as e:
            box[0] = (False, e)
    tdist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value


def describe(dist: Dist, device: torch.device, same: torch.Tensor | None = None) -> dict[str, Any]:
    """What the manifest records about the process layout. Every rank must call it (it gathers
    the device names of all ranks); ``same``, a tensor every rank must hold alike (the
    evaluation windows, say, which depend on the tokenizer), is checked across ranks."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    digest = hashlib.sha256(same.cpu().numpy().tobytes()).hexdigest() if same is not None else None
    mine = (f"{device} ({name})" if name else str(device), digest)
    gathered = gather_objects(mine, dist)
    if len({d for _, d in gathered}) > 1:
        raise RuntimeError("the processes prepared different data (tokenizer or evaluation windows differ)")
    return {"world_size": dist.world_size, "backend": dist.backend, "parallel": dist.parallel,
            "devices": [dev for dev, _ in gathered]}


class FollowerFolder(RunFolder):
    """The results folder as a rank other than 0 sees it: its path (checkpoints are read from
    it when resuming); every write does nothing, rank 0 makes them."""

    def write_manifest(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def update_manifest(self, **fields: Any) -> None:
        return None

    def write_metrics(self, rows: Any) -> Any:
        return self.path / METRICS

    def write_summary(self, summary: Any) -> Any:
        return self.path / SUMMARY_JSON


def results_folder(create: Callable[[], RunFolder], dist: Dist) -> RunFolder:
    """Rank 0's ``create()`` (which holds the folder's lock); the other ranks get a FollowerFolder
    of the same path (only the path and kind cross processes, never the lock)."""
    created: list[RunFolder] = []

    def make() -> tuple[Path, str]:
        created.append(create())
        return created[0].path, created[0].kind

    path, kind = on_main(make, dist)
    return created[0] if created else FollowerFolder(path, kind)


class ParallelModel:
    """The model as the training step calls it: itself, DDP-wrapped or FSDP2-sharded.

    ``module`` is the model itself (evaluation, kernel paths); under FSDP it is the sharded
    module, whose forward gathers parameters, so every rank must call it the same number of times.
    """

    def __init__(self, module: nn.Module, dist: Dist, forward: nn.Module) -> None:
        self.module, self.dist, self._forward = module, dist, forward

    def __call__(self, *args: Any) -> Any:
        return self._forward(*args)

    def micro_batch(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """Around forward and backward of a micro-batch: gradients are synchronised over ranks
        only on the ``last`` micro-batch of a step (grad accumulation)."""
        if isinstance(self._forward, DistributedDataParallel) and not last:
            return self._forward.no_sync()
        if self.dist.fsdp:
            self.module.set_requires_gradient_sync(last)  # type: ignore[operator]
        return contextlib.nullcontext()

    def clip_grad_norm(self, params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
        """Total gradient norm before clipping (the same on every rank: gradients are synced)."""
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def checkpoint_state(self, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
        """(model, optimizer) for ``save_checkpoint`` on rank 0: themselves, or under FSDP their
        full state gathered from the shards (every rank must call it; others get (None, None))."""
        if not self.dist.fsdp:
            return self.module, optimizer
        model_state = {k: _full(v, self.dist) for k, v in self.module.state_dict().items()}
        opt = optimizer.state_dict()
        opt_state = {i: {k: _full(v, self.dist) for k, v in s.items()} for i, s in opt["state"].items()}
        if not self.dist.is_main:
            return None, None
        return _StateOf(model_state), _StateOf({"state": opt_state, "param_groups": opt["param_groups"]})


class _StateOf:
    """A gathered state dict standing in for the module or optimizer it came from."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state


def _full(value: Any, dist: Dist) -> Any:
    """A sharded tensor gathered whole (on the CPU, rank 0 only); anything else as it is."""
    if not hasattr(value, "full_tensor"):
        return value
    full = value.full_tensor()
    return full.cpu() if dist.is_main else None


def parallelize(model: nn.Module, optimizer: torch.optim.Optimizer, dist: Dist,
                device: torch.device) -> ParallelModel:
    """The model ready for data-parallel training (``model`` must already be on ``device``).

    DDP: no search for unused parameters (a costly extra pass): every parameter gets a gradient
    every step, MoE experts included, since each MoE layer holds its experts in one (E, ...)
    tensor that takes part whole even when an expert gets no token of a shard. FSDP: each block
    of every module list is a shard unit, then the root; ``optimizer`` is pointed at the sharded
    parameters, its state sharded alike.
    """
    if not dist.active:
        return ParallelModel(model, dist, model)
    if dist.fsdp:
        _shard(model, optimizer)
        return ParallelModel(model, dist, model)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                  gradient_as_bucket_view=True)
    return ParallelModel(model, dist, ddp)


def _shard(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    # Imported here: FSDP2 and DTensor add seconds to every start of the CLI otherwise.
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import distribute_tensor

    before = list(model.parameters())
    shapes = [p.shape for p in before]
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    blocks = [b for m in lists for b in m if not isinstance(b, (nn.ModuleList, nn.ModuleDict))]
    # innermost first: FSDP2 wants a module's sub-units sharded before the module itself
    for block in reversed(blocks):
        fully_shard(block)
    fully_shard(model)
    after = list(model.parameters())
    new = {id(p): (q, s) for p, q, s in zip(before, after, shapes, strict=True)}
    state = {}
    for p, st in optimizer.state.items():
        q, shape = new[id(p)]
        state[q] = {k: distribute_tensor(v.to(q.device), q.device_mesh, q.placements)
                    if torch.is_tensor(v) and v.shape == shape and v.dim() > 0 else v for k, v in st.items()}
    for group in optimizer.param_groups:
        group["params"] = [new[id(p)][0] for p in group["params"]]
    optimizer.state.clear()
    optimizer.state.update(state)
