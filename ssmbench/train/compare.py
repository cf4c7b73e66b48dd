"""`train-compare`: train several models on one data stream, with several seeds, and compare them.

Plan (validate everything the user gave, cheaply) -> open the data once (tokenizer, corpus,
validation set) -> for each seed, train each model (seed s sets the init and the data order,
the same s for every model, so the batches of step s are the same for every model of a seed),
writing metrics.csv and summary.json after every evaluation (and telling the caller through
``results_changed``, so the CLI can re-render summary.md for a user watching) -> statistics
over seeds and steps-to-target against the reference (``ssmbench.train.summary``). Rendering
(summary.md, plots) is the caller's. ``--resume DIR`` rebuilds the same plan from
DIR/manifest.json, keeps the (model, seed) runs that finished and continues an interrupted one
from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import math
import os
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ssmbench.bench.ceilings import measure_ceilings
from ssmbench.bench.environment import collect_environment
from ssmbench.data import DataRequest, EvalSet, Tokenizer, TrainingData, default_workers, open_training_data
from ssmbench.device import cpu_threads, is_oom, resolve_device
from ssmbench.errors import BackendUnavailable, BadInput, ResultsError
from ssmbench.models.config import LMConfig, ModelConfig, ModelSet
from ssmbench.models.describe import describe_model_set
from ssmbench.models.official import OfficialMambaConfig, with_references
from ssmbench.models.registry import build_model, get_model_set
from ssmbench.models.zoo_sets import with_experts
from ssmbench.progress import NullProgress, Progress
from ssmbench.results import METRICS, SUMMARY_JSON, RunFolder, load_run
from ssmbench.train.batches import for_seed
from ssmbench.train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from ssmbench.train.config import TrainConfig
from ssmbench.train.distributed import SINGLE, Dist, describe, launch, results_folder, torchrun_world_size
from ssmbench.train.loop import (
    FINISHED,
    BatchSource,
    ModelRun,
    TrainHooks,
    adamw_kind,
    make_optimizer,
    sharded_batches,
    train_model,
)
from ssmbench.train.metrics import peak_memory, reset_peak_memory
from ssmbench.train.presets import PaperFigures, TrainPreset, preset_for_suite
from ssmbench.train.side_by_side import RunKey, run_side_by_side
from ssmbench.train.summary import SummarySetup, build_summary
from ssmbench.train.workers import WorkerSpec

KIND = "train-compare"


@dataclass(frozen=True)
class CompareRequest:
    """What the user asked for; None means "the preset's value"."""

    preset: str | None = None
    suite: str | None = None
    models: tuple[str, ...] | None = None
    steps: int | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    lr: float | None = None
    eval_interval: int | None = None
    eval_mode: str | None = None
    eval_stride: int | None = None
    checkpoint_every: int | None = None
    data: str | None = None
    data_bytes: int | None = None
    tokenizer: str | None = None
    seed: int = 0
    seeds: int | None = None
    experts: int | None = None
    reference: str | None = None
    target_loss: float | None = None
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["models"] = list(self.models) if self.models is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompareRequest:
        d = dict(d)
        if d.get("models") is not None:
            d["models"] = tuple(d["models"])
        return cls(**d)


@dataclass(frozen=True)
class ComparePlan:
    """A validated comparison: preset, training settings, the models (configs before the
    tokenizer's vocabulary is filled in), reference and target, data and tokenizer specs, and
    the seeds (base seed + 0..K-1) every model is trained with."""

    request: CompareRequest
    preset: TrainPreset
    train: TrainConfig
    models: tuple[tuple[str, ModelConfig], ...]
    model_set: str
    reference: str
    reference_note: str | None
    target_loss: float | None
    data: str
    tokenizer: str
    paper: PaperFigures | None
    seeds: tuple[int, ...]
    cpu_threads: int | None

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.models]

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset.name, "suite": self.preset.suite, "model_set": self.model_set,
            "models": self.names, "train": self.train.to_dict(), "data": self.data,
            "tokenizer": self.tokenizer, "seed": self.request.seed, "seeds": list(self.seeds),
            "experts": self.request.experts,
            "reference": self.reference, "reference_note": self.reference_note,
            "target_loss": self.target_loss, "steps_metric": self.train.steps_metric,
            "eval_mode": self.train.eval_mode, "eval_stride": self.train.eval_stride,
            "cpu_threads": self.cpu_threads, "request": self.request.to_dict(),
        }  # fmt: skip


def plan_compare(req: CompareRequest) -> ComparePlan:
    """Check the request against the presets and models; BadInput (one line) on anything wrong."""
    preset = preset_for_suite(req.preset, req.suite)
    train = preset.train.with_overrides(
        steps=req.steps, batch_size=req.batch_size, seq_len=req.seq_len, lr=req.lr,
        eval_interval=req.eval_interval, eval_mode=req.eval_mode, eval_stride=req.eval_stride,
        checkpoint_every=req.checkpoint_every, data_bytes=req.data_bytes,
    )  # fmt: skip
    if req.batch_size is not None and train.batch_size % train.grad_accum:
        train = replace(train, grad_accum=1)
    if train.eval_mode == "nonoverlap" and req.eval_stride is not None:
        raise BadInput("--eval-stride needs --eval-mode sliding")
    model_set: ModelSet = get_model_set(preset.model_set)
    if req.experts is not None:
        if req.experts < 1:
            raise BadInput(f"--experts must be at least 1, got {req.experts}")
        if not any(isinstance(c, LMConfig) and "moe" in c.pattern for _, c in model_set.models):
            raise BadInput(f"--experts: preset {preset.name!r} has no MoE models")
        model_set = with_experts(model_set, req.experts)
    names = list(req.models) if req.models else model_set.names()
    model_set = with_references(model_set, names)  # NAME@mamba_ssm: mamba_ssm's model of NAME's size
    unknown = [n for n in names if n not in model_set.names()]
    if unknown:
        raise BadInput(f"unknown model {unknown[0]!r} in preset {preset.name!r}; "
                       f"choose from {', '.join(model_set.names())}")
    if len(set(names)) != len(names):
        raise BadInput("--models lists a model twice")
    reference, note = req.reference or preset.reference, None
    if reference not in names:
        if req.reference is not None:
            raise BadInput(f"reference model {reference!r} is not among those run ({', '.join(names)})")
        reference, note = names[0], f"default reference {preset.reference!r} not run; using {names[0]!r}"
    tokenizer = req.tokenizer or preset.tokenizer
    if preset.suite == "bytes" and tokenizer != "bytes":
        raise BadInput("the bytes suite is token-free: use --tokenizer bytes (the default)")
    if req.target_loss is not None and not (math.isfinite(req.target_loss) and req.target_loss > 0):
        raise BadInput(f"--target-loss must be a positive number, got {req.target_loss}")
    if req.threads is not None and req.threads <= 0:
        raise BadInput(f"--threads must be positive, got {req.threads}")
    n_seeds = req.seeds if req.seeds is not None else preset.seeds
    if n_seeds < 1:
        raise BadInput(f"--seeds must be at least 1, got {n_seeds}")
    paper = preset.paper.for_experts(req.experts) if preset.paper is not None else None
    return ComparePlan(
        request=req, preset=preset, train=train, models=tuple((n, model_set.get(n)) for n in names),
        model_set=model_set.name, reference=reference, reference_note=note, target_loss=req.target_loss,
        data=req.data or preset.data, tokenizer=tokenizer, paper=paper,
        seeds=tuple(req.seed + k for k in range(n_seeds)), cpu_threads=req.threads or preset.cpu_threads,
    )  # fmt: skip


def _adapt(name: str, cfg: ModelConfig, tok: Tokenizer, seq_len: int) -> ModelConfig:
    """The config with the tokenizer's vocabulary and room for ``seq_len`` positions."""
    if isinstance(cfg, (LMConfig, OfficialMambaConfig)):
        cfg = replace(cfg, vocab_size=tok.vocab_size)
    elif cfg.vocab_size != tok.vocab_size:
        raise BadInput(f"model {name!r} reads bytes (vocab {cfg.vocab_size}); use --tokenizer bytes")
    if seq_len > cfg.max_seq_len:
        cfg = replace(cfg, max_seq_len=seq_len)
    return cfg


@dataclass
class Prepared:
    """Everything the models and seeds share: the data (tokenizer, training corpus or stream,
    validation tokens), the fixed evaluation set, the models' configs and parameter counts, and
    the paper's figures when the run's data and tokenizer are the paper's."""

    data: TrainingData
    eval_set: EvalSet
    configs: tuple[tuple[str, ModelConfig], ...]
    described: dict[str, dict[str, Any]]
    paper_note: str | None

    @property
    def tokens_per_byte(self) -> float:
        return self.eval_set.n_tokens / self.eval_set.n_bytes

    def describe(self) -> dict[str, Any]:
        ev = self.eval_set
        return {
            "data": self.data.describe(),
            "tokenizer": self.data.tokenizer_info.to_dict(),
            "eval": {"mode": ev.mode, "stride": ev.stride, "windows": int(ev.inputs.shape[0]),
                     "scored_tokens": ev.n_tokens, "scored_bytes": ev.n_bytes,
                     "note": "the same fixed windows of the validation split for every model, seed and step"},
            "model_configs": {n: {"type": type(c).__name__, **asdict(c)} for n, c in self.configs},
        }


def prepare(plan: ComparePlan) -> Prepared:
    """Open the data (sized for one pass of the planned tokens where the source is streamed)."""
    cfg = plan.train
    data = open_training_data(DataRequest(
        spec=plan.data, tokenizer=plan.tokenizer, seq_len=cfg.seq_len, seed=plan.seeds[0],
        data_bytes=cfg.data_bytes, tokens_needed=cfg.steps * cfg.batch_size * cfg.seq_len,
        bpe_vocab=plan.preset.bpe_vocab,
    ))  # fmt: skip
    ev = data.eval_set(cfg.eval_windows, cfg.eval_mode, cfg.eval_stride)
    configs = tuple((n, _adapt(n, c, data.tokenizer, cfg.seq_len)) for n, c in plan.models)
    rows = describe_model_set(ModelSet(plan.model_set, "", configs, cfg.seq_len), cfg.seq_len)
    note = plan.paper.setup_note(plan.data, data.tokenizer_info.used) if plan.paper is not None else None
    return Prepared(data, ev, configs, {r["name"]: r for r in rows}, note)




def progress_key(plan: ComparePlan, name: str, seed: int) -> str:
    """The progress bar of one run: the model's name, with the seed when there are several."""
    return name if len(plan.seeds) == 1 else f"{name} seed {seed}"


class _Results:
    """The runs of all (model, seed) pairs and how they are written to the folder."""

    def __init__(self, folder: RunFolder, plan: ComparePlan, prep: Prepared,
                 changed: Callable[[Path], None]) -> None:
        self.folder, self.plan, self.prep, self.changed = folder, plan, prep, changed
        self.runs: dict[RunKey, ModelRun] = {}
        # the comparison's wall time: earlier parts' (when resuming) plus this one's so far
        self.wall_before, self.t0 = 0.0, time.perf_counter()
        cfg = plan.train
        self.setup = SummarySetup(
            names=tuple(plan.names), seeds=plan.seeds, reference=plan.reference, steps_planned=cfg.steps,
            steps_metric=cfg.steps_metric, ema_alpha=cfg.ema_alpha, target_loss=plan.target_loss,
            described=prep.described, tokens_per_byte=prep.tokens_per_byte,
            tokens_per_pass=prep.data.tokens_available,
            paper=plan.paper if prep.paper_note is None else None,
        )  # fmt: skip

    def load_previous(self) -> None:
        """Runs recorded in the folder: finished ones kept whole, unfinished ones dropped (they
        continue from their checkpoint or start over)."""
        loaded = load_run(self.folder.path)
        rows = loaded.metrics.to_dict(orient="records") if not loaded.metrics.empty else []
        for entry in loaded.summary or []:
            if "runs" not in entry:
                raise ResultsError(f"{self.folder.path} was written by an older ssmbench (no runs per seed); "
                                   "start a new comparison")
            self.wall_before = float(entry.get("comparison_wall_time_s") or 0.0)
            name = entry["name"]
            for r in entry["runs"]:
                if r.get("status") not in FINISHED:
                    continue
                seed = int(r["seed"])
                own = [{k: row[k] for k in ("model", "step", "metric", "value", "wall_s", "tokens")}
                       for row in rows if row["model"] == name and int(row["seed"]) == seed]
                self.runs[(name, seed)] = ModelRun(
                    name, step=int(r["steps_done"]), rows=own, train_time_s=float(r["train_time_s"] or 0),
                    tokens=int(r["tokens"] or 0), status=r["status"], error=r.get("error"),
                    kernels=dict(r.get("kernels") or {}), peak_mem_bytes=r.get("peak_mem_bytes"),
                    peak_mem_kind=r.get("peak_mem_kind"), device=r.get("device"),
                    wall_time_s=float(r.get("wall_time_s") or 0.0),
                )  # fmt: skip

    def save(self) -> list[dict[str, Any]]:
        """metrics.csv and summary.json (atomic each), then ``changed``; cheap enough for every eval.
        -> the summary written."""
        rows = []
        for seed in self.plan.seeds:
            for name in self.plan.names:
                run = self.runs.get((name, seed))
                if run is None:
                    continue
                kernels = ",".join(f"{k}={v}" for k, v in sorted(run.kernels.items())) or "-"
                rows.extend({**r, "seed": seed, "kernels": kernels} for r in run.rows)
        cols = ["model", "seed", "step", "metric", "value", "wall_s", "tokens", "kernels"]
        self.folder.write_metrics(pd.DataFrame(rows, columns=cols))
        summary = self.summary()
        self.folder.write_summary(summary)
        self.changed(self.folder.path)
        return summary

    def summary(self) -> list[dict[str, Any]]:
        """One object per model of the plan (see ``ssmbench.train.summary``)."""
        return build_summary(self.runs, self.setup, self.wall_before + time.perf_counter() - self.t0)


@dataclass(frozen=True)
class CompareResult:
    path: Path
    summary: list[dict[str, Any]]


def run_compare(plan: ComparePlan, out: Path | None = None, *, device: str = "auto",
                devices: Sequence[str] | None = None, progress: Progress | None = None, resume: bool = False,
                results_changed: Callable[[Path], None] | None = None, fsdp: bool = False) -> CompareResult:
    """Run (or with ``resume``, continue) the comparison into the folder ``out``.
    ``results_changed(folder)`` is called after each write of metrics.csv and summary.json.
    Under torchrun each model is trained data-parallel over the processes (DDP, or FSDP2 with
    ``fsdp``); rank 0 alone shows progress and writes the folder. With ``devices`` the runs go
    side by side, one worker process per device (``ssmbench.train.side_by_side``)."""
    if devices is not None:
        listed = check_devices(devices, device=device, fsdp=fsdp)
        return _run(plan, out, resolve_device(listed[0]), progress or NullProgress(), resume,
                    results_changed or (lambda _folder: None), SINGLE, listed)
    with launch(device, fsdp=fsdp) as (dist, dev):
        dist.local_batch(plan.train.batch_size, plan.train.grad_accum)  # BadInput before any work
        if not dist.is_main:
            progress, results_changed = NullProgress(), None
        with cpu_threads(dev, plan.cpu_threads):
            return _run(plan, out, dev, progress or NullProgress(), resume,
                        results_changed or (lambda _folder: None), dist)


def check_devices(devices: Sequence[str], *, device: str = "auto", fsdp: bool = False) -> tuple[str, ...]:
    """The --devices list, each device checked and named in full ("cuda" -> "cuda:0"); BadInput
    when it is empty or combined with what it cannot go with."""
    if torchrun_world_size() > 1:
        raise BadInput("--devices runs whole models side by side in processes of its own; under torchrun "
                       "each model is spread over the torchrun processes: use one or the other")
    if fsdp:
        raise BadInput("--fsdp shards one model over torchrun's processes; it does not go with --devices")
    if device not in ("auto", "", None):
        raise BadInput(f"--device {device} and --devices: give one (--devices lists every device to use)")
    names = [d.strip() for d in devices if d.strip()]
    if not names:
        raise BadInput("--devices is empty; list devices such as cuda:0,cuda:1 (or cpu,cpu)")
    out = []
    for name in names:
        dev = resolve_device(name)
        out.append(f"cuda:{dev.index or 0}" if dev.type == "cuda" else "cpu")
    return tuple(out)


def _run(plan: ComparePlan, out: Path | None, dev: torch.device, progress: Progress, resume: bool,
         results_changed: Callable[[Path], None], dist: Dist, devices: tuple[str, ...] = ()) -> CompareResult:
    prep = prepare(plan)
    if devices:
        layout = {"world_size": 1, "backend": None, "parallel": "runs", "devices": list(devices)}
    else:
        layout = describe(dist, dev, same=prep.eval_set.inputs)  # every rank: devices, same data
    folder = results_folder(lambda: RunFolder.create(KIND, out), dist)
    with folder:  # the lock goes with the run, even when an interrupt keeps this frame alive
        results = _Results(folder, plan, prep, results_changed)
        if resume:
            results.load_previous()
            folder.update_manifest(resumed_on=", ".join(devices) or str(dev), resumed_layout=layout)
        elif dist.is_main:
            paper = {**plan.paper.to_dict(), "setup_note": prep.paper_note} if plan.paper else None
            folder.write_manifest(
                config=plan.to_dict(), seed=plan.request.seed,
                environment={**collect_environment(dev), **layout},
                ceilings=measure_ceilings(dev, quick=True).to_dict() if dev.type == "cuda" else None,
                extra={**prep.describe(), "paper": paper, "optimizer": adamw_kind(dev),
                       "ceilings_note": None if dev.type == "cuda" else "not measured on CPU"},
            )  # fmt: skip
        results.save()
        with progress:
            if plan.reference_note:
                progress.note(plan.reference_note)
            if prep.paper_note:
                progress.note(prep.paper_note)
            # seed by seed: after each seed, every model has a finished run to compare
            todo: list[RunKey] = []
            for seed in plan.seeds:
                for name in plan.names:
                    prev = results.runs.get((name, seed))
                    if prev is not None and prev.status in FINISHED:
                        progress.finish(progress_key(plan, name, seed), f"{prev.status} (earlier run)")
                    else:
                        todo.append((name, seed))
            if devices:
                cpus = devices.count("cpu")
                threads = plan.cpu_threads or (max(1, (os.cpu_count() or 1) // cpus) if cpus else None)
                spec = WorkerSpec(_worker_setup, (plan, folder.path, resume, data_digest(prep)), _worker_job,
                                  threads)
                run_side_by_side(todo, devices, spec, results, progress, lambda key: progress_key(plan, *key))
            else:
                for key in todo:
                    _train_one(key, plan, prep, results, dev, progress, resume, dist)
                    results.save()
        return CompareResult(folder.path, results.save())


@dataclass(frozen=True)
class RunReport:
    """What a run tells its owner as it goes: started(run) once the model is built (and restored
    from its checkpoint), about to train from run.step; progress(run, loss, tokens_per_s) after
    each logged interval; evaluated(run) after each evaluation; stop(), asked before every step,
    True to end the run as a Ctrl-C would."""

    started: Callable[[ModelRun], None]
    progress: Callable[[ModelRun, float, float], None]
    evaluated: Callable[[ModelRun], None]
    stop: Callable[[], bool] = lambda: False


def train_run(key: RunKey, plan: ComparePlan, prep: Prepared, folder: Path, dev: torch.device, resume: bool,
              runs: dict[RunKey, ModelRun], report: RunReport, dist: Dist = SINGLE) -> ModelRun:
    """One (model, seed) run in this process: build the model (init from the seed, whatever ran
    before), restore its checkpoint in ``folder`` when resuming, train on the seed's batches (this
    rank's rows of them under torchrun), checkpoint, measure wall time and peak memory.
    ``runs[key]`` is the run from the start (its checkpoint's once restored). Out of memory: status
    "oom", returned; KeyboardInterrupt (or report.stop()): status "interrupted", raised again."""
    name, seed = key
    cfg = plan.train
    data = for_seed(prep.data, seed)
    ckpt = checkpoint_path(folder, name, seed)
    where = str(dev) if not dist.active else f"{dev.type} x{dist.world_size} ({dist.parallel})"
    t0 = time.perf_counter()
    run = runs[key] = ModelRun(name, device=where)
    earlier = 0.0  # wall time before the checkpoint this run continues from
    baseline = reset_peak_memory(dev)
    model = opt = None
    # on the GPU, worker processes make the next batches while it trains (a CPU run uses the cores)
    workers = default_workers(data.train) if dev.type == "cuda" else 0
    batches = _stoppable(sharded_batches(data.train, cfg.batch_size, dist, workers=workers,
                                         pin_memory=workers > 0), report.stop)

    def checkpoint(r: ModelRun, m: Any, o: Any) -> None:
        r.wall_time_s = earlier + time.perf_counter() - t0
        save_checkpoint(ckpt, r, m, o)

    try:
        torch.manual_seed(seed)
        model = build_model(dict(prep.configs)[name]).to(dev)
        opt = make_optimizer(model, cfg)
        if resume and ckpt.is_file():
            run = runs[key] = load_checkpoint(ckpt, model, opt)
            run.device, earlier = where, run.wall_time_s
        report.started(run)
        hooks = TrainHooks(progress=report.progress, evaluated=report.evaluated, checkpoint=checkpoint)
        train_model(model, batches, prep.eval_set, cfg, dev, run, opt, hooks, dist)
    except BackendUnavailable as e:  # the mamba_ssm reference without mamba_ssm or CUDA: a row, not a crash
        run.status, run.error = "unavailable", str(e)
    except KeyboardInterrupt:
        run.status = "interrupted"
        raise
    except (RuntimeError, MemoryError) as e:
        if not is_oom(e):
            raise
        run.status, run.error = "oom", (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    finally:
        run.wall_time_s = earlier + time.perf_counter() - t0
        run.peak_mem_bytes, run.peak_mem_kind = peak_memory(dev, baseline)
        del model, opt
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return run


def _stoppable(batches: BatchSource, stop: Callable[[], bool]) -> BatchSource:
    """``batches`` ending in KeyboardInterrupt before the first step at which ``stop()`` is True."""

    def steps(first: int, last: int) -> Generator[tuple[int, torch.Tensor], None, None]:
        with contextlib.closing(batches(first, last)) as inner:
            for item in inner:
                if stop():
                    raise KeyboardInterrupt
                yield item

    return steps


def _train_one(key: RunKey, plan: ComparePlan, prep: Prepared, results: _Results, dev: torch.device,
               progress: Progress, resume: bool, dist: Dist) -> None:
    """One run in this process, its rows written into the folder as it goes."""
    bar = progress_key(plan, *key)
    report = RunReport(
        started=lambda r: progress.start(bar, plan.train.steps, r.step),
        progress=lambda r, loss, tps: progress.update(bar, r.step, {"loss": loss, "tok/s": tps}),
        evaluated=lambda r: results.save(),
    )  # fmt: skip
    try:
        run = train_run(key, plan, prep, results.folder.path, dev, resume, results.runs, report, dist)
    except KeyboardInterrupt:
        results.save()
        raise
    if run.status in FINISHED and dist.is_main:
        checkpoint_path(results.folder.path, *key).unlink(missing_ok=True)
    progress.finish(bar, run.status)


def data_digest(prep: Prepared) -> str:
    """A digest of the evaluation windows: processes that prepared the same data agree on it."""
    return hashlib.sha256(prep.eval_set.inputs.numpy().tobytes()).hexdigest()


@dataclass(frozen=True)
class _InWorker:
    """What a --devices worker keeps between its runs."""

    plan: ComparePlan
    prep: Prepared
    folder: Path
    resume: bool


def _worker_setup(plan: ComparePlan, folder: Path, resume: bool, digest: str) -> _InWorker:
    """In a --devices worker, once: the comparison's data, opened again (checked to be the parent's)."""
    prep = prepare(plan)
    if data_digest(prep) != digest:
        raise RuntimeError("this process prepared other evaluation windows than the parent did")
    return _InWorker(plan, prep, folder, resume)


def _worker_job(ctx: _InWorker, dev: torch.device, key: RunKey, send: Callable[[Any], None],
                stop: Callable[[], bool]) -> None:
    """One run in a --devices worker. Sent to the parent: ("started" | "evaluated" | "final", the
    run as a dict) and ("progress", step, loss, tokens_per_s); "final" also when the run fails."""
    runs: dict[RunKey, ModelRun] = {}
    report = RunReport(
        started=lambda r: send(("started", r.to_dict())),
        progress=lambda r, loss, tps: send(("progress", r.step, loss, tps)),
        evaluated=lambda r: send(("evaluated", r.to_dict())),
        stop=stop,
    )  # fmt: skip
    try:
        train_run(key, ctx.plan, ctx.prep, ctx.folder, dev, ctx.resume, runs, report)
    finally:
        if key in runs:
            send(("final", runs[key].to_dict()))


def resume_compare(run_dir: Path, *, device: str = "auto", devices: Sequence[str] | None = None,
                   progress: Progress | None = None, results_changed: Callable[[Path], None] | None = None,
                   fsdp: bool = False) -> CompareResult:
    """Continue the comparison in ``run_dir`` with the settings in its manifest."""
    loaded = load_run(run_dir)
    if loaded.kind != KIND:
        raise ResultsError(f"{run_dir} holds a {loaded.kind!r} run, not {KIND}")
    if not (Path(run_dir) / SUMMARY_JSON).is_file() or not (Path(run_dir) / METRICS).is_file():
        raise ResultsError(f"{run_dir} has no {SUMMARY_JSON}/{METRICS} to resume from")
    config = loaded.manifest.get("config", {})
    plan = plan_compare(CompareRequest.from_dict(config.get("request", {})))
    if plan.train.to_dict() != config.get("train") or list(plan.seeds) != config.get("seeds"):
        raise ResultsError(f"the {plan.preset.name!r} preset changed since {run_dir} was started; "
                           "cannot resume it with this ssmbench")
    return run_compare(plan, run_dir, device=device, devices=devices, progress=progress, resume=True,
                       results_changed=results_changed, fsdp=fsdp)
