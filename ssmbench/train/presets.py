"""Training presets: which model set, on what data, for how long, how many seeds; the papers'
figures beside them.

Presets are data. ``smoke`` runs on a laptop CPU in minutes; ``small`` takes minutes per model
on one H100; ``paper-*`` mirror the MoE-Mamba paper's two setups (arXiv 2401.04081) and carry its
published numbers, shown beside the measured ones when a run's data and tokenizer are the paper's.
The synthetic presets train on the unbounded generated stream and the paper presets on enough
C4 for one pass, so no preset trains on a token twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ssmbench.errors import BadInput
from ssmbench.train.config import TrainConfig

SUITES = ("zoo", "bytes")


@dataclass(frozen=True)
class PaperFigures:
    """Published results of the setup a preset mirrors.

    final_loss: model -> loss at the end of training (metric says which loss); steps_pct:
    model -> share of the reference's steps needed to reach the reference's final loss;
    experts_ablation: n_experts -> (final loss, steps_pct or None) of moe-mamba; data,
    tokenizer: the paper's (the ``--data`` spec and the tokenizer a run must have used for its
    numbers to stand beside these).
    """

    source: str
    metric: str
    final_loss: dict[str, float]
    steps_pct: dict[str, float] = field(default_factory=dict)
    experts_ablation: dict[int, tuple[float, float | None]] = field(default_factory=dict)
    data: str = "hf:c4"
    tokenizer: str = "gpt2"

    def setup_note(self, data: str, tokenizer_used: str) -> str | None:
        """None when a run on ``data`` with the tokenizer ``tokenizer_used`` has the paper's setup;
        otherwise one line saying how it differs."""
        if data == self.data and tokenizer_used == self.tokenizer:
            return None
        return (f"this run used data {data!r} and tokenizer {tokenizer_used!r}; the paper's figures are "
                f"for {self.data!r} with {self.tokenizer!r}, so they are left out of the comparison")

    def for_experts(self, n_experts: int | None) -> PaperFigures:
        """The figures for a run with ``n_experts`` experts: the ablation's moe-mamba numbers
        where the paper has them; MoE figures dropped where it has none."""
        if n_experts is None or not self.experts_ablation:
            return self
        loss = dict(self.final_loss)
        pct = dict(self.steps_pct)
        loss.pop("moe", None)
        pct.pop("moe", None)
        loss.pop("moe-mamba", None)
        pct.pop("moe-mamba", None)
        if n_experts in self.experts_ablation:
            loss["moe-mamba"], p = self.experts_ablation[n_experts]
            if p is not None:
                pct["moe-mamba"] = p
        return replace(self, final_loss=loss, steps_pct=pct,
                       metric=f"{self.metric}; moe-mamba with {n_experts} experts from the ablation")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["experts_ablation"] = {str(k): list(v) for k, v in self.experts_ablation.items()}
        return d


@dataclass(frozen=True)
class TrainPreset:
    """model_set: a name from ssmbench.models.registry; suite: "zoo" (five-way, steps-to-loss)
    or "bytes" (byte-level models, BPB and FLOPs per byte); bpe_vocab: size of the BPE trained
    for ``--tokenizer bpe`` (without :N); seeds: training runs per model (seed s sets the init
    and the data order, the same s for every model); cpu_threads: PyTorch threads on CPU (None:
    PyTorch's default; the tiny smoke shapes run fastest on one thread, many times faster than
    on two when the cores are shared)."""

    name: str
    description: str
    model_set: str
    train: TrainConfig
    suite: str = "zoo"
    data: str = "synthetic"
    tokenizer: str = "bytes"
    bpe_vocab: int = 4096
    reference: str = "mamba"
    paper: PaperFigures | None = None
    seeds: int = 1
    cpu_threads: int | None = None


PAPER_V1 = PaperFigures(
    source="MoE-Mamba (arXiv 2401.04081) v1: loss after 100k steps on C4 (GPT-2 tokens); "
    "share of steps to reach Mamba's final loss",
    metric="final loss (nats/token)",
    final_loss={"transformer": 3.66, "mamba-mlp": 3.56, "moe": 3.54, "mamba": 3.51, "moe-mamba": 3.41},
    steps_pct={"mamba": 100.0, "moe-mamba": 46.0},
    experts_ablation={1: (3.56, None), 4: (3.55, None), 8: (3.51, 91.0), 16: (3.45, 56.0),
                      32: (3.41, 46.0)},
)
PAPER_V2_25M = PaperFigures(
    source="MoE-Mamba (arXiv 2401.04081) v2, ~25M active: EMA-smoothed training loss after 150k steps",
    metric="final log perplexity (EMA-smoothed training loss, alpha 0.001)",
    final_loss={"transformer": 3.43, "moe": 3.23, "mamba": 3.34, "moe-mamba": 3.19},
    steps_pct={"mamba": 100.0, "moe-mamba": 100.0 / 1.76},
)
PAPER_V2_100M = PaperFigures(
    source="MoE-Mamba (arXiv 2401.04081) v2, ~100M active (d 768): EMA-smoothed training loss",
    metric="final log perplexity (EMA-smoothed training loss, alpha 0.001)",
    final_loss={"moe": 2.88, "mamba": 2.99, "moe-mamba": 2.81},
    steps_pct={"mamba": 100.0, "moe-mamba": 100.0 / 2.35},
)

_V2_TRAIN = TrainConfig(
    steps=150_000, batch_size=64, seq_len=1024, lr=1e-3, weight_decay=0.1, warmup_frac=0.01,
    schedule="cosine", min_lr_frac=0.1, grad_clip=0.5, grad_accum=2, eval_interval=2500,
    eval_windows=256, log_interval=100, steps_metric="train_loss_ema", checkpoint_every=5000,
)

TRAIN_PRESETS: dict[str, TrainPreset] = {
    p.name: p
    for p in (
        TrainPreset(
            "smoke", "five-way zoo, tiny models and steps: CPU in minutes", "smoke",
            TrainConfig(steps=40, batch_size=8, seq_len=64, lr=3e-3, warmup_frac=0.05, schedule="cosine",
                        grad_clip=0.5, amp="none", eval_interval=10, eval_windows=16, log_interval=1,
                        ema_alpha=0.05),
            tokenizer="bpe:512", bpe_vocab=512, cpu_threads=1,
        ),
        TrainPreset(
            "small", "five-way zoo, small models: minutes per model on one H100", "small",
            TrainConfig(steps=2000, batch_size=32, seq_len=256, lr=2e-3, weight_decay=0.1,
                        warmup_frac=0.02, schedule="cosine", eval_interval=100, eval_windows=64,
                        log_interval=10, ema_alpha=0.01, checkpoint_every=500),
            tokenizer="bpe:2048", bpe_vocab=2048, seeds=3,
        ),
        TrainPreset(
            "paper-v1", "MoE-Mamba v1: d 512, C4, GPT-2 tokens, context 256, batch 256, 100k steps",
            "paper-v1",
            # v1 lists warm-up and clipping but no decay: constant after warm-up
            TrainConfig(steps=100_000, batch_size=256, seq_len=256, lr=1e-3, warmup_frac=0.01,
                        schedule="constant", grad_clip=0.5, grad_accum=4, eval_interval=2500,
                        eval_windows=256, log_interval=100, checkpoint_every=5000),
            data="hf:c4", tokenizer="gpt2", paper=PAPER_V1, seeds=3,
        ),
        TrainPreset("paper-v2-25m", "MoE-Mamba v2, ~25M active: context 1024, batch 64, 150k steps, cosine",
                    "paper-v2-25m", _V2_TRAIN, data="hf:c4", tokenizer="gpt2", paper=PAPER_V2_25M, seeds=3),
        TrainPreset("paper-v2-100m", "MoE-Mamba v2, ~100M active (d 768): as v2-25m", "paper-v2-100m",
                    _V2_TRAIN, data="hf:c4", tokenizer="gpt2", paper=PAPER_V2_100M, seeds=3),
        TrainPreset(
            "bytes-smoke", "byte-level suite (MambaByte, MegaByte, byte Transformer), tiny: CPU in minutes",
            "bytes-smoke",
            TrainConfig(steps=40, batch_size=8, seq_len=128, lr=3e-3, warmup_frac=0.05, schedule="cosine",
                        amp="none", eval_interval=10, eval_windows=8, log_interval=1, ema_alpha=0.05,
                        steps_metric="eval_bpb"),
            suite="bytes", reference="mambabyte", cpu_threads=1,
        ),
        TrainPreset(
            "bytes-small", "byte-level suite, small models: 1024-byte context, minutes per model on one H100",
            "bytes-small",
            TrainConfig(steps=2000, batch_size=32, seq_len=1024, lr=2e-3, weight_decay=0.1,
                        warmup_frac=0.02, schedule="cosine", eval_interval=100, eval_windows=32,
                        log_interval=10, ema_alpha=0.01, steps_metric="eval_bpb", checkpoint_every=500),
            suite="bytes", reference="mambabyte", seeds=3,
        ),
    )
}

SUITE_PRESETS = {"bytes": "bytes-smoke", "zoo": "smoke"}


def get_train_preset(name: str) -> TrainPreset:
    if name not in TRAIN_PRESETS:
        raise BadInput(f"unknown preset {name!r}; choose from {', '.join(TRAIN_PRESETS)}")
    return TRAIN_PRESETS[name]


def preset_for_suite(preset: str | None, suite: str | None) -> TrainPreset:
    """The preset to run: ``preset`` (checked against ``suite`` when both are given), else the
    suite's smoke preset (``--suite bytes`` alone means ``bytes-smoke``), else ``smoke``."""
    if suite is not None and suite not in SUITES:
        raise BadInput(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")
    if preset is None:
        return get_train_preset(SUITE_PRESETS[suite or "zoo"])
    p = get_train_preset(preset)
    if suite is not None and p.suite != suite:
        raise BadInput(f"preset {preset!r} belongs to suite {p.suite!r}, not {suite!r}")
    return p
