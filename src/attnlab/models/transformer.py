"""Transformer stacks (Vaswani et al. 2017), composed from attnlab.attention: no new maths here.

    post-norm (the paper, section 3.1):  x = LN(x + Sublayer(x))
    pre-norm  (Xiong et al. 2020):       x = x + Sublayer(LN(x)), one more LN after the stack

EncoderLayer     self-attention + feed-forward (a causal stack of them is a decoder-only LM)
DecoderLayer     causal self-attention + cross-attention to the encoder + feed-forward
Encoder/Decoder  stacks of those; EncoderDecoder and DecoderLM add embeddings, positions and a head.

TransformerConfig holds the sizes of the stacks; what the task decides (vocabularies, the longest
sequence, the padding id) is given to DecoderLM and EncoderDecoder as arguments.

Every attention module is a MultiHeadAttention, so `attnlab.core.capture(model)` records the
per-head weights of every layer ("self" and "cross").

Decoding (the KV caches, the single-token step, `generate` and its "eager", "fast" and "compiled"
paths) lives in attnlab.models.transformer_decoding: DecoderLM mixes in its `LMDecoding`,
EncoderDecoder its `EncDecDecoding`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.multihead import MultiHeadAttention
from attnlab.attention.positions import POSITIONS, Positions, build_positions
from attnlab.core import key_mask
from attnlab.models.transformer_decoding import DecoderCache, EncDecDecoding, LMDecoding, SelfCache
from attnlab.spec import PAD

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


@dataclass(frozen=True)
class TransformerConfig:
    """Sizes of a transformer stack; vocabularies, max_len and pad_id are the model's arguments."""

    embed_dim: int = 128  # d, the model dim
    num_heads: int = 4  # h, attention heads
    num_kv_heads: int | None = None  # hk, key/value heads for grouped-query attention; None = h
    num_layers: int = 2  # encoder layers (decoder layers of a decoder-only LM)
    num_decoder_layers: int | None = None  # decoder layers of an encoder-decoder; None = num_layers
    ff_dim: int = 512  # hidden width of the feed-forward sublayer
    dropout: float = 0.1  # on attention weights, sublayer outputs and embeddings
    ff_dropout: float | None = None  # after the feed-forward activation; None = dropout, 0 = none (as BERT)
    activation: str = "gelu"  # feed-forward nonlinearity: relu or gelu
    norm_first: bool = True  # pre-norm (True) or the paper's post-norm (False)
    positions: str = "sinusoidal"  # positional scheme, a name in attnlab.attention.POSITIONS
    bias: bool = True  # biases in the projections and feed-forward
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon
    tie_embeddings: bool = True  # output head shares the (target) embedding matrix
    short_conv: int = 0  # k > 0: a ShortConv over k positions before each encoder layer's attention; 0: none

    def __post_init__(self) -> None:
        for name in ("embed_dim", "num_heads", "num_kv_heads", "num_layers", "num_decoder_layers", "ff_dim"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"TransformerConfig.{name}: must be >= 1; got {value}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"TransformerConfig.activation: {self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        if self.positions not in POSITIONS:
            raise ValueError(f"TransformerConfig.positions: {self.positions!r} is not one of {sorted(POSITIONS)}")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"TransformerConfig.embed_dim: {self.embed_dim} is not divisible by num_heads {self.num_heads}"
            )
        for name in ("dropout", "ff_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"TransformerConfig.{name}: must be in [0, 1); got {value}")
        if self.short_conv < 0:
            raise ValueError(f"TransformerConfig.short_conv: must be >= 0 (0: none); got {self.short_conv}")


class FeedForward(nn.Module):
    """Position-wise feed-forward: linear2(dropout(act(linear1(x)))), (b, t, d) -> (b, t, d)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.linear1 = nn.Linear(cfg.embed_dim, cfg.ff_dim, bias=cfg.bias)
        self.linear2 = nn.Linear(cfg.ff_dim, cfg.embed_dim, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout if cfg.ff_dropout is None else cfg.ff_dropout)
        self.act = ACTIVATIONS[cfg.activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.act(self.linear1(x))))  # (b, t, d)


def _attention(cfg: TransformerConfig) -> MultiHeadAttention:
    return MultiHeadAttention(
        cfg.embed_dim, cfg.num_heads, num_kv_heads=cfg.num_kv_heads, bias=cfg.bias, dropout=cfg.dropout
    )


class _Sublayers(nn.Module):
    """Residual wiring shared by both layer kinds: pre-norm or post-norm around each sublayer."""

    def __init__(self, cfg: TransformerConfig, count: int):
        super().__init__()
        self.norm_first = cfg.norm_first
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps) for _ in range(count))
        self.drops = nn.ModuleList(nn.Dropout(cfg.dropout) for _ in range(count))

    def residual(self, n: int, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        if self.norm_first:
            return x + self.drops[n](sublayer(self.norms[n](x)))
        return self.norms[n](x + self.drops[n](sublayer(x)))


class ShortConv(nn.Module):
    """A depthwise convolution over positions: each feature mixes its own values at k positions,
    centred on the position (the extra one to the right for an even k) or, causal, the k - 1 before
    it and itself.

    Zoology's attention baseline for multi-query recall (Arora et al. 2023) puts one of width 3
    before each attention layer: every position then holds its neighbours' tokens, which a head
    would otherwise have to learn to fetch (the slow first step of the recall circuit).
    """

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(dim, dim, kernel, groups=dim)

    def forward(self, x: Tensor, keep: Tensor | None = None, causal: bool = False) -> Tensor:
        """x (b, t, d) -> (b, t, d); keep (b, t) bool: positions outside it (padding) count as zeros."""
        if keep is not None:
            x = x * keep[..., None].to(x.dtype)  # (b, t, d)
        k = self.kernel
        left = k - 1 if causal else (k - 1) // 2
        padded = F.pad(x.transpose(1, 2), (left, k - 1 - left))  # (b, d, t + k - 1)
        return self.conv(padded).transpose(1, 2)  # (b, t, d)


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward (after a ShortConv when cfg.short_conv). With causal=True, a
    decoder-only LM block."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attn = _attention(cfg)
        self.ff = FeedForward(cfg)
        self.conv = ShortConv(cfg.embed_dim, cfg.short_conv) if cfg.short_conv else None
        self.sub = _Sublayers(cfg, 3 if self.conv is not None else 2)  # the convolution's is the third

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        causal: bool = False,
        positions: Positions | None = None,
        cache: SelfCache | None = None,
    ) -> Tensor:
        """x (b, t, d) -> (b, t, d); mask, bias, causal, positions and cache as in MultiHeadAttention.

        With a ShortConv, a key mask (b, 1, 1, t) also zeroes the padding it sees; a cache is refused
        (the convolution's window of earlier positions is not kept)."""
        if self.conv is not None:
            if cache is not None:
                raise ValueError("TransformerConfig.short_conv: decoding with a KV cache is not supported")
            keep = None
            if mask is not None and mask.dtype == torch.bool and mask.shape[1:] == (1, 1, x.shape[1]):
                keep = mask[:, 0, 0]  # (b, t)
            conv = self.conv
            x = self.sub.residual(2, x, lambda y: conv(y, keep, causal))
        x = self.sub.residual(
            0, x, lambda y: self.attn(y, mask=mask, bias=bias, causal=causal, positions=positions, cache=cache)
        )
        return self.sub.residual(1, x, self.ff)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder output, feed-forward."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.self_attn = _attention(cfg)
        self.cross_attn = _attention(cfg)
        self.ff = FeedForward(cfg)
        self.sub = _Sublayers(cfg, 3)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        *,
        self_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        bias: Tensor | None = None,
        positions: Positions | None = None,
        cache: DecoderCache | None = None,
    ) -> Tensor:
        """x (b, t, d), memory (b, s, d) -> (b, t, d). memory_mask broadcasts to (b, h, t, s)."""
        self_cache, cross_cache = (None, None) if cache is None else (cache.self_attn, cache.cross_attn)
        x = self.sub.residual(
            0,
            x,
            lambda y: self.self_attn(y, mask=self_mask, bias=bias, causal=True, positions=positions, cache=self_cache),
        )
        x = self.sub.residual(1, x, lambda y: self.cross_attn(y, memory, mask=memory_mask, cache=cross_cache))
        return self.sub.residual(2, x, self.ff)


class _Stack(nn.Module):
    """Layers of one kind, the final LayerNorm of a pre-norm stack, and the shared positional bias."""

    layer_type: type[nn.Module]

    def __init__(self, cfg: TransformerConfig, num_layers: int | None = None):
        super().__init__()
        n = cfg.num_layers if num_layers is None else num_layers
        self.layers = nn.ModuleList(self.layer_type(cfg) for _ in range(n))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps) if cfg.norm_first else nn.Identity()

    @staticmethod
    def _bias(positions: Positions | None, i: int, offset: int) -> Tensor | None:
        """The positional bias of i new queries after `offset` cached positions, once for all layers."""
        return None if positions is None else positions.bias(i, i + offset)  # (h, i, j) or None


class Encoder(_Stack):
    """A stack of EncoderLayers."""

    layer_type = EncoderLayer

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        causal: bool = False,
        positions: Positions | None = None,
        caches: Sequence[SelfCache] | None = None,
    ) -> Tensor:
        """x (b, t, d) already embedded -> (b, t, d). `caches`: one cache per layer, for decoding."""
        bias = self._bias(positions, x.shape[1], 0 if caches is None else caches[0].length)
        for n, layer in enumerate(self.layers):
            cache = None if caches is None else caches[n]
            x = layer(x, mask=mask, bias=bias, causal=causal, positions=positions, cache=cache)
        return self.norm(x)


