"""Selective scan: ref (oracle), chunked (parallel PyTorch), triton (fused kernels), cost (FLOPs, bytes)."""
