"""CUDA-graph capture of the per-byte decode step.

A captured graph replays fixed kernels on fixed buffers, so everything a step changes must live
in device tensors that the step updates itself: the caches switch to static positions (a 0-dim
device tensor that ``step`` reads and increments), and the token, logits and output buffers are
allocated once. What cannot be a device tensor is which code path a step takes; those choices
become graph keys, one captured graph each:

- attention caches: the KV length attended over, rounded up to a power-of-two bucket (64, 128,
  ... up to the cache size), so that per-step cost still grows with the position (in steps)
  instead of always paying for the whole buffer;
- MegaByte: the in-patch offset (the global model runs only on the step that completes a
  patch), and for that step the bucket of the global cache.

Capture happens once per decoder, before the prompt is prefilled: for every key the cache is
moved to a position of that key, the step is warmed up on a side stream, then captured; all
graphs share one memory pool. The caches are reset afterwards, so capture leaves no trace.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch

from ssmbench.layers.attention import KVCache
from ssmbench.models.cache import InferenceCache
from ssmbench.models.megabyte import MegaByteCache

SMALLEST_BUCKET = 64


def bucket_lengths(max_len: int, smallest: int = SMALLEST_BUCKET) -> list[int]:
    """Powers of two from ``smallest`` below ``max_len``, then ``max_len`` itself."""
    out, b = [], smallest
    while b < max_len:
        out.append(b)
        b *= 2
    return [*out, max_len]


def bucket_for(length: int, buckets: list[int]) -> int:
    """The smallest bucket holding ``length`` positions."""
    return next(b for b in buckets if b >= length)


def has_kv(cache: InferenceCache) -> bool:
    return any(isinstance(s, KVCache) for s in cache.layer_states)


def kv_view(cache: InferenceCache, length: int) -> InferenceCache:
    """The same cache seen through its first ``length`` positions: KV tensors are views (writes
    land in the full buffers), other states and the position tensor are shared."""
    states = [
        KVCache(k=s.k[:, :, :length], v=s.v[:, :, :length]) if isinstance(s, KVCache) else s
        for s in cache.layer_states
    ]
    return InferenceCache(
        batch_size=cache.batch_size, max_seqlen=length, layer_states=states,
        seqlen_offset=cache.seqlen_offset, position=cache.position,
    )  # fmt: skip


def _seek(cache: InferenceCache, pos: int) -> None:
    cache.seqlen_offset = pos
    if cache.position is not None:
        cache.position.fill_(pos)


@dataclass
class InferenceCachePlan:
    """Graph keys of an ``LM``'s InferenceCache: the attention bucket (one key without attention)."""

    cache: InferenceCache

    def __post_init__(self) -> None:
        self.buckets = bucket_lengths(self.cache.max_seqlen) if has_kv(self.cache) else [0]

    def key(self, pos: int) -> Hashable:
        """Key of the step that consumes the token at position ``pos``."""
        return bucket_for(pos + 1, self.buckets) if self.buckets != [0] else 0

    def capture_view(self, key: Hashable) -> InferenceCache:
        """Move the cache to the last position of bucket ``key``; the object the step should see."""
        if key == 0:
            _seek(self.cache, 0)
            return self.cache
        _seek(self.cache, int(key) - 1)  # type: ignore[call-overload]
        return kv_view(self.cache, int(key))  # type: ignore[call-overload]

    def advance_host(self) -> None:
        self.cache.seqlen_offset += 1


@dataclass
class MegaByteCachePlan:
    """Graph keys of a MegaByte cache: (in-patch offset j of the predicted byte, global bucket)."""

    cache: MegaByteCache
    patch_size: int

    def __post_init__(self) -> None:
        self.buckets = bucket_lengths(self.cache.global_cache.max_seqlen)

    def key(self, pos: int) -> Hashable:
        P = self.patch_size
        j = (pos + 1) % P
        return (0, bucket_for((pos + 1) // P + 1, self.buckets)) if j == 0 else (j, 0)

    def capture_view(self, key: Hashable) -> MegaByteCache:
        j, bucket = key  # type: ignore[misc]
        P = self.patch_size
        pos = P * (bucket - 1) - 1 if j == 0 else j - 1  # a byte position whose step has this key
        self.cache.seqlen_offset = pos
        _seek(self.cache.global_cache, (pos + 1) // P)
        if j != 0:
            return self.cache
        return replace(self.cache, global_cache=kv_view(self.cache.global_cache, bucket))

    def advance_host(self) -> None:
        self.cache.seqlen_offset += 1


Plan = InferenceCachePlan | MegaByteCachePlan


def plan_for(model: Any, cache: Any) -> Plan:
    """The graph plan for a model's cache; TypeError for a cache this module does not know."""
    if isinstance(cache, MegaByteCache):
        return MegaByteCachePlan(cache, model.cfg.patch_size)
    if isinstance(cache, InferenceCache):
        return InferenceCachePlan(cache)
    raise TypeError(f"no CUDA-graph plan for a {type(cache).__name__}")


def keys_for(plan: Plan, positions: Iterable[int]) -> list[Hashable]:
    """Distinct keys of the steps consuming ``positions``, in first-use order."""
    return list(dict.fromkeys(plan.key(p) for p in positions))


def capture_graphs(
    step_body: Callable[[Any], None],
    plan: Plan,
    keys: list[Hashable],
    before_each: Callable[[], None],
    n_warmup: int = 2,
) -> dict[Hashable, torch.cuda.CUDAGraph]:
    """Capture ``step_body(cache_view)`` once per key (warm-up on a side stream first).

    ``before_each`` puts the decoder's own buffers (step counter ...) in a valid state before
    every warm-up or captured call. The caller resets the caches afterwards."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for key in keys:
            for _ in range(n_warmup):
                view = plan.capture_view(key)
                before_each()
                step_body(view)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    pool = torch.cuda.graph_pool_handle()
    graphs: dict[Hashable, torch.cuda.CUDAGraph] = {}
    for key in keys:
        view = plan.capture_view(key)
        before_each()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            step_body(view)
        graphs[key] = graph
    torch.cuda.synchronize()
    return graphs
