"""Byte-level model sets (vocab 256): MambaByte, MegaByte and a byte-level Transformer.

MambaByte is the zoo's LM with pattern ("mamba",) * n (expand 2, N 16, conv 4, dt_rank
ceil(d / 16)). The byte Transformer is ("attn", "ff") * n with d_ff 4d. FLOPs per byte follow
``ssmbench.models.size.flops_per_token`` (a token is a byte; ``megabyte_flops_per_byte`` for
MegaByte); where a set says "matched", the sizes were chosen with ``match_flops(..., vary="layers")``
against its MambaByte at the set's context. MegaByte sizes "G+L" count the non-embedding
parameters of the global stack and of the local stack (``ssmbench.models.size.megabyte_stack_params``).

Sets for ``train-compare``: bytes-smoke, bytes-small, bytes-paper. Sets for ``gen-speed``:
gen-smoke, gen-small, gen-paper (the models the MEGABYTE/MambaByte speed claims are about).
"""

from __future__ import annotations

from ssmbench.models.config import LMConfig, MegaByteConfig, ModelSet


def mambabyte(d_model: int, n_layers: int) -> LMConfig:
    return LMConfig(vocab_size=256, d_model=d_model, pattern=("mamba",) * n_layers)


def byte_transformer(d_model: int, n_blocks: int, n_heads: int) -> LMConfig:
    return LMConfig(
        vocab_size=256, d_model=d_model, pattern=("attn", "ff") * n_blocks, n_heads=n_heads, d_ff=4 * d_model
    )


# tiny, for CPU tests: 0.29-0.44 MFLOP per byte at context 128 (not matched)
SMOKE = (
    ("mambabyte", mambabyte(64, 4)),
    ("megabyte", MegaByteConfig(
        patch_size=4, d_global=128, n_global_layers=2, n_global_heads=4,
        d_local=64, n_local_layers=2, n_local_heads=4,
    )),  # fmt: skip
    ("byte-transformer", byte_transformer(64, 2, 4)),
)

# one GPU, minutes: at context 2048 mambabyte 42.3 MFLOP per byte, megabyte 45.3 (+7%),
# byte-transformer 42.2
SMALL = (
    ("mambabyte", mambabyte(512, 12)),
    ("megabyte", MegaByteConfig(
        patch_size=8, d_global=1024, n_global_layers=6, n_global_heads=8,
        d_local=512, n_local_layers=4, n_local_heads=8,
    )),  # fmt: skip
    ("byte-transformer", byte_transformer(512, 4, 8)),
)

# 353.4M non-embedding; 0.719 GFLOP per byte at context 8192 (paper: ~0.71-0.73)
MAMBABYTE_353M = mambabyte(1024, 53)
# 973.0M non-embedding; 1.97 GFLOP per byte at context 8192
MAMBABYTE_972M = mambabyte(1792, 48)
# global 15 x d 2048 = 755.1M, local 21 x d 1024 = 264.3M: 0.735 GFLOP per byte at context 8192,
# 2.1% above MambaByte-353M (the paper compares the two at about equal FLOPs per byte)
MEGABYTE_758M_262M = MegaByteConfig(
    patch_size=8, d_global=2048, n_global_layers=15, n_global_heads=16,
    d_local=1024, n_local_layers=21, n_local_heads=16,
)  # fmt: skip
# global 26 x d 2048 = 1,308.8M, local 28 x d 1024 = 352.4M: 1.06 GFLOP per byte at context 8192
MEGABYTE_1_3B_350M = MegaByteConfig(
    patch_size=8, d_global=2048, n_global_layers=26, n_global_heads=16,
    d_local=1024, n_local_layers=28, n_local_heads=16,
)  # fmt: skip
# d 1024 x 25 blocks: 314.7M non-embedding, the closest block count to the paper's 320M;
# 0.735 GFLOP per byte at context 1024, 1.47 at 8192 (attention grows with the context)
TRANSFORMER_320M = byte_transformer(1024, 25, 16)

BYTE_MODEL_SETS: dict[str, ModelSet] = {
    "bytes-smoke": ModelSet(
        "bytes-smoke",
        "Tiny MambaByte, MegaByte (P 4) and byte Transformer for CPU tests.",
        SMOKE,
        seq_len=128,
    ),
    "bytes-small": ModelSet(
        "bytes-small",
        "MambaByte d512x12, MegaByte P8 (global d1024x6, local d512x4), byte Transformer d512x4; "
        "FLOPs per byte matched to MambaByte at context 2048 by layer count.",
        SMALL,
        seq_len=2048,
    ),
    "bytes-paper": ModelSet(
        "bytes-paper",
        "MambaByte paper sizes (arXiv 2401.13660): MambaByte-353M/972M, MegaByte-758M+262M (P 8, "
        "within 3% of MambaByte-353M's FLOPs per byte at 8192) and 1.3B+350M, byte Transformer ~320M; "
        "random init unless trained.",
        (
            ("mambabyte-353m", MAMBABYTE_353M),
            ("mambabyte-972m", MAMBABYTE_972M),
            ("megabyte-758m-262m", MEGABYTE_758M_262M),
            ("megabyte-1.3b-350m", MEGABYTE_1_3B_350M),
            ("transformer-320m", TRANSFORMER_320M),
        ),
        seq_len=8192,
    ),
    "gen-smoke": ModelSet(
        "gen-smoke", "The bytes-smoke models, for gen-speed on CPU in seconds.", SMOKE, seq_len=128
    ),
    "gen-small": ModelSet(
        "gen-small", "The bytes-small models, for gen-speed on one GPU in a minute.", SMALL, seq_len=8192
    ),
    "gen-paper": ModelSet(
        "gen-paper",
        "MambaByte-972M, MegaByte-1.3B+350M and the ~320M byte Transformer: the generation-speed "
        "comparison of the MEGABYTE and MambaByte papers (random init).",
        (
            ("mambabyte-972m", MAMBABYTE_972M),
            ("megabyte-1.3b-350m", MEGABYTE_1_3B_350M),
            ("transformer-320m", TRANSFORMER_320M),
        ),
        seq_len=8192,
    ),
}
