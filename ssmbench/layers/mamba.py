"""The Mamba block (Gu & Dao 2023) on ssmbench's selective-scan operators.

in_proj (d -> 2 * d_inner: x and the gate z), depthwise causal conv1d (width d_conv) + SiLU on
x, x_proj (d_inner -> dt_rank + 2N: dt, B, C), dt_proj (dt_rank -> d_inner; its bias is the
scan's delta_bias, softplus inside the scan), A = -exp(A_log) (S4D-real init A = -[1..N]),
D (ones), y = scan(x, dt, A, B, C, D, z) (gated by SiLU(z) inside the scan), out_proj
(d_inner -> d). With expand 2, N 16, dt_rank ceil(d/16) that is a little over 6 d^2 parameters.

Training (and a prefill from an empty state) is laid out like mamba_ssm's fast path, so that no
activation is transposed: in_proj is one GEMM writing xz channel-major, (2 d_inner, B T), and x, z
are (B, d_inner, T) views of it; the fused causal conv + SiLU (``ssmbench.ops.causal_conv1d``)
reads x in place and writes u (B, d_inner, T) contiguous, the scan's layout; x_proj and dt_proj
are batched GEMMs on u (one weight shared by the batch rows) writing x_dbl and delta in that
layout; ``OutProj`` reads the scan's output y in place. Copies of (B, d_inner, T) activations
left per layer: z for the scan (its kernel reads only contiguous (B, D, T) rows), and in the
backward y once (for out_proj's weight gradient) and dx, dz into the channel-major dxz (for
in_proj's). The conv backend follows the scan backend (``_conv_seq_backend``).

Decoding keeps, per layer, the last d_conv conv inputs and the (d_inner, N) SSM state.
``step`` is six kernels on the GPU: the in_proj, x_proj, dt_proj and out_proj GEMVs, the fused
conv step (``ssmbench.ops.causal_conv1d_update``) and the fused state update
(``ssmbench.ops.selective_state_update``, which adds dt_proj's bias, takes the softplus, adds the
D skip and gates by SiLU(z)); x, z, B, C and dt are views, never copied, and A = -exp(A_log) is
cached between steps. ``last_scan_backend`` / ``last_conv_backend`` (the sequence conv) and
``last_step_backend`` / ``last_conv_step_backend`` (decoding) say which backends actually ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssmbench.ops import (
    CONV_BACKENDS,
    backend_status,
    causal_conv1d,
    causal_conv1d_update,
    resolve_backend,
    selective_scan,
    selective_state_update,
)
from ssmbench.ops.decode.common import fused_decode_reason
from ssmbench.ops.decode.conv_xproj import conv_xproj
from ssmbench.ops.decode.norm_linear import norm_linear
from ssmbench.ops.decode.ssm_update_xproj import ssm_update_xproj
from ssmbench.ops.scan.cost import ScanShape, scan_flops


def _shared(weight: Tensor, like: Tensor) -> Tensor:
    """weight (M, K) in like's dtype, expanded to (batch, M, K) without a copy: the weight of a
    batched GEMM over like (batch, K, T), one GEMM per batch row reading the same matrix."""
    return weight.to(like.dtype).expand(like.shape[0], -1, -1)


class OutProj(torch.autograd.Function):
    """out_proj on the scan's layout: y (B, Di, T) contiguous, w (d_model, Di) -> (B, T, d_model).

    Forward: one batched GEMM, no copy. Backward: dy (B, Di, T) straight in the scan's layout (a
    batched GEMM, so the scan needs no copy of it), and dw as one GEMM over all B T tokens from
    y copied once to (Di, B T) (batched GEMMs would need a (B, d_model, Di) buffer and a sum)."""

    @staticmethod
    def forward(ctx: Any, y: Tensor, w: Tensor) -> Tensor:
        ctx.save_for_backward(y, w)
        return torch.bmm(y.transpose(1, 2), w.t().expand(y.shape[0], -1, -1))

    @staticmethod
    def backward(ctx: Any, dout: Tensor) -> tuple[Tensor | None, Tensor | None]:
        y, w = ctx.saved_tensors
        Bsz, Di, T = y.shape
        dy = dw = None
        if ctx.needs_input_grad[0]:
            dy = torch.bmm(w.t().expand(Bsz, -1, -1), dout.transpose(1, 2))  # (B, Di, T)
        if ctx.needs_input_grad[1]:
            y_cm = y.transpose(0, 1).reshape(Di, Bsz * T)  # (Di, B T): the one copy
            dw = dout.reshape(Bsz * T, -1).t() @ y_cm.t()  # (d_model, Di)
        return dy, dw


@dataclass
class MambaState:
    """conv: (batch, d_inner, d_conv) last conv inputs, oldest first; ssm: (batch, d_inner, N) fp32."""

    conv: Tensor
    ssm: Tensor

    def reset(self) -> None:
        self.conv.zero_()
        self.ssm.zero_()


class Mamba(nn.Module):
    """x: (B, T, d_model) -> (B, T, d_model).

    scan_backend / step_backend: names for ``ssmbench.ops`` ('auto', 'ref', 'chunked',
    'triton', 'mamba_ssm'; the step has no 'chunked').
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        scan_backend: str = "auto",
        step_backend: str = "auto",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank if dt_rank is not None else math.ceil(d_model / 16)
        self.scan_backend = scan_backend
        self.step_backend = step_backend
        self.last_scan_backend: str | None = None
        self.last_step_backend: str | None = None
        self.last_conv_backend: str | None = None
        self.last_conv_step_backend: str | None = None
        # step_residual: the fused kernels when possible (False forces the unfused step); the
        # in_proj/out_proj GEMVs on "cublas" (with PyTorch's norm and add) or "triton" (norm and
        # residual add fused into them)
        self.fused_decode = True
        self.decode_gemv = "cublas"
        self.last_decode_path: str | None = None
        # decode-time A = -exp(A_log) in fp32: (key of A_log's state, A_log's storage kept alive, A)
        self._decode_A: tuple[tuple[int, int, torch.device, torch.dtype], Tensor, Tensor] | None = None
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1, bias=True
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state))
        self.D = nn.Parameter(torch.empty(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self.out_proj.weight._residual_out = True  # type: ignore[attr-defined]
        for p in (self.dt_proj.weight, self.dt_proj.bias):
            p._no_reinit = True  # type: ignore[attr-defined]
        for p in (self.A_log, self.D):
            p._no_reinit = True  # type: ignore[attr-defined]
            p._no_weight_decay = True  # type: ignore[attr-defined]
        self._dt_range = (dt_min, dt_max, dt_init_floor)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """Standard Mamba init: dt_proj weight U(+-dt_rank^-0.5); dt_proj bias = softplus^-1(dt),
        dt log-uniform in [dt_min, dt_max]; A_log = log([1..N]) per channel; D = 1."""
        if self.D.is_meta:  # shapes only (parameter counting): nothing to initialise
            return
        dt_min, dt_max, floor = self._dt_range
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(
            torch.rand(self.d_inner, device=self.D.device) * (math.log(dt_max) - math.log(dt_min))
            + math.log(dt_min)
        ).clamp(min=floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=self.D.device)
        self.A_log.copy_(torch.log(A).repeat(self.d_inner, 1))  # (d_inner, N)
        self.D.fill_(1.0)

    def _backend(self, op: str, device: torch.device) -> str:
        return resolve_backend(self.scan_backend if op == "scan" else self.step_backend, device, op)

    def _conv_backend(self, step_backend: str, device: torch.device) -> str:
        """The conv step follows the state update (ref with ref, triton with triton); with
        mamba_ssm's update it is the fastest usable one (triton on CUDA)."""
        if step_backend in CONV_BACKENDS:
            return step_backend
        return resolve_backend("auto", device, "conv_step")

    def decode_A(self) -> Tensor:
        """A = -exp(A_log), (d_inner, N) fp32, computed once and reused while A_log is unchanged
        (same storage, dtype and version counter: in-place updates such as optimizer steps or
        load_state_dict, and moves such as ``.to()``, recompute it; the cache keeps the storage it
        was computed from alive, so its address cannot be reused). Detached: decoding updates
        its states in place and is not differentiable anyway."""
        A_log = self.A_log
        key = (A_log._version, A_log.data_ptr(), A_log.device, A_log.dtype)
        if self._decode_A is None or self._decode_A[0] != key:
            with torch.no_grad():
                self._decode_A = (key, A_log.detach(), -torch.exp(A_log.float()))
        return self._decode_A[2]

    def _conv_seq_backend(self, scan_backend: str, device: torch.device) -> str:
        """The sequence conv follows the scan: triton with triton, the PyTorch reference with
        ref and chunked, causal-conv1d's kernel with mamba_ssm's scan when it is installed."""
        if scan_backend == "triton":
            return "triton"
        if scan_backend == "mamba_ssm":
            usable = backend_status(device, "conv")["causal_conv1d"] is None
            return "causal_conv1d" if usable else resolve_backend("auto", device, "conv")
        return "ref"

    def _mix(self, hidden: Tensor, state: MambaState | None) -> Tensor:
        """The block on (B, T, d_model); fills ``state`` (conv inputs, last SSM state) when given.

        Layouts (see the module docstring): in_proj writes xz channel-major, (2 d_inner, B T), in
        one GEMM; x and z are (B, d_inner, T) views of it. The conv reads x in place and writes u
        (B, d_inner, T) contiguous, the scan's layout; x_proj and dt_proj are batched GEMMs on it
        whose outputs (x_dbl (B, R + 2N, T), delta (B, d_inner, T)) are in that layout too."""
        Bsz, T, _ = hidden.shape
        Di, R, N = self.d_inner, self.dt_rank, self.d_state
        xz = self.in_proj.weight @ hidden.reshape(Bsz * T, -1).t()  # (2 Di, B T)
        x, z = (t.permute(1, 0, 2) for t in xz.view(2 * Di, Bsz, T).split(Di))  # (B, Di, T) views
        if state is not None:
            state.conv.copy_(F.pad(x, (self.d_conv - T, 0)))  # last d_conv inputs, zeros before
        scan_backend = self._backend("scan", hidden.device)
        conv_backend = self._conv_seq_backend(scan_backend, hidden.device)
        self.last_scan_backend, self.last_conv_backend = scan_backend, conv_backend
        u = causal_conv1d(
            x, self.conv1d.weight[:, 0], self.conv1d.bias, "silu", backend=conv_backend
        )  # (B, Di, T)
        x_dbl = torch.bmm(_shared(self.x_proj.weight, u), u)  # (B, R + 2N, T)
        dt, Bm, Cm = x_dbl.split([R, N, N], dim=1)  # views: (B, R, T), (B, N, T), (B, N, T)
        delta = torch.bmm(_shared(self.dt_proj.weight, u), dt)  # (B, Di, T), bias added in the scan
        out = selective_scan(
            u,
            delta,
            -torch.exp(self.A_log.float()),  # (Di, N)
            Bm,
            Cm,
            self.D.float(),
            z=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            return_last_state=state is not None,
            backend=scan_backend,
        )
        if state is not None:
            y, last = out
            state.ssm.copy_(last)
        else:
            y = out
        return OutProj.apply(y, self.out_proj.weight.to(y.dtype))  # (B, T, d_model)

    def forward(self, hidden: Tensor) -> Tensor:
        return self._mix(hidden, None)

    def allocate_inference_cache(
        self,
        batch_size: int,
        max_seqlen: int = 0,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> MambaState:
        """Zeroed state; its size does not depend on ``max_seqlen``. The SSM state is fp32.
        Also computes the decode-time A (``decode_A``) here, outside any captured step."""
        w = self.in_proj.weight
        device = device or w.device
        if not self.A_log.is_meta:
            self.decode_A()
        return MambaState(
            conv=torch.zeros(batch_size, self.d_inner, self.d_conv, dtype=dtype or w.dtype, device=device),
            ssm=torch.zeros(batch_size, self.d_inner, self.d_state, dtype=torch.float32, device=device),
        )

    def prefill(self, hidden: Tensor, state: MambaState, offset: int = 0) -> Tensor:
        """hidden: (B, T, d_model) -> (B, T, d_model), leaving the state after the last token.

        From offset 0 this is one parallel scan; continuing a filled state runs ``step`` per
        token (the scan operators take no initial state)."""
        if offset == 0:
            return self._mix(hidden, state)
        outs = [self.step(hidden[:, t], state, offset + t) for t in range(hidden.shape[1])]
        return torch.stack(outs, dim=1)

    def step(self, hidden: Tensor, state: MambaState, pos: int | Tensor = 0) -> Tensor:
        """hidden: (B, d_model), one token -> (B, d_model); ``state`` updated in place.
        ``pos`` is unused (the recurrence does not depend on position). No host syncs and no
        copies: six kernels with the triton backends (see the module docstring)."""
        R, N = self.dt_rank, self.d_state
        step_backend = self._backend("step", hidden.device)
        conv_backend = self._conv_backend(step_backend, hidden.device)
        self.last_step_backend, self.last_conv_step_backend = step_backend, conv_backend
        xz = F.linear(hidden, self.in_proj.weight)  # (B, 2 * d_inner)
        x, z = xz[:, : self.d_inner], xz[:, self.d_inner :]  # views, each (B, d_inner)
        x = causal_conv1d_update(
            x, state.conv, self.conv1d.weight[:, 0], self.conv1d.bias, "silu", backend=conv_backend
        )  # (B, d_inner)
        x_dbl = F.linear(x, self.x_proj.weight)  # (B, R + 2N)
        dt = F.linear(x_dbl[:, :R], self.dt_proj.weight)  # (B, d_inner); bias added in the update
        y = selective_state_update(
            state.ssm,
            x,
            dt,
            self.decode_A(),
            x_dbl[:, R : R + N],  # B: (B, N) view
            x_dbl[:, R + N :],  # C: (B, N) view
            self.D,
            z=z,
            dt_bias=self.dt_proj.bias,
            dt_softplus=True,
            backend=step_backend,
        )  # (B, d_inner)
        return F.linear(y, self.out_proj.weight)  # (B, d_model)

    def fused_step_reason(self, x: Tensor, norm: nn.Module) -> str | None:
        """Why ``step_residual`` cannot use the fused kernels for x (B, d_model), or None."""
        if not self.fused_decode:
            return "disabled"
        if self._backend("step", x.device) != "triton":
            return "step backend is not triton"
        if not isinstance(norm, nn.LayerNorm) or norm.weight is None or norm.bias is None:
            return "the norm is not an affine LayerNorm"
        return fused_decode_reason(x)

    def step_residual(self, x: Tensor, norm: nn.Module, state: MambaState) -> Tensor:
        """x + step(norm(x)) for one token x (B, d_model); ``state`` updated in place.

        With ``fused_step_reason`` None: the conv step is fused with x_proj, and the state update
        with x_proj's sum and dt_proj (``ssmbench.ops.decode``); ``decode_gemv`` "cublas"
        runs the norm, in_proj, out_proj and the add in PyTorch around them (6 kernels), "triton"
        folds the norm into in_proj and the add into out_proj (4 kernels). Otherwise the norm,
        ``step`` and the add. ``last_decode_path`` says which ran."""
        if self.fused_step_reason(x, norm) is not None:
            self.last_decode_path = "unfused"
            return x + self.step(norm(x), state)
        self.last_step_backend = self.last_conv_step_backend = "triton"
        triton_gemv = self.decode_gemv == "triton"
        self.last_decode_path = "fused-triton-gemv" if triton_gemv else "fused-cublas-gemv"
        if triton_gemv:
            xz = norm_linear(x, self.in_proj.weight, norm.weight, norm.bias, norm.eps)  # (B, 2 * d_inner)
        else:
            xz = F.linear(norm(x), self.in_proj.weight)
        xc, part = conv_xproj(
            xz[:, : self.d_inner], state.conv, self.conv1d.weight[:, 0], self.conv1d.bias, self.x_proj.weight
        )  # (B, d_inner), (S, B, R + 2N)
        y = ssm_update_xproj(
            part, self.dt_rank, self.dt_proj.weight, self.dt_proj.bias, state.ssm, xc,
            xz[:, self.d_inner :], self.decode_A(), self.D,
        )  # fmt: skip
        if triton_gemv:
            return norm_linear(y, self.out_proj.weight, residual=x)  # (B, d_model)
        return x + F.linear(y, self.out_proj.weight)

    def flops_per_token(self, seq_len: int = 1) -> int:
        """Forward FLOPs per token: 2 per projection and conv weight, plus the scan's FLOPs
        (``ssmbench.ops.scan.cost``, 9 per state element + D skip + z gate)."""
        weights = sum(
            m.weight.numel() for m in (self.in_proj, self.conv1d, self.x_proj, self.dt_proj, self.out_proj)
        )
        scan = scan_flops(ScanShape(batch=1, dim=self.d_inner, seqlen=1, dstate=self.d_state), "fwd")
        return 2 * weights + scan
