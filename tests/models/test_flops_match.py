"""FLOPs-per-byte matching and the byte-level model sets."""

from __future__ import annotations

import pytest

from ssmbench.errors import BadInput
from ssmbench.models.byte_sets import BYTE_MODEL_SETS, SMALL
from ssmbench.models.config import LMConfig, MegaByteConfig, ModelSet
from ssmbench.models.flops_match import _knob, _pattern_unit, match_flops, match_model_set
from ssmbench.models.size import flops_per_token

REF = LMConfig(vocab_size=256, d_model=64, pattern=("mamba",) * 6)
TRANSFORMER = LMConfig(vocab_size=256, d_model=64, pattern=("attn", "ff") * 1, n_heads=4, d_ff=256)
MEGA = MegaByteConfig(
    patch_size=4, d_global=128, n_global_layers=2, n_global_heads=4, d_local=64, n_local_layers=1,
    n_local_heads=4,
)  # fmt: skip


def test_pattern_unit() -> None:
    assert _pattern_unit(("attn", "ff") * 3) == ("attn", "ff")
    assert _pattern_unit(("mamba",) * 5) == ("mamba",)
    assert _pattern_unit(("attn", "ff", "mamba")) == ("attn", "ff", "mamba")


@pytest.mark.parametrize("target,vary", [(TRANSFORMER, "layers"), (MEGA, "layers"), (TRANSFORMER, "width")])
def test_match_is_the_closest_choice(target, vary) -> None:
    m = match_flops(REF, target, seq_len=64, vary=vary)
    ref = flops_per_token(REF, 64)
    assert m.reference_flops_per_byte == ref and m.flops_per_byte == flops_per_token(m.config, 64)
    assert abs(m.rel_diff) < 0.35
    # no neighbouring size is closer
    _, make, step = _knob(target, vary)
    for other in (m.value - step, m.value + step):
        if other >= 1:
            assert abs(flops_per_token(make(other), 64) - ref) >= abs(m.flops_per_byte - ref)


def test_match_model_set_keeps_reference_and_errors() -> None:
    ms = ModelSet("t", "test", (("mambabyte", REF), ("byte-transformer", TRANSFORMER)), seq_len=64)
    new, matches = match_model_set(ms, "mambabyte")
    assert new.get("mambabyte") == REF and set(matches) == {"byte-transformer"}
    assert new.get("byte-transformer").pattern == matches["byte-transformer"].config.pattern
    with pytest.raises(BadInput, match="not in"):
        match_model_set(ms, "nope")
    with pytest.raises(BadInput, match="MegaByte"):
        match_flops(REF, TRANSFORMER, seq_len=64, vary="global-layers")
    with pytest.raises(BadInput, match="unknown --vary"):
        match_flops(REF, TRANSFORMER, seq_len=64, vary="depth")


def test_byte_model_sets() -> None:
    for name in ("bytes-smoke", "bytes-small", "bytes-paper", "gen-smoke", "gen-small", "gen-paper"):
        assert name in BYTE_MODEL_SETS
    assert BYTE_MODEL_SETS["bytes-smoke"].names() == ["mambabyte", "megabyte", "byte-transformer"]
    paper = BYTE_MODEL_SETS["bytes-paper"]
    assert paper.get("mambabyte-353m").d_model == 1024 and len(paper.get("mambabyte-353m").pattern) == 53
    assert paper.get("mambabyte-972m").d_model == 1792 and len(paper.get("mambabyte-972m").pattern) == 48
    mega = paper.get("megabyte-758m-262m")
    assert (mega.patch_size, mega.d_global, mega.d_local) == (8, 2048, 1024)
    # bytes-small is FLOPs-matched to its MambaByte within 10% at its context
    ref = flops_per_token(SMALL[0][1], 2048)
    for _, cfg in SMALL[1:]:
        assert abs(flops_per_token(cfg, 2048) / ref - 1) < 0.1
