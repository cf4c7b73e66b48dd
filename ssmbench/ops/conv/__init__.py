"""Causal depthwise conv1d (causal-conv1d's contract): over a whole sequence (``ref.causal_conv1d_ref``,
the PyTorch oracle; ``triton``, fused kernels with autograd) and one decode step at a time
(``ref.causal_conv1d_update_ref``; ``triton_update``, the fused step kernel)."""
