"""Comparison helpers shared by tests: relative error that fails hard on NaN (the package's own,
``ssmbench.profile.problem.rel_err``)."""

from __future__ import annotations

import torch

from ssmbench.profile.problem import rel_err

__all__ = ["assert_close", "rel_err"]


def assert_close(out: torch.Tensor, ref: torch.Tensor, tol: float, what: str = "") -> None:
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    err = rel_err(out, ref)
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.1e}"
