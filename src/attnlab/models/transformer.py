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

Decoding paths (attnlab.core.fast; `generate` follows the model's `path`, and runs "eager" whenever
a trace is attached):

    "eager"     each step appends its keys/values to a KVCache (a concatenation per step)
    "fast"      StaticKVCache buffers allocated once for the whole sequence, written in place
    "compiled"  the same, with the single-token step (`decode_step`) through torch.compile

Greedy decoding (temperature 0, no top_k) on "fast" and "compiled" takes the argmax of a large head
through an int8 screen with exact fp32 rescoring (attnlab.models.greedy_head): same tokens, about a
quarter of the head's bytes read per token; the step then returns the final state (`decode_hidden`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.multihead import KVCache, MultiHeadAttention, StaticKVCache
from attnlab.attention.positions import POSITIONS, Positions, build_positions
from attnlab.core import Traced, key_mask
from attnlab.core.fast import FastPath, compiled
from attnlab.models.greedy_head import ScreenedHead, kept_screened_head, screen_available, screen_pays
from attnlab.spec import PAD

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}
SelfCache = KVCache | StaticKVCache  # a self-attention layer's cache: grown by concatenation, or preallocated


def tracing(module: nn.Module) -> bool:
    """True while a trace is attached to any attention module inside `module` (run the eager step then)."""
    return any(isinstance(m, Traced) and m.tracing for m in module.modules())


def lazy_compiled(owner: Any, attr: str, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """`compiled(fn, name)`, made on the first call and kept on `owner` (one compiled step per module).

    Dropout masks in the compiled graph are drawn by aten's bernoulli, as in eager mode: inductor's
    own generator is several times slower on a CPU (a third of a BERT-sized training step), and
    with it a compiled step draws the same masks as the eager one from the same seed.
    """
    step = owner.__dict__.get(attr)
    if step is None:
        fast = compiled(fn, name)

        def step(*args: Any) -> Any:
            if not owner.training:  # no dropout to draw
                return fast(*args)
            import torch._inductor.config as inductor  # loaded by torch.compile already

            with inductor.patch(fallback_random=True):
                return fast(*args)

        owner.__dict__[attr] = step
    return step


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


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward. With causal=True, a decoder-only LM block."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attn = _attention(cfg)
        self.ff = FeedForward(cfg)
        self.sub = _Sublayers(cfg, 2)

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
        """x (b, t, d) -> (b, t, d); mask, bias, causal, positions and cache as in MultiHeadAttention."""
        x = self.sub.residual(
            0, x, lambda y: self.attn(y, mask=mask, bias=bias, causal=causal, positions=positions, cache=cache)
        )
        return self.sub.residual(1, x, self.ff)


@dataclass
class DecoderCache:
    """A decoder layer's caches: its own keys/values, and the encoder's projected once."""

    self_attn: SelfCache = field(default_factory=KVCache)
    cross_attn: KVCache = field(default_factory=lambda: KVCache(static=True))

    def select(self, index: Tensor) -> DecoderCache:
        """A new cache holding the rows `index` (b',) of this one: beams expanded or reordered."""
        return DecoderCache(self.self_attn.select(index), self.cross_attn.select(index))


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


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def _loss(logits: Tensor, targets: Tensor | None, pad_id: int) -> Tensor | None:
    if targets is None:
        return None
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=pad_id)


def _next_token(logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None) -> Tensor:
    """Pick the next token from (b, V) logits: argmax when temperature == 0, else sample.

    Sampling uses the Gumbel-max trick: argmax(logits / T + Gumbel noise) is distributed as the
    softmax of logits / T, without forming the probabilities.
    """
    if temperature == 0:
        return logits.argmax(-1)  # (b,)
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]  # (b, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(min=1e-20)  # (b, V)
    return (logits - torch.log(-torch.log(u))).argmax(-1)  # (b,)


