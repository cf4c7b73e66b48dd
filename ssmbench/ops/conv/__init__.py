"""Causal depthwise conv1d: ref (decode-step oracle), triton_update (fused decode-step kernel)."""
