"""Cached decoding and the gen-speed task."""