class DecoderLM(FastPath, nn.Module):
    """Decoder-only language model: a causal stack of EncoderLayers with a tied output head.

    Args:
        cfg: the stack's sizes.
        vocab_size: V, token ids lie in [0, V).
        max_len: the longest sequence (prompt and continuation) the positional scheme prepares for.
        pad_id: token id of padding: never a target of the loss.
    """

    fast_step_name = "static KV cache decoding"
    greedy_screen: bool | None = None  # greedy fast decoding's int8-screened head: None = where it pays

    def __init__(self, cfg: TransformerConfig, vocab_size: int, *, max_len: int = 1024, pad_id: int = PAD):
        super().__init__()
        self.config = cfg
        self.vocab_size, self.max_len, self.pad_id = vocab_size, max_len, pad_id
        self.embed = nn.Embedding(vocab_size, cfg.embed_dim)
        self.positions = build_positions(
            cfg.positions, embed_dim=cfg.embed_dim, num_heads=cfg.num_heads, max_len=max_len
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

    def decode_step(
        self, idx: Tensor, caches: Sequence[SelfCache], mask: Tensor | None = None, head_t: Tensor | None = None
    ) -> Tensor:
        """Feed idx (b, t) after the cached positions -> logits (b, V) of its last position; caches grow by t.

        head_t: the head's weight as `head_transposed()` gives it (d, V), for the same logits faster.
        """
        x = self.decode_hidden(idx, caches, mask)  # (b, d)
        return self.head(x) if head_t is None else x @ head_t  # (b, V)

    def decode_hidden(self, idx: Tensor, caches: Sequence[SelfCache], mask: Tensor | None = None) -> Tensor:
        """decode_step before the head: the last position's final state (b, d)."""
        return self.hidden(idx, caches=caches, mask=mask)[:, -1]  # (b, d)

    def screened_head(self) -> ScreenedHead | None:
        """The head's int8-screened argmax for greedy decoding (remade only when W changes), or None.

        `greedy_screen` decides: None uses it where it pays (V * d >= MIN_SCREENED_WEIGHTS), True
        wherever it is available, False never. Either way the tokens are those of the fp32 head.
        """
        w = self.head.weight
        use = screen_pays(w) if self.greedy_screen is None else self.greedy_screen and screen_available(w) is None
        return kept_screened_head(self, w) if use else None

    def head_transposed(self) -> Tensor:
        """The head's weight W (V, d) as a contiguous W^T (d, V), remade only when W changes.

        x W^T for a few rows reads W^T in memory order and runs about twice as fast on a CPU as
        F.linear over W, which matters when the head is the largest matrix (GPT-2's: 50257 x d).
        """
        w = self.head.weight
        key = (w.data_ptr(), w._version, w.dtype, w.device)
        kept = self.__dict__.get("_head_t")
        if kept is None or kept[0] != key:
            kept = (key, w.detach().t().contiguous())  # (d, V)
            self.__dict__["_head_t"] = kept
        return kept[1]

    def token_step(self) -> Callable[..., Tensor]:
        """`decode_step`, compiled on the "compiled" path (eager whenever a trace is attached)."""
        if self.path == "compiled" and not tracing(self):
            return lazy_compiled(self, "_compiled_step", self.decode_step, "DecoderLM.decode_step")
        return self.decode_step

    def hidden_step(self) -> Callable[..., Tensor]:
        """`decode_hidden`, compiled on the "compiled" path (the screened head runs outside the graph)."""
        if self.path == "compiled" and not tracing(self):
            return lazy_compiled(self, "_compiled_hidden", self.decode_hidden, "DecoderLM.decode_hidden")
        return self.decode_hidden

    def new_caches(self) -> list[KVCache]:
        """An empty KVCache per layer, grown by concatenation (the eager decoding path)."""
        return [KVCache() for _ in self.blocks.layers]

    def static_caches(self, batch_size: int, capacity: int) -> list[StaticKVCache]:
        """A StaticKVCache per layer for `capacity` positions of `batch_size` rows, allocated once."""
        attn = cast(EncoderLayer, self.blocks.layers[0]).attn
        return [
            StaticKVCache.empty(batch_size, attn.num_kv_heads, capacity, attn.head_dim, like=self.embed.weight)
            for _ in self.blocks.layers
        ]

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Continue the prompts idx (b, t) by max_new_tokens tokens -> (b, t + max_new_tokens).

        temperature 0 is greedy. With use_cache, the prompt is run once and each step feeds only
        the newest token, reusing every layer's cached keys and values: KVCaches that grow on the
        "eager" path, StaticKVCaches for the whole sequence on "fast" and "compiled".
        """
        if use_cache and self.path != "eager" and not tracing(self):
            return self._generate_static(idx, max_new_tokens, temperature, top_k, generator)
        caches = self.new_caches() if use_cache else None
        logits, _ = self(idx, caches=caches)  # (b, t, V)
        for _ in range(max_new_tokens):
            nxt = _next_token(logits[:, -1], temperature, top_k, generator)  # (b,)
            idx = torch.cat([idx, nxt[:, None]], dim=1)  # (b, t + 1)
            logits, _ = self(nxt[:, None], caches=caches) if use_cache else self(idx)
        return idx

    def _generate_static(
        self, idx: Tensor, max_new_tokens: int, temperature: float, top_k: int | None, generator: torch.Generator | None
    ) -> Tensor:
        """generate with StaticKVCaches and a preallocated output; the prompt runs uncompiled (its length varies)."""
        b, t = idx.shape
        total = t + max_new_tokens
        out = idx.new_empty(b, total)  # (b, t + n)
        out[:, :t] = idx
        head = self.screened_head() if temperature == 0 and top_k is None else None
        if head is not None:  # greedy: only the final state crosses from the step to the head
            caches, hidden_step = self.static_caches(b, total), self.hidden_step()
            x = self.decode_hidden(idx, caches)  # (b, d)
            for n in range(t, total):
                nxt = head.argmax(x)  # (b,)
                out[:, n] = nxt
                if n + 1 < total:
                    x = hidden_step(nxt[:, None], caches, None)  # (b, d)
            return out
        caches, head_t = self.static_caches(b, total), self.head_transposed()
        step = self.token_step()
        logits = self.decode_step(idx, caches, head_t=head_t)  # (b, V)
        for n in range(t, total):
            nxt = _next_token(logits, temperature, top_k, generator)  # (b,)
            out[:, n] = nxt
            if n + 1 < total:  # the last token's logits are never used
                logits = step(nxt[:, None], caches, None, head_t)  # (b, V)
        return out


class EncoderDecoder(FastPath, nn.Module):
    """The original transformer: encoder over the source, decoder with cross-attention over it.

    Args:
        cfg: the stacks' sizes.
        src_vocab_size: source token ids lie in [0, src_vocab_size).
        tgt_vocab_size: target token ids lie in [0, tgt_vocab_size).
        max_len: the longest source or target sequence the positional schemes prepare for.
        pad_id: token id of padding in both: never attended, never a target.
    """

    fast_step_name = "static KV cache decoding"

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
        self.src_embed: nn.Module = nn.Embedding(src_vocab_size, cfg.embed_dim)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, cfg.embed_dim)
        self.src_positions = build_positions(
            cfg.positions, embed_dim=cfg.embed_dim, num_heads=cfg.num_heads, max_len=max_len
        )
        self.tgt_positions = build_positions(
            cfg.positions, embed_dim=cfg.embed_dim, num_heads=cfg.num_heads, max_len=max_len
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

    def decode_step(self, tgt: Tensor, memory: Tensor, memory_mask: Tensor, caches: Sequence[DecoderCache]) -> Tensor:
        """Feed tgt (b, t) after the cached positions -> logits (b, V_tgt) of its last position."""
        return self.decode(tgt, memory, memory_mask, caches)[:, -1]  # (b, V_tgt)

    def token_step(self) -> Callable[..., Tensor]:
        """`decode_step`, compiled on the "compiled" path (eager whenever a trace is attached)."""
        if self.path != "compiled" or tracing(self):
            return self.decode_step
        fast = lazy_compiled(self, "_compiled_step", self.decode_step, "EncoderDecoder.decode_step")

        def step(tgt: Tensor, memory: Tensor, memory_mask: Tensor, caches: Sequence[DecoderCache]) -> Tensor:
            # The first step (nothing cached yet) runs uncompiled, like a prompt: a graph for an
            # empty cache would serve one step per sentence and cost a compile of its own.
            first = caches[0].self_attn.length == 0
            return (self.decode_step if first else fast)(tgt, memory, memory_mask, caches)

        return step

    def new_caches(self) -> list[DecoderCache]:
        """An empty DecoderCache per decoder layer, grown by concatenation (the eager decoding path)."""
        return [DecoderCache() for _ in self.decoder.layers]

    def static_caches(self, memory: Tensor, capacity: int | None = None) -> list[DecoderCache]:
        """Per decoder layer: a StaticKVCache for `capacity` target positions (default max_len) and
        the memory's (b, s, d) cross-attention keys and values, projected once."""
        capacity = self.max_len if capacity is None else capacity
        caches = []
        for layer in self.decoder.layers:
            attn, cross = cast(DecoderLayer, layer).self_attn, cast(DecoderLayer, layer).cross_attn
            own = StaticKVCache.empty(memory.shape[0], attn.num_kv_heads, capacity, attn.head_dim, like=memory)
            caches.append(DecoderCache(own, cross.memory_cache(memory)))
        return caches

    def forward(self, src: Tensor, tgt: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: src (b, s), tgt (b, t) decoder inputs, targets (b, t) -> (logits, loss)."""
        memory, mask = self.encode(src)
        logits = self.decode(tgt, memory, mask)
        return logits, _loss(logits, targets, self.pad_id)

    @torch.no_grad()
    def generate(self, src: Tensor, *, bos_id: int, eos_id: int, max_len: int, use_cache: bool = True) -> Tensor:
        """Greedy decoding from src (b, s) -> (b, <= max_len + 1) target ids starting with bos_id.

        A finished sentence (eos produced) is padded with pad_id; decoding stops when all are finished.
        With use_cache, KVCaches grow on the "eager" path; StaticKVCaches hold the whole output on
        "fast" and "compiled".
        """
        if use_cache and self.path != "eager" and not tracing(self):
            return self._generate_static(src, bos_id, eos_id, max_len)
        memory, mask = self.encode(src)
        out = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        caches = self.new_caches() if use_cache else None
        for _ in range(max_len):
            step_in = out[:, -1:] if use_cache else out
            logits = self.decode(step_in, memory, mask, caches)  # (b, t, V)
            nxt = logits[:, -1].argmax(-1).masked_fill(done, self.pad_id)  # (b,)
            out = torch.cat([out, nxt[:, None]], dim=1)  # (b, t + 1)
            done |= nxt == eos_id
            if bool(done.all()):
                break
        return out

    def _generate_static(self, src: Tensor, bos_id: int, eos_id: int, max_len: int) -> Tensor:
        """generate with StaticKVCaches and a preallocated output."""
        memory, mask = self.encode(src)
        b = src.shape[0]
        out = torch.full((b, max_len + 1), self.pad_id, dtype=torch.long, device=src.device)  # (b, n + 1)
        out[:, 0] = bos_id
        done = torch.zeros(b, dtype=torch.bool, device=src.device)  # (b,)
        caches = self.static_caches(memory, max_len)
        step = self.token_step()
        nxt = out[:, 0].clone()  # (b,) own storage: the compiled step always sees contiguous tokens
        for n in range(max_len):
            nxt = step(nxt[:, None], memory, mask, caches).argmax(-1).masked_fill(done, self.pad_id)  # (b,)
            out[:, n + 1] = nxt
            done |= nxt == eos_id
            if bool(done.all()):
                return out[:, : n + 2]
        return out
