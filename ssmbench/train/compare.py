"""`train-compare`: train several models on one data stream and compare them.

Plan (validate everything the user gave, cheaply) -> prepare data and tokenizer -> train each
model in turn, writing metrics.csv and summary.json after every evaluation (and telling the
caller through ``results_changed``, so the CLI can re-render summary.md for a user watching)
-> steps-to-target against the reference. Rendering (summary.md, plots) is the caller's.
``--resume DIR`` rebuilds the same plan from DIR/manifest.json, keeps the models that finished
and continues an interrupted one from its last checkpoint.
"""

from __future__ import annotations

import gc
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ssmbench.bench.ceilings import measure_ceilings
from ssmbench.bench.environment import collect_environment
from ssmbench.data.dataset import EvalSet, TokenDataset
from ssmbench.data.sources import TextSource, load_source
from ssmbench.data.tokenizers import Tokenizer, TokenizerInfo, resolve_tokenizer
from ssmbench.device import is_oom
from ssmbench.errors import BadInput, ResultsError
from ssmbench.models.config import LMConfig, ModelConfig, ModelSet
from ssmbench.models.counts import describe_model_set
from ssmbench.models.presets import with_experts
from ssmbench.models.registry import build_model, get_model_set
from ssmbench.progress import NullProgress, Progress
from ssmbench.results import METRICS, SUMMARY_JSON, RunFolder, load_run
from ssmbench.train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from ssmbench.train.config import TrainConfig
from ssmbench.train.distributed import Dist, describe, launch, results_folder
from ssmbench.train.loop import FINISHED, ModelRun, TrainHooks, make_optimizer, sharded_batches, train_model
from ssmbench.train.metrics import peak_memory, reset_peak_memory, steps_to_target_table
from ssmbench.train.presets import PaperFigures, TrainPreset, preset_for_suite

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
    tokenizer: str | None = None
    seed: int = 0
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
    tokenizer's vocabulary is filled in), reference and target, data and tokenizer specs."""

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
    cpu_threads: int | None

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.models]

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset.name, "suite": self.preset.suite, "model_set": self.model_set,
            "models": self.names, "train": self.train.to_dict(), "data": self.data,
            "tokenizer": self.tokenizer, "seed": self.request.seed, "experts": self.request.experts,
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
        checkpoint_every=req.checkpoint_every,
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
    paper = preset.paper.for_experts(req.experts) if preset.paper is not None else None
    return ComparePlan(
        request=req, preset=preset, train=train, models=tuple((n, model_set.get(n)) for n in names),
        model_set=model_set.name, reference=reference, reference_note=note, target_loss=req.target_loss,
        data=req.data or preset.data, tokenizer=tokenizer, paper=paper,
        cpu_threads=req.threads or preset.cpu_threads,
    )  # fmt: skip


def _adapt(name: str, cfg: ModelConfig, tok: Tokenizer, seq_len: int) -> ModelConfig:
    """The config with the tokenizer's vocabulary and room for ``seq_len`` positions."""
    if isinstance(cfg, LMConfig):
        cfg = replace(cfg, vocab_size=tok.vocab_size)
    elif cfg.vocab_size != tok.vocab_size:
        raise BadInput(f"model {name!r} reads bytes (vocab {cfg.vocab_size}); use --tokenizer bytes")
    if seq_len > cfg.max_seq_len:
        cfg = replace(cfg, max_seq_len=seq_len)
    return cfg


@dataclass
class Prepared:
    """Everything the models share: data, tokenizer, token windows, the fixed eval set."""

    source: TextSource
    tokenizer: Tokenizer
    tokenizer_info: TokenizerInfo
    dataset: TokenDataset
    eval_set: EvalSet
    configs: tuple[tuple[str, ModelConfig], ...]
    described: dict[str, dict[str, Any]]

    @property
    def tokens_per_byte(self) -> float:
        return self.eval_set.n_tokens / self.eval_set.n_bytes

    def describe(self) -> dict[str, Any]:
        ev = self.eval_set
        data = self.source.describe()
        if self.source.entropy_bpb is not None:
            data["loss_floor_nats_per_token"] = self.source.entropy_bpb * math.log(2) / self.tokens_per_byte
        return {
            "data": data,
            "tokenizer": self.tokenizer_info.to_dict(),
            "eval": {"mode": ev.mode, "stride": ev.stride, "windows": int(ev.inputs.shape[0]),
                     "scored_tokens": ev.n_tokens, "scored_bytes": ev.n_bytes,
                     "note": "the same fixed windows of the validation split for every model and step"},
            "model_configs": {n: {"type": type(c).__name__, **asdict(c)} for n, c in self.configs},
        }