class Decoder(_Stack):
    """A stack of DecoderLayers."""

    layer_type = DecoderLayer

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        *,
        self_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        positions: Positions | None = None,
        caches: Sequence[DecoderCache] | None = None,
    ) -> Tensor:
        """x (b, t, d) embedded targets, memory (b, s, d) -> (b, t, d)."""
        bias = self._bias(positions, x.shape[1], 0 if caches is None else caches[0].self_attn.length)
        for n, layer in enumerate(self.layers):
            cache = None if caches is None else caches[n]
            x = layer(
                x, memory, self_mask=self_mask, memory_mask=memory_mask, bias=bias, positions=positions, cache=cache
            )
        return self.norm(x)


class TokenEmbedding(nn.Embedding):
    """Token ids (b, t) -> vectors (b, t, d), initialised N(0, 1/d) (and tied to the output head).

    At GPT-2's N(0, 0.02^2) the sinusoidal table (each feature in [-1, 1]) outweighed the tokens
    about 35 to 1 at d = 64, and a decoder-only LM could not even tell which values were in its
    context (associative recall stayed at the uniform loss, ln 16). Vaswani et al.'s remedy (3.4),
    N(0, 1/d) times sqrt(d), fixes that LM but, with the head tied, stalled the small encoder-decoder
    on the generated language pair (test BLEU 0.9 after the tour's 500 steps at lr 3e-3, and 0.3 at
    1e-3). N(0, 1/d) alone does both: that pair reached 69.4 (27.7 at 0.02, 42.3 at 0.02 times
    sqrt(d)), and the LM learns which values its context holds (loss 1.62 against 2.75 after 600
    steps of 4-pair recall).
    """

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=self.embedding_dim**-0.5)
        self._fill_padding_idx_with_zero()


