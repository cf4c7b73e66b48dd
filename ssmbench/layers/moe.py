"""Switch mixture-of-experts feed-forward (Fedus et al. 2021): top-1 routing, grouped dispatch.

Router: logits and softmax in fp32 even under autocast (as Switch does); each token goes to its
most probable expert (token choice). An expert is a ReLU feed-forward of width d_expert; its
output is scaled by the router probability.

Capacity is a training-time device. In training mode (``self.training``) each expert has
ceil(capacity_factor * tokens / n_experts) slots per forward call, and tokens beyond it (in
token order) are dropped: their MoE output is zero, so they pass through the residual
unchanged. In eval mode every token reaches its expert, so evaluation does not depend on how
tokens are batched, and a forward pass equals step-by-step decoding (decode in eval mode).

Load-balancing loss: n_experts * sum_i f_i * P_i, f_i = fraction of tokens
routed to expert i, P_i = mean router probability of expert i.

Dispatch is grouped, never a Python loop over experts, and has two paths:
  bmm:        sort tokens by expert, position of each within its expert, scatter into an
              (E, capacity, d) buffer, two batched matmuls, gather back.
  grouped_mm: the kept tokens sorted by expert through ``grouped_mm`` with per-expert offsets
              (no padding to capacity). "auto" takes it on CUDA in bf16 when PyTorch has it.
``last_dispatch`` says which path ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DISPATCH_PATHS = ("auto", "bmm", "grouped_mm")


def _grouped_mm_fn() -> Callable[..., Tensor] | None:
    """The public ``F.grouped_mm`` when PyTorch has it, else ``torch._grouped_mm``, else None."""
    return getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


@dataclass
class MoEStats:
    """lb_loss: 0-dim unweighted load-balancing loss (differentiable). expert_fraction: (E,)
    share of tokens routed to each expert (before dropping). dropped_fraction: 0-dim share of
    tokens over capacity. dispatch: the path that ran. capacity: slots per expert (0: no limit,
    eval mode)."""

    lb_loss: Tensor
    expert_fraction: Tensor
    dropped_fraction: Tensor
    dispatch: str
    capacity: int


@dataclass
class _Routing:
    """Per token (N,): gate (router prob of the chosen expert, fp32), expert, kept (bool);
    rank: position of the token within its expert's queue; counts: (E,) tokens per expert."""

    gate: Tensor
    expert: Tensor
    kept: Tensor
    rank: Tensor
    counts: Tensor


