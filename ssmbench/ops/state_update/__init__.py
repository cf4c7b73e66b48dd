"""Decode step of the selective scan (one token, state updated in place): ref (oracle), triton (fused)."""
