"""The CUDA-graph plans, checked on CPU with an emulated capture.

A captured graph replays the kernels of the step as they ran at capture time: whatever the step
decided from host (Python) state is frozen, and only device tensors move. The emulator reproduces
that: each "graph" re-runs the step on its capture-time view with the host state restored to what
it was at capture, then undoes the step's host-side changes (a replay changes no Python state).
Decoding through it must still equal the full forward pass.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

import pytest
import torch

from ssmbench.generate import decode
from ssmbench.generate.verify import amplify_memory, verify_cached_decoding
from ssmbench.models.byte_sets import BYTE_MODEL_SETS
from ssmbench.models.registry import build_model


def _host_state(obj: Any) -> dict[str, Any]:
    """Every Python int field of a cache, recursively (seqlen offsets)."""
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, int):
            out[f.name] = v
        elif is_dataclass(v):
            out[f.name] = _host_state(v)
    return out


def _restore(obj: Any, state: dict[str, Any]) -> None:
    for k, v in state.items():
        if isinstance(v, dict):
            _restore(getattr(obj, k), v)
        else:
            setattr(obj, k, v)


class EmulatedGraph:
    def __init__(self, body, view, real) -> None:
        self.body, self.view, self.real = body, view, real
        self.frozen = _host_state(view)

    def replay(self) -> None:
        before_view, before_real = _host_state(self.view), _host_state(self.real)
        _restore(self.view, self.frozen)
        self.body(self.view)
        _restore(self.view, before_view)
        _restore(self.real, before_real)


@pytest.fixture
def emulated_graphs(monkeypatch):
    captured: dict[str, int] = {}

    def fake_capture(step_body, plan, keys, before_each, n_warmup=2):
        graphs = {key: EmulatedGraph(step_body, plan.capture_view(key), plan.cache) for key in keys}
        captured["n"] = len(graphs)
        return graphs

    monkeypatch.setattr(decode, "graphs_unavailable", lambda device: None)
    monkeypatch.setattr(decode, "capture_graphs", fake_capture)
    return captured


@pytest.mark.parametrize("name", ["mambabyte", "megabyte", "byte-transformer"])
def test_graph_plan_decoding_equals_forward(emulated_graphs, name: str) -> None:
    torch.manual_seed(0)
    model = build_model(BYTE_MODEL_SETS["gen-smoke"].get(name)).eval()
    # 150 positions: the transformer crosses the 64 and 128 buckets, MegaByte many patches
    amplify_memory(model)
    r = verify_cached_decoding(name, model, seq_len=150, prefill_len=7, batch_size=1, cuda_graph=True)
    assert r.path.startswith("cuda-graph"), r.path
    assert r.passed, r
    expected = {"mambabyte": 1, "byte-transformer": 3}  # one graph; buckets 64, 128, 150
    if name in expected:
        assert emulated_graphs["n"] == expected[name]
    else:  # MegaByte: P - 1 local-only offsets + the global step in every bucket it reaches
        assert emulated_graphs["n"] == model.cfg.patch_size - 1 + 1


def test_emulator_catches_positions_frozen_in_python(emulated_graphs, monkeypatch) -> None:
    """The check has teeth: a cache that hands layers its Python-int offset (frozen at capture)
    instead of the device position must fail."""
    from ssmbench.models.cache import InferenceCache

    monkeypatch.setattr(InferenceCache, "current_position", lambda self: self.seqlen_offset)
    torch.manual_seed(0)
    model = build_model(BYTE_MODEL_SETS["gen-smoke"].get("byte-transformer")).eval()
    r = verify_cached_decoding("t", model, seq_len=40, prefill_len=7, batch_size=1, cuda_graph=True)
    assert r.error > 100 * r.tolerance, r
