"""Residual add + LayerNorm (mamba_ssm's ``layer_norm_fn`` with a residual): ``ref.py`` in PyTorch
(the oracle), ``triton.py`` fused forward and backward kernels."""
