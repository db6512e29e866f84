"""Models composed from attnlab.attention and attnlab.memory: composition only, no new maths."""

from attnlab.models.transformer import (
    Decoder,
    DecoderLayer,
    DecoderLM,
    Encoder,
    EncoderDecoder,
    EncoderLayer,
    TransformerConfig,
)

__all__ = ["Decoder", "DecoderLM", "DecoderLayer", "Encoder", "EncoderDecoder", "EncoderLayer", "TransformerConfig"]