class SwitchMoE(nn.Module):
    """x: (B, T, d_model) -> (y (B, T, d_model), MoEStats).

    Expert weights are stored like nn.Linear, per expert: w_in (E, d_expert, d_model),
    w_out (E, d_model, d_expert); no biases. Active parameters per token: router + one expert.
    """

    def __init__(
        self,
        d_model: int,
        d_expert: int,
        n_experts: int,
        capacity_factor: float = 1.0,
        dispatch: str = "auto",
    ) -> None:
        super().__init__()
        if dispatch not in DISPATCH_PATHS:
            raise ValueError(f"unknown MoE dispatch {dispatch!r}; expected one of {DISPATCH_PATHS}")
        if n_experts < 1 or capacity_factor <= 0:
            raise ValueError("n_experts must be >= 1 and capacity_factor > 0")
        self.d_model = d_model
        self.d_expert = d_expert
        self.n_experts = n_experts
        self.capacity_factor = capacity_factor
        self.dispatch = dispatch
        self.last_dispatch: str | None = None
        self.router = nn.Linear(d_model, n_experts, bias=False)
        self.w_in = nn.Parameter(torch.empty(n_experts, d_expert, d_model))
        self.w_out = nn.Parameter(torch.empty(n_experts, d_model, d_expert))
        self.w_out._residual_out = True  # type: ignore[attr-defined]
        for w in (self.w_in, self.w_out):
            nn.init.normal_(w, std=0.02)

    def capacity(self, n_tokens: int) -> int:
        """Slots per expert for ``n_tokens`` tokens: ceil(capacity_factor * tokens / n_experts)."""
        return max(1, math.ceil(self.capacity_factor * n_tokens / self.n_experts))

    def router_probs(self, x: Tensor) -> Tensor:
        """x: (N, d) -> router probabilities (N, E), logits and softmax in fp32 even under autocast."""
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), self.router.weight.float()).softmax(dim=-1)

    def _route(self, x: Tensor, capacity: int | None) -> tuple[_Routing, Tensor]:
        """x: (N, d). Returns the routing and the router probabilities (N, E) in fp32."""
        probs = self.router_probs(x)  # (N, E)
        gate, expert = probs.max(dim=-1)  # (N,)
        # scatter_add, not bincount: bincount on CUDA reads the max back to the host (a sync)
        counts = torch.zeros(self.n_experts, dtype=torch.long, device=x.device)
        counts.scatter_add_(0, expert, torch.ones_like(expert))  # (E,) tokens per expert
        order = torch.argsort(expert, stable=True)  # token indices grouped by expert, in token order
        starts = counts.cumsum(0) - counts  # (E,) first sorted index of each expert
        rank = torch.empty_like(order)
        rank[order] = torch.arange(x.shape[0], device=x.device) - starts[expert[order]]
        kept = rank < capacity if capacity is not None else torch.ones_like(expert, dtype=torch.bool)
        return _Routing(gate, expert, kept, rank, counts), probs

    def _choose_path(self, x: Tensor) -> str:
        if self.dispatch != "auto":
            return self.dispatch
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else x.dtype
        usable = x.is_cuda and dtype == torch.bfloat16 and _grouped_mm_fn() is not None
        return "grouped_mm" if usable else "bmm"

    def _experts_bmm(self, x: Tensor, r: _Routing, capacity: int) -> Tensor:
        """Padded (E, capacity, d) buffer, two batched matmuls. x: (N, d) -> (N, d)."""
        E, d = self.n_experts, self.d_model
        trash = E * capacity  # one extra row that receives every dropped token
        slot = torch.where(r.kept, r.expert * capacity + r.rank, trash)  # (N,)
        buf = x.new_zeros(trash + 1, d).index_copy(0, slot, x)[:trash].view(E, capacity, d)
        h = F.relu(torch.bmm(buf, self.w_in.transpose(1, 2).to(buf.dtype)))  # (E, capacity, d_expert)
        out = torch.bmm(h, self.w_out.transpose(1, 2).to(h.dtype)).view(trash, d)  # (E * capacity, d)
        out = torch.cat([out, out.new_zeros(1, d)])  # dropped tokens read the zero row
        return out[slot]

    def _experts_grouped(self, x: Tensor, r: _Routing, capacity: int | None) -> Tensor:
        """Kept tokens sorted by expert, ``grouped_mm`` with offsets. x: (N, d) -> (N, d)."""
        gmm = _grouped_mm_fn()
        if gmm is None:
            raise RuntimeError("this PyTorch has no grouped_mm")
        E = self.n_experts
        dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled(x.device.type) else x.dtype
        # kept tokens first, grouped by expert; dropped tokens after them (beyond offs[-1], ignored)
        order = torch.argsort(torch.where(r.kept, r.expert, E), stable=True)  # (N,)
        kept_counts = r.counts.clamp(max=capacity) if capacity is not None else r.counts  # (E,)
        offs = kept_counts.cumsum(0).to(torch.int32)  # (E,) end of each expert's rows
        kept_sorted = r.kept[order, None]  # (N, 1)
        with torch.autocast(x.device.type, enabled=False):
            # rows past offs[-1] come back undefined, in the forward and in the input gradient:
            # the where() keeps them away from the dropped tokens' gradient
            xs = torch.where(kept_sorted, x[order], 0).to(dtype)  # (N, d)
            h = F.relu(gmm(xs, self.w_in.to(dtype).transpose(1, 2), offs=offs))  # (N, d_expert)
            out = gmm(h, self.w_out.to(dtype).transpose(1, 2), offs=offs)  # (N, d)
        out = torch.where(kept_sorted, out, 0)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.shape[0], device=order.device)
        return out[inverse]

    def forward(self, x: Tensor) -> tuple[Tensor, MoEStats]:
        """x: (B, T, d). Training mode drops tokens over capacity; eval mode routes every token."""
        shape = x.shape
        flat = x.reshape(-1, self.d_model)  # (N, d)
        N = flat.shape[0]
        capacity = self.capacity(N) if self.training else None
        r, probs = self._route(flat, capacity)
        path = self._choose_path(flat)
        self.last_dispatch = path
        if path == "grouped_mm":
            y = self._experts_grouped(flat, r, capacity)
        else:
            # without dropping, the buffer needs room for the busiest expert (a host sync)
            cap = capacity if capacity is not None else int(r.counts.max())
            y = self._experts_bmm(flat, r, cap)
        y = y * r.gate[:, None].to(y.dtype)  # (N, d), zero for dropped tokens
        fraction = r.counts.float() / N  # (E,)
        stats = MoEStats(
            lb_loss=self.n_experts * (fraction * probs.mean(dim=0)).sum(),
            expert_fraction=fraction.detach(),
            dropped_fraction=1.0 - r.kept.float().mean().detach(),
            dispatch=path,
            capacity=capacity or 0,
        )
        return y.view(shape), stats

    def flops_per_token(self, seq_len: int = 1) -> int:
        """Forward FLOPs per token: 2 per router weight and per weight of one expert."""
        return 2 * (self.router.weight.numel() + self.w_in[0].numel() + self.w_out[0].numel())

    def active_params(self) -> int:
        """Parameters one token uses: the router and one expert."""
        return self.router.weight.numel() + self.w_in[0].numel() + self.w_out[0].numel()
