"""Models composed from attnlab.attention and attnlab.memory: composition only, no new maths.

Importing this package registers every family in MODELS; build one with `build_model(name, config, spec)`.
"""

from attnlab.models import (  # noqa: F401  (registers the families)
    bahdanau,
    baselines,
    captioning,
    glimpse,
    luong,
    machines,
    memory,
    seq2seq,
    sequence,
    vision,
)
from attnlab.models.baselines import AnswerHead, InputEmbedding
from attnlab.models.registry import MODELS, TaskModel, build_model
from attnlab.models.transformer import (
    Decoder,
    DecoderLayer,
    DecoderLM,
    Encoder,
    EncoderDecoder,
    EncoderLayer,
    TransformerConfig,
)
from attnlab.spec import PAD, TaskSpec

__all__ = [
    "MODELS",
    "PAD",
    "AnswerHead",
    "Decoder",
    "DecoderLM",
    "DecoderLayer",
    "Encoder",
    "EncoderDecoder",
    "EncoderLayer",
    "InputEmbedding",
    "TaskModel",
    "TaskSpec",
    "TransformerConfig",
    "build_model",
]