def prepare(plan: ComparePlan) -> Prepared:
    cfg = plan.train
    source = load_source(plan.data, seed=plan.request.seed, synthetic_bytes=cfg.data_bytes,
                         hf_bytes=cfg.data_bytes)
    tok, info = resolve_tokenizer(plan.tokenizer, source.train, plan.preset.bpe_vocab)
    dataset = TokenDataset(tok.encode(source.train), tok.encode(source.val), cfg.seq_len,
                           tok.token_byte_lengths(), seed=plan.request.seed)
    ev = dataset.eval_set(cfg.eval_windows, cfg.eval_mode, cfg.eval_stride)
    configs = tuple((n, _adapt(n, c, tok, cfg.seq_len)) for n, c in plan.models)
    rows = describe_model_set(ModelSet(plan.model_set, "", configs, cfg.seq_len), cfg.seq_len)
    return Prepared(source, tok, info, dataset, ev, configs, {r["name"]: r for r in rows})


class _Results:
    """The runs of all models and how they are written to the folder."""

    def __init__(self, folder: RunFolder, plan: ComparePlan, prep: Prepared,
                 changed: Callable[[Path], None]) -> None:
        self.folder, self.plan, self.prep, self.changed = folder, plan, prep, changed
        self.runs: dict[str, ModelRun] = {}

    def load_previous(self) -> None:
        """Runs recorded in the folder: finished ones kept whole, unfinished ones dropped (they
        continue from their checkpoint or start over)."""
        loaded = load_run(self.folder.path)
        rows = loaded.metrics.to_dict(orient="records") if not loaded.metrics.empty else []
        for entry in loaded.summary or []:
            if entry.get("status") not in FINISHED:
                continue
            name = entry["name"]
            own = [{k: r[k] for k in ("model", "step", "metric", "value", "wall_s", "tokens")}
                   for r in rows if r["model"] == name]
            self.runs[name] = ModelRun(
                name, step=int(entry["steps_done"]), rows=own, train_time_s=float(entry["train_time_s"] or 0),
                tokens=int(entry["tokens"] or 0), status=entry["status"], error=entry.get("error"),
                kernels=dict(entry.get("kernels") or {}), peak_mem_bytes=entry.get("peak_mem_bytes"),
                peak_mem_kind=entry.get("peak_mem_kind"),
            )  # fmt: skip

    def save(self) -> None:
        """metrics.csv and summary.json (atomic each), then ``changed``; cheap enough for every eval."""
        rows = []
        for name in self.plan.names:
            run = self.runs.get(name)
            if run is None:
                continue
            kernels = ",".join(f"{k}={v}" for k, v in sorted(run.kernels.items())) or "-"
            rows.extend({**r, "kernels": kernels} for r in run.rows)
        cols = ["model", "step", "metric", "value", "wall_s", "tokens", "kernels"]
        self.folder.write_metrics(pd.DataFrame(rows, columns=cols))
        self.folder.write_summary(self.summary())
        self.changed(self.folder.path)

    def _target(self) -> tuple[float | None, str]:
        metric = self.plan.train.steps_metric
        if self.plan.target_loss is not None:
            return self.plan.target_loss, f"--target-loss on {metric}"
        ref = self.runs.get(self.plan.reference)
        if ref is None or ref.status != "done":
            return None, f"reference {self.plan.reference!r} has not finished"
        values = [r["value"] for r in ref.rows if r["metric"] == metric]
        return (values[-1], f"final {metric} of {self.plan.reference}") if values else (None, "no values")

    def summary(self) -> list[dict[str, Any]]:
        """One object per model of the plan (finished, running or pending)."""
        metric = self.plan.train.steps_metric
        target, target_source = self._target()
        curves = {}
        for n, run in self.runs.items():
            picked = [r for r in run.rows if r["metric"] == metric]
            curves[n] = ([r["step"] for r in picked], [r["value"] for r in picked])
        table = steps_to_target_table(curves, self.plan.reference, target) if target is not None else {}
        paper = self.plan.paper
        out = []
        for name in self.plan.names:
            run = self.runs.get(name) or ModelRun(name)
            desc = self.prep.described[name]
            last = _last_values(run.rows)
            stt = table.get(name)
            flops = desc.get("flops_per_token")
            out.append({
                "name": name, "status": run.status, "error": run.error, "steps_done": run.step,
                "steps_planned": self.plan.train.steps,
                **{k: desc[k] for k in ("params_total", "params_active", "params_total_nonembed",
                                        "params_active_nonembed")},
                "flops_per_token": flops,
                "flops_per_byte": flops * self.prep.tokens_per_byte if flops is not None else None,
                "final_eval_loss": last.get("eval_loss"), "final_eval_bpb": last.get("eval_bpb"),
                "final_train_loss": last.get("train_loss"),
                "final_train_loss_ema": last.get("train_loss_ema"),
                "target_metric": metric, "target_value": target, "target_source": target_source,
                "reference": self.plan.reference,
                "steps_to_target": stt.steps if stt else None,
                "steps_to_target_pct": stt.pct if stt else None,
                "steps_to_target_text": (stt.pct_text if stt and run.status in FINISHED else None),
                "speedup": stt.speedup if stt else None,
                "tokens_per_s": _steady(run.rows, "tokens_per_s"),
                "tokens_per_s_per_device": _steady(run.rows, "tokens_per_s_per_device"),
                "step_time_ms": _steady(run.rows, "step_time_ms"),
                "train_time_s": run.train_time_s, "tokens": run.tokens,
                "peak_mem_bytes": run.peak_mem_bytes, "peak_mem_kind": run.peak_mem_kind,
                "kernels": run.kernels,
                "moe_max_load": last.get("moe_max_load"),
                "moe_dropped_fraction": last.get("moe_dropped_fraction"),
                "paper_final_loss": paper.final_loss.get(name) if paper else None,
                "paper_steps_pct": paper.steps_pct.get(name) if paper else None,
            })  # fmt: skip
        return out


