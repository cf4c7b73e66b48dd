"""Selective-scan implementations: ref (oracle), chunked (PyTorch), triton (fused), step (decode)."""
