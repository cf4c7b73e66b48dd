"""``--verify``: cached decoding (prefill + one step per byte) must give the logits of the full
forward pass, far past the prompt, by a margin that a lost or corrupted state cannot hide under.

The check (teacher forcing, TF32 off):

- error: the worst position's ||cached - forward|| / ||forward|| (norms over batch and vocab),
  over every position of a sequence of 96 bytes: the 11 of the prompt (prefill, no multiple of
  MegaByte's patch sizes) and the 85 decoded after it, teacher-forced;
- tolerance: ``VERIFY_ULPS`` units of the dtype's epsilon (float32: 1.2e-4), what rounding
  reaches through a few dozen layers (the parallel prefill and the recurrent steps sum in
  different orders); a decoder that drops a state, a conv window, a KV entry or a patch changes
  the logits by the state's share of them, thousands of times more;
- sensitivity: how much the forward logits of the second half move when only the prompt's bytes
  change (relative, the same norm, the least over those positions). It must be at least
  ``SENSITIVITY_MARGIN`` tolerances: the check has to show it would notice a decoder that forgets
  its state. A random-init model barely uses its context (small output projections, Mamba states
  that take in little and forget fast: a lost SSM state moves its logits by 5e-5), so the check
  runs on the model re-initialised by ``amplify_memory``: unit-gain weights, so every sub-layer
  writes as much into the residual stream as the embedding does, and Mamba states that remember
  for hundreds of steps.

On CUDA the captured-graph path is checked when graphs are asked for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ssmbench.generate.decode import Decoder
from ssmbench.generate.sampling import Sampling
from ssmbench.layers.mamba import Mamba

# tolerance = VERIFY_ULPS * eps(dtype); float32: 1024 * 1.19e-7 = 1.2e-4
VERIFY_ULPS = 1024
# the prompt must move the second half's logits by at least this many tolerances
SENSITIVITY_MARGIN = 100
VERIFY_SEQ_LEN = 96
VERIFY_PREFILL_LEN = 11


def verify_tolerance(dtype: torch.dtype) -> float:
    """Largest relative error a correct decoder may show in ``dtype``: VERIFY_ULPS epsilons."""
    return VERIFY_ULPS * torch.finfo(dtype).eps


@dataclass(frozen=True)
class VerifyResult:
    """error: worst position's relative error of the cached logits; sensitivity: relative change
    of the second half's forward logits when only the prompt changes; error_at: that position."""

    model: str
    path: str
    dtype: str
    seq_len: int
    prefill_len: int
    error: float
    error_at: int
    sensitivity: float
    tolerance: float
    min_sensitivity: float

    @property
    def passed(self) -> bool:
        # False for NaN too
        return self.error <= self.tolerance and self.sensitivity >= self.min_sensitivity

    @property
    def reason(self) -> str:
        if not self.error <= self.tolerance:
            return (f"cached logits differ by {self.error:.3g} at position {self.error_at} "
                    f"(> {self.tolerance:.2g})")
        if not self.sensitivity >= self.min_sensitivity:
            return (f"insensitive check: the prompt moves later logits by {self.sensitivity:.3g} "
                    f"(< {self.min_sensitivity:.2g})")
        return ""

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "passed": self.passed, "reason": self.reason}


def _uniform(shape: tuple[int, ...], lo: float, hi: float, gen: torch.Generator, like: Tensor) -> Tensor:
    return (lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64, device="cpu")).to(like)


@torch.no_grad()
def _slow_decay(layer: Mamba, gen: torch.Generator) -> None:
    """SSM memory of 25 to 1000 steps with an input gain near 0.1: dt log-uniform in [0.05, 0.2]
    (the init's is [1e-3, 0.1], where the slowly decaying channels take in almost nothing) and
    A in [-0.2, -0.02] instead of -[1..N]."""
    A = _uniform(tuple(layer.A_log.shape), 0.02, 0.2, gen, layer.A_log)
    layer.A_log.copy_(A.log())
    bias = layer.dt_proj.bias
    dt = _uniform(tuple(bias.shape), math.log(0.05), math.log(0.2), gen, bias).exp()
    bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus


@torch.no_grad()
def amplify_memory(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise ``model`` in place for the check: every matrix and embedding N(0, 1/fan_in)
    (fan_in: the last dimension), other learned vectors (MegaByte's pads) N(0, 1), Mamba layers
    with slowly decaying states (``_slow_decay``). Norms, biases and the other parameters marked
    ``_no_reinit`` (Mamba's D, dt_proj's weight) keep theirs."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
            continue
        if isinstance(module, Mamba):
            _slow_decay(module, gen)
        for name, p in module.named_parameters(recurse=False):
            if getattr(p, "_no_reinit", False) or name == "bias":
                continue
            std = p.shape[-1] ** -0.5 if p.dim() >= 2 else 1.0
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32, device="cpu").mul_(std).to(p))
    return model


def _relative(diff: Tensor, ref: Tensor) -> Tensor:
    """Per position: ||diff[:, t]|| / ||ref[:, t]|| over batch and vocab -> (L,)."""
    num = diff.double().pow(2).sum(dim=(0, 2)).sqrt()
    den = ref.double().pow(2).sum(dim=(0, 2)).sqrt().clamp_min(1e-300)
    return num / den


@torch.no_grad()
def verify_cached_decoding(
    name: str,
    model: nn.Module,
    *,
    seq_len: int = VERIFY_SEQ_LEN,
    prefill_len: int = VERIFY_PREFILL_LEN,
    batch_size: int = 2,
    cuda_graph: bool = False,
    seed: int = 0,
    tolerance: float | None = None,
) -> VerifyResult:
    """Compare forward(idx).logits with prefill(idx[:, :prefill_len]) then one forced step per
    byte, and measure how much the forward logits of the second half depend on the prompt.

    ``model`` is used as given (eval mode, its own dtype); ``amplify_memory`` it first for a
    check that a forgotten state cannot pass. tolerance: default ``verify_tolerance(dtype)``; the
    sensitivity must reach ``SENSITIVITY_MARGIN`` times it."""
    if not 1 <= prefill_len < seq_len:
        raise ValueError(f"need 1 <= prefill_len < seq_len, got {prefill_len}, {seq_len}")
    w = next(model.parameters())
    device, dtype = w.device, w.dtype
    gen = torch.Generator(device="cpu").manual_seed(seed)
    V = model.cfg.vocab_size
    idx = torch.randint(0, V, (batch_size, seq_len), generator=gen, device="cpu").to(device)
    other = idx.clone()
    other[:, :prefill_len] = (idx[:, :prefill_len] + torch.randint(1, V, (batch_size, prefill_len),
                                                                  generator=gen, device="cpu").to(device)) % V
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        ref = model(idx).logits  # (B, L, V)
        moved = model(other).logits
        cache = model.allocate_inference_cache(batch_size, seq_len, dtype)
        decoder = Decoder(
            model, cache, batch_size=batch_size, prompt_len=prefill_len,
            gen_len=seq_len - prefill_len + 1, sampling=Sampling(greedy=True), cuda_graph=cuda_graph,
        )  # fmt: skip
        got = [decoder.prefill(idx[:, :prefill_len])]
        for t in range(prefill_len, seq_len):
            got.append(decoder.forced_step(idx[:, t])[:, None])
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    # every position: the prompt's logits from prefill, then one step's per byte
    errors = _relative(torch.cat(got, dim=1) - ref, ref)
    errors = torch.where(torch.isfinite(errors), errors, torch.full_like(errors, math.inf))
    worst = int(errors.argmax())
    half = (seq_len + prefill_len) // 2
    sensitivity = _relative(moved[:, half:] - ref[:, half:], ref[:, half:]).min().item()
    tolerance = verify_tolerance(dtype) if tolerance is None else tolerance
    return VerifyResult(
        model=name, path=decoder.path, dtype=str(dtype).removeprefix("torch."), seq_len=seq_len,
        prefill_len=prefill_len,
        error=errors[worst].item(), error_at=worst, sensitivity=sensitivity,
        tolerance=tolerance, min_sensitivity=SENSITIVITY_MARGIN * tolerance,
    )  # fmt: skip