def _last_values(rows: list[dict[str, Any]]) -> dict[str, float]:
    last: dict[str, float] = {}
    for r in rows:
        last[r["metric"]] = r["value"]
    return last


def _steady(rows: list[dict[str, Any]], metric: str) -> float | None:
    """Median over logged intervals, leaving out the first (warm-up) when there are others."""
    vals = [r["value"] for r in rows if r["metric"] == metric and math.isfinite(r["value"])]
    if len(vals) > 1:
        vals = vals[1:]
    return statistics.median(vals) if vals else None


@dataclass(frozen=True)
class CompareResult:
    path: Path
    summary: list[dict[str, Any]]


def run_compare(plan: ComparePlan, out: Path | None = None, *, device: str = "auto",
                progress: Progress | None = None, resume: bool = False,
                results_changed: Callable[[Path], None] | None = None, fsdp: bool = False) -> CompareResult:
    """Run (or with ``resume``, continue) the comparison into the folder ``out``.
    ``results_changed(folder)`` is called after each write of metrics.csv and summary.json.
    Under torchrun each model is trained data-parallel over the processes (DDP, or FSDP2 with
    ``fsdp``); rank 0 alone shows progress and writes the folder."""
    with launch(device, fsdp=fsdp) as (dist, dev):
        dist.local_batch(plan.train.batch_size, plan.train.grad_accum)  # BadInput before any work
        if not dist.is_main:
            progress, results_changed = NullProgress(), None
        threads = torch.get_num_threads()
        if dev.type == "cpu" and plan.cpu_threads:
            torch.set_num_threads(plan.cpu_threads)
        try:
            return _run(plan, out, dev, progress or NullProgress(), resume,
                        results_changed or (lambda _folder: None), dist)
        finally:
            torch.set_num_threads(threads)