def _causal(cfg: TransformerConfig) -> dict[str, bool]:
    """The positional scheme's arguments for a causal stack: T5's buckets for past offsets only (its
    decoder's), since a causal query never sees a later key; nothing for the other schemes."""
    return {"bidirectional": False} if cfg.positions == "t5" else {}


def _init_weights(module: nn.Module) -> None:
    """GPT-2's N(0, 0.02^2) for linear layers and embeddings (TokenEmbedding keeps its own), zero biases."""
    for m in module.modules():
        if isinstance(m, TokenEmbedding):
            m.reset_parameters()
        elif isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def _loss(logits: Tensor, targets: Tensor | None, pad_id: int) -> Tensor | None:
    if targets is None:
        return None
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=pad_id)


class DecoderLM(LMDecoding):
    """Decoder-only language model: a causal stack of EncoderLayers with a tied output head.

    Args:
        cfg: the stack's sizes.
        vocab_size: V, token ids lie in [0, V).
        max_len: the longest sequence (prompt and continuation) the positional scheme prepares for.
        pad_id: token id of padding: never a target of the loss.
    """

    def __init__(self, cfg: TransformerConfig, vocab_size: int, *, max_len: int = 1024, pad_id: int = PAD):
        super().__init__()
        self.config = cfg
        self.vocab_size, self.max_len, self.pad_id = vocab_size, max_len, pad_id
        self.embed = TokenEmbedding(vocab_size, cfg.embed_dim)
        self.positions = build_positions(
            cfg.positions, embed_dim=cfg.embed_dim, num_heads=cfg.num_heads, max_len=max_len, **_causal(cfg)
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = Encoder(cfg)
        self.head = nn.Linear(cfg.embed_dim, vocab_size, bias=False)
        _init_weights(self)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        *,
        caches: Sequence[SelfCache] | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """idx (b, t) token ids -> (logits (b, t, V), loss or None). targets (b, t), pad_id ignored.

        mask: (b, 1, 1, j) keys that may be attended on top of the causal mask (e.g. not left
        padding), j counting the cached keys too.
        """
        logits = self.head(self.hidden(idx, caches=caches, mask=mask))  # (b, t, V)
        return logits, _loss(logits, targets, self.pad_id)

    def hidden(self, idx: Tensor, *, caches: Sequence[SelfCache] | None = None, mask: Tensor | None = None) -> Tensor:
        """idx (b, t) token ids -> the last layer's states (b, t, d), before the head; mask as in forward."""
        offset = 0 if caches is None else caches[0].length
        x = self.drop(self.positions.embed(self.embed(idx), offset))  # (b, t, d)
        return self.blocks(x, mask=mask, causal=True, positions=self.positions, caches=caches)  # (b, t, d)

    def self_attentions(self) -> list[MultiHeadAttention]:
        """Each layer's self-attention, first layer first: one cache each."""
        return [cast(EncoderLayer, layer).attn for layer in self.blocks.layers]


class EncoderDecoder(EncDecDecoding):
    """The original transformer: encoder over the source, decoder with cross-attention over it.

    Args:
        cfg: the stacks' sizes.
        src_vocab_size: source token ids lie in [0, src_vocab_size).
        tgt_vocab_size: target token ids lie in [0, tgt_vocab_size).
        max_len: the longest source or target sequence the positional schemes prepare for.
        pad_id: token id of padding in both: never attended, never a target.
    """

    def __init__(
        self,
        cfg: TransformerConfig,
        src_vocab_size: int,
        tgt_vocab_size: int,
        *,
        max_len: int = 1024,
        pad_id: int = PAD,
    ):
        super().__init__()
        self.config = cfg
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.max_len, self.pad_id = max_len, pad_id
        self.src_embed: nn.Module = TokenEmbedding(src_vocab_size, cfg.embed_dim)
        self.tgt_embed = TokenEmbedding(tgt_vocab_size, cfg.embed_dim)
        self.src_positions = build_positions(
            cfg.positions, embed_dim=cfg.embed_dim, num_heads=cfg.num_heads, max_len=max_len
        )
        self.tgt_positions = build_positions(
            cfg.positions, embed_dim=cfg.embed_dim, num_heads=cfg.num_heads, max_len=max_len, **_causal(cfg)
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg, cfg.num_decoder_layers)
        self.head = nn.Linear(cfg.embed_dim, tgt_vocab_size, bias=False)
        _init_weights(self)
        if cfg.tie_embeddings:
            self.head.weight = self.tgt_embed.weight

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """src (b, s) -> (memory (b, s, d), memory mask (b, 1, 1, s), True for non-pad tokens)."""
        mask = key_mask(src != self.pad_id)  # (b, 1, 1, s)
        x = self.drop(self.src_positions.embed(self.src_embed(src)))  # (b, s, d)
        return self.encoder(x, mask=mask, positions=self.src_positions), mask

    def decode(
        self, tgt: Tensor, memory: Tensor, memory_mask: Tensor, caches: Sequence[DecoderCache] | None = None
    ) -> Tensor:
        """tgt (b, t) target ids so far -> logits (b, t, V_tgt)."""
        offset = 0 if caches is None else caches[0].self_attn.length
        x = self.drop(self.tgt_positions.embed(self.tgt_embed(tgt), offset))  # (b, t, d)
        x = self.decoder(x, memory, memory_mask=memory_mask, positions=self.tgt_positions, caches=caches)
        return self.head(x)  # (b, t, V_tgt)

    def decoder_attentions(self) -> list[tuple[MultiHeadAttention, MultiHeadAttention]]:
        """Each decoder layer's (self-attention, cross-attention), first layer first."""
        return [
            (cast(DecoderLayer, layer).self_attn, cast(DecoderLayer, layer).cross_attn) for layer in self.decoder.layers
        ]

    def forward(self, src: Tensor, tgt: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: src (b, s), tgt (b, t) decoder inputs, targets (b, t) -> (logits, loss)."""
        memory, mask = self.encode(src)
        logits = self.decode(tgt, memory, mask)
        return logits, _loss(logits, targets, self.pad_id)
