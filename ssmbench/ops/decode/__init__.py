"""Fused kernels for one Mamba residual sub-layer's decode step at small batch (4 kernels per layer).

``x + Mamba(LayerNorm(x))`` for one token, as four Triton kernels instead of eight (norm, in_proj,
conv step, x_proj, dt_proj, state update, out_proj, residual add), each in the module of its name
(``common`` holds what they share):

1. ``norm_linear``: LayerNorm prologue + in_proj GEMV -> xz (batch, 2 d_inner);
2. ``conv_xproj``: conv step (state rolled in place) + SiLU on a block of channels, and that
   block's share of x_proj -> xc (batch, d_inner) and split-K partials (S, batch, R + 2N) fp32;
3. ``ssm_update_xproj``: sums the partials (x_proj's output: dt_in, B, C), dt_proj GEMV on its
   channel block, bias + softplus, the state update, D skip and SiLU(z) gate -> y (batch, d_inner);
4. ``norm_linear`` again: out_proj GEMV + residual epilogue -> x + out_proj(y).

The GEMVs are small-M GEMMs on ``tl.dot`` (batch padded to 16 rows), so one program reads its
weight tile once for the whole batch. Intermediates that an unfused step rounds to the weights'
dtype (norm output, xz, conv output, x_proj and dt_proj outputs, y) are rounded the same way
here; the mixer output is added to the residual in fp32 and rounded once. The partial sums make
x_proj deterministic (no atomics). Triton only (CUDA, or the interpreter for tests); batch <= 16;
fp32 / fp16 / bf16.
"""
