"""Timing, device ceilings and environment capture shared by every task."""
