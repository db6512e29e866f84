"""Attention mechanisms: projections and positions around one call to attnlab.core.attend."""

from attnlab.attention.additive import LUONG_METHODS, AdditiveAttention, LuongAttention
from attnlab.attention.multihead import KVCache, MultiHeadAttention, StaticKVCache, torch_masks_to_attend
from attnlab.attention.positions import (
    POSITIONS,
    AlibiPositions,
    LearnedPositions,
    Positions,
    RotaryPositions,
    SinusoidalPositions,
    T5Positions,
    alibi_slopes,
    build_positions,
    t5_bucket,
)

__all__ = [
    "LUONG_METHODS",
    "POSITIONS",
    "AdditiveAttention",
    "AlibiPositions",
    "KVCache",
    "LearnedPositions",
    "LuongAttention",
    "MultiHeadAttention",
    "Positions",
    "RotaryPositions",
    "SinusoidalPositions",
    "StaticKVCache",
    "T5Positions",
    "alibi_slopes",
    "build_positions",
    "t5_bucket",
    "torch_masks_to_attend",
]
