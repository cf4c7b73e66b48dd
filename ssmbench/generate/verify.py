"""``--verify``: cached decoding (prefill + steps) must give the logits of the full forward pass.

Checked in float32 (TF32 off) on random bytes, with a prefill length that is not a multiple of
MegaByte's patch size and enough steps to cross several patch boundaries; on CUDA the captured
graph path is checked too when graphs are asked for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ssmbench.generate.decode import Decoder
from ssmbench.generate.sampling import Sampling

VERIFY_TOLERANCE = 1e-4  # float32: max |cached - forward| / max |forward|


@dataclass(frozen=True)
class VerifyResult:
    """max_abs_diff over every position and logit; rel_diff = max_abs_diff / max |forward logit|."""

    model: str
    path: str
    seq_len: int
    prefill_len: int
    max_abs_diff: float
    rel_diff: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.rel_diff <= self.tolerance  # False for NaN

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "passed": self.passed}


@torch.no_grad()
def verify_cached_decoding(
    name: str,
    model: torch.nn.Module,
    *,
    seq_len: int = 37,
    prefill_len: int = 11,
    batch_size: int = 2,
    cuda_graph: bool = False,
    seed: int = 0,
    tolerance: float = VERIFY_TOLERANCE,
) -> VerifyResult:
    """Compare forward(idx).logits with prefill(idx[:, :prefill_len]) then one step per byte.

    ``model`` must be float32 and in eval mode."""
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    idx = torch.randint(0, model.cfg.vocab_size, (batch_size, seq_len), generator=gen).to(device)
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        ref = model(idx).logits.float()  # (B, L, V)
        cache = model.allocate_inference_cache(batch_size, seq_len, torch.float32)
        decoder = Decoder(
            model, cache, batch_size=batch_size, prompt_len=prefill_len,
            gen_len=seq_len - prefill_len + 1, sampling=Sampling(greedy=True), cuda_graph=cuda_graph,
        )  # fmt: skip
        got = [decoder.prefill(idx[:, :prefill_len]).float()]
        for t in range(prefill_len, seq_len):
            got.append(decoder.forced_step(idx[:, t]).float()[:, None])
        diff = (torch.cat(got, dim=1) - ref).abs().max().item()
        scale = max(ref.abs().max().item(), 1e-30)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return VerifyResult(
        model=name, path=decoder.path, seq_len=seq_len, prefill_len=prefill_len,
        max_abs_diff=diff, rel_diff=diff / scale, tolerance=tolerance,
    )  # fmt: skip
