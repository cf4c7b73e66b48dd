"""Causal depthwise conv1d (causal-conv1d's contract): over a whole sequence (``seq_ref``, the
PyTorch oracle; ``triton``, fused kernels with autograd) and one decode step at a time."""