def _run(plan: ComparePlan, out: Path | None, dev: torch.device, progress: Progress,
         resume: bool, results_changed: Callable[[Path], None], dist: Dist) -> CompareResult:
    prep = prepare(plan)
    layout = describe(dist, dev, same=prep.eval_set.inputs)  # every rank: devices, same data
    folder = results_folder(lambda: RunFolder.create(KIND, out), dist)
    results = _Results(folder, plan, prep, results_changed)
    if resume:
        results.load_previous()
        folder.update_manifest(resumed_on=str(dev), resumed_layout=layout)
    elif dist.is_main:
        folder.write_manifest(
            config=plan.to_dict(), seed=plan.request.seed,
            environment={**collect_environment(dev), **layout},
            ceilings=measure_ceilings(dev, quick=True).to_dict() if dev.type == "cuda" else None,
            extra={**prep.describe(), "paper": plan.paper.to_dict() if plan.paper else None,
                   "ceilings_note": None if dev.type == "cuda" else "not measured on CPU"},
        )  # fmt: skip
    results.save()
    with progress:
        if plan.reference_note:
            progress.note(plan.reference_note)
        for name, mcfg in prep.configs:
            prev = results.runs.get(name)
            if prev is not None and prev.status in FINISHED:
                progress.finish(name, f"{prev.status} (earlier run)")
                continue
            _train_one(name, mcfg, plan, prep, results, dev, progress, resume, dist)
            results.save()
    results.save()
    return CompareResult(folder.path, results.summary())


def _train_one(name: str, mcfg: ModelConfig, plan: ComparePlan, prep: Prepared, results: _Results,
               dev: torch.device, progress: Progress, resume: bool, dist: Dist) -> None:
    """Build (same seed for every model), restore a checkpoint when resuming, train, record."""
    cfg = plan.train
    ckpt = checkpoint_path(results.folder.path, name)
    run = ModelRun(name)
    results.runs[name] = run
    reset_peak_memory(dev)
    model = opt = None
    try:
        torch.manual_seed(plan.request.seed)  # the same init whatever ran before
        model = build_model(mcfg).to(dev)
        opt = make_optimizer(model, cfg)
        if resume and ckpt.is_file():
            run = results.runs[name] = load_checkpoint(ckpt, model, opt)
        progress.start(name, cfg.steps, run.step)
        hooks = TrainHooks(
            progress=lambda r, loss, tps: progress.update(name, r.step, {"loss": loss, "tok/s": tps}),
            evaluated=lambda r: results.save(),
            checkpoint=lambda r, m, o: save_checkpoint(ckpt, r, m, o),
        )  # fmt: skip
        batches = sharded_batches(prep.dataset, cfg.batch_size, dist)
        train_model(model, batches, prep.eval_set, cfg, dev, run, opt, hooks, dist)
    except KeyboardInterrupt:
        run.status = "interrupted"
        results.save()
        raise
    except (RuntimeError, MemoryError) as e:
        if not is_oom(e):
            raise
        run.status, run.error = "oom", (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    finally:
        run.peak_mem_bytes, run.peak_mem_kind = peak_memory(dev)
        del model, opt
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    if run.status in FINISHED and dist.is_main:
        ckpt.unlink(missing_ok=True)
    progress.finish(name, run.status)


def resume_compare(run_dir: Path, *, device: str = "auto", progress: Progress | None = None,
                   results_changed: Callable[[Path], None] | None = None,
                   fsdp: bool = False) -> CompareResult:
    """Continue the comparison in ``run_dir`` with the settings in its manifest."""
    loaded = load_run(run_dir)
    if loaded.kind != KIND:
        raise ResultsError(f"{run_dir} holds a {loaded.kind!r} run, not {KIND}")
    if not (Path(run_dir) / SUMMARY_JSON).is_file() or not (Path(run_dir) / METRICS).is_file():
        raise ResultsError(f"{run_dir} has no {SUMMARY_JSON}/{METRICS} to resume from")
    config = loaded.manifest.get("config", {})
    plan = plan_compare(CompareRequest.from_dict(config.get("request", {})))
    if plan.train.to_dict() != config.get("train"):
        raise ResultsError(f"the {plan.preset.name!r} preset changed since {run_dir} was started; "
                           "cannot resume it with this ssmbench")
    return run_compare(plan, run_dir, device=device, progress=progress, resume=True,
                       results_changed=results_changed, fsdp=fsdp)
