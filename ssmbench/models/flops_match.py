"""Sizing models to equal forward FLOPs per byte, the MambaByte paper's rule for comparing
byte-level models. In this package's convention (``ssmbench.models.size``), at context 8192
MambaByte-353M spends 0.719 GFLOP per byte and MegaByte-758M+262M 0.735 (+2.1%); the 320M byte
Transformer spends 0.735 at context 1024 but 1.47 at 8192 (its attention grows with the context).

Rule: keep every field of the target except one size knob, and choose the value of that knob
whose forward FLOPs per byte (``ssmbench.models.size.flops_per_token``; a token is a byte) is
closest to the reference's at the same context.
Knobs (``vary``):

- ``layers``: the number of repeats of the pattern's repeating unit for an LM (("attn", "ff")
  blocks, ("mamba",) layers ...); the number of local layers for MegaByte (the part that runs
  once per byte). FLOPs are linear in this count, so the best value is found exactly.
- ``global-layers``: MegaByte's global layers (once per patch).
- ``width``: d_model of an LM, d_local of MegaByte, in steps of lcm(64, 2 * heads) so heads
  divide it evenly; FLOPs grow monotonically with width, so the closest step is found by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from ssmbench.errors import BadInput
from ssmbench.models.config import LMConfig, ModelConfig, ModelSet
from ssmbench.models.size import flops_per_token

VARY = ("layers", "global-layers", "width")


@dataclass(frozen=True)
class FlopsMatch:
    """The resized config, its FLOPs per byte, the reference's, and what was changed."""

    config: ModelConfig
    flops_per_byte: int
    reference_flops_per_byte: int
    knob: str
    value: int

    @property
    def rel_diff(self) -> float:
        return self.flops_per_byte / self.reference_flops_per_byte - 1.0


def _pattern_unit(pattern: tuple[str, ...]) -> tuple[str, ...]:
    """The shortest unit whose repeats make ``pattern``."""
    n = len(pattern)
    for k in range(1, n + 1):
        if n % k == 0 and pattern[:k] * (n // k) == pattern:
            return pattern[:k]
    return pattern


def _knob(cfg: ModelConfig, vary: str) -> tuple[str, Callable[[int], ModelConfig], int]:
    """(field description, value -> resized config, step between allowed values)."""
    if vary not in VARY:
        raise BadInput(f"unknown --vary {vary!r}; choose from {', '.join(VARY)}")
    if isinstance(cfg, LMConfig):
        if vary == "layers":
            unit = _pattern_unit(cfg.pattern)
            return f"repeats of {unit}", lambda n: replace(cfg, pattern=unit * n), 1
        if vary == "width":
            step = math.lcm(64, 2 * cfg.n_heads)
            return "d_model", lambda d: replace(cfg, d_model=d), step
        raise BadInput("--vary global-layers applies to MegaByte models only")
    if vary == "layers":
        return "n_local_layers", lambda n: replace(cfg, n_local_layers=n), 1
    if vary == "global-layers":
        return "n_global_layers", lambda n: replace(cfg, n_global_layers=n), 1
    step = math.lcm(64, 2 * cfg.n_local_heads)
    return "d_local", lambda d: replace(cfg, d_local=d), step


def match_flops(
    reference: ModelConfig, target: ModelConfig, *, seq_len: int, vary: str = "layers"
) -> FlopsMatch:
    """Resize ``target`` along ``vary`` so its forward FLOPs per byte are closest to ``reference``'s."""
    if seq_len < 1:
        raise BadInput(f"seq_len must be positive, got {seq_len}")
    ref = flops_per_token(reference, seq_len)
    knob, make, step = _knob(target, vary)
    cost = lambda k: flops_per_token(make(k * step), seq_len)  # k >= 1
    if vary == "width":
        lo, hi = 1, 1
        while cost(hi) < ref and hi < 4096:
            lo, hi = hi, hi * 2
        while hi - lo > 1:  # cost(lo) < ref <= cost(hi), or hi is the cap
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if cost(mid) < ref else (lo, mid)
        candidates = [lo, hi]
    else:
        c1, c2 = cost(1), cost(2)
        slope = max(c2 - c1, 1)
        k = max(1, round((ref - (c1 - slope)) / slope))
        candidates = [max(1, k - 1), k, k + 1]
    best = min(candidates, key=lambda k: (abs(cost(k) - ref), k))
    return FlopsMatch(make(best * step), cost(best), ref, knob, best * step)


def match_model_set(
    model_set: ModelSet, reference: str, *, seq_len: int | None = None, vary: str = "layers"
) -> tuple[ModelSet, dict[str, FlopsMatch]]:
    """Every model of the set except ``reference`` resized to the reference's FLOPs per byte at
    ``seq_len`` (default: the set's own). Returns the new set and the match of each resized model."""
    if reference not in model_set.names():
        names = ", ".join(model_set.names())
        raise BadInput(f"--match-flops {reference!r} is not in {model_set.name}; choose from {names}")
    seq_len = seq_len or model_set.seq_len
    ref_cfg = model_set.get(reference)
    matches = {
        name: match_flops(ref_cfg, cfg, seq_len=seq_len, vary=vary)
        for name, cfg in model_set.models
        if name != reference
    }
    models = tuple((n, matches[n].config if n in matches else c) for n, c in model_set.models)
    description = f"{model_set.description} (FLOPs per byte matched to {reference} at {seq_len})"
    return replace(model_set, models=models, description=description), matches
