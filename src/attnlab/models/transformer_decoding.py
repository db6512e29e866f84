"""Decoding with a transformer's KV caches: DecoderLM's and EncoderDecoder's generate and steps.

DecoderLM (attnlab.models.transformer) mixes in `LMDecoding`, EncoderDecoder `EncDecDecoding`; each
model supplies its forward pass and its attention modules, the mixin the caches, the single-token
step and `generate`. Decoding paths (attnlab.core.fast; `generate` follows the model's `path`, and
runs "eager" whenever a trace is attached):

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
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.attention.multihead import KVCache, MultiHeadAttention, StaticKVCache
from attnlab.core import Traced
from attnlab.core.fast import FastPath, compiled
from attnlab.models.greedy_head import ScreenedHead, kept_screened_head, screen_available, screen_pays

SelfCache = KVCache | StaticKVCache  # a self-attention layer's cache: grown by concatenation, or preallocated


@dataclass
class DecoderCache:
    """A decoder layer's caches: its own keys/values, and the encoder's projected once."""

    self_attn: SelfCache = field(default_factory=KVCache)
    cross_attn: KVCache = field(default_factory=lambda: KVCache(static=True))

    def select(self, index: Tensor) -> DecoderCache:
        """A new cache holding the rows `index` (b',) of this one: beams expanded or reordered."""
        return DecoderCache(self.self_attn.select(index), self.cross_attn.select(index))


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


class LMDecoding(FastPath, nn.Module):
    """DecoderLM's decoding: per-layer KV caches, the single-token step and `generate`.

    The model supplies `embed`, `head`, `hidden` and `self_attentions`.
    """

    fast_step_name = "static KV cache decoding"
    greedy_screen: bool | None = None  # greedy fast decoding's int8-screened head: None = where it pays
    embed: nn.Embedding
    head: nn.Linear

    def hidden(self, idx: Tensor, *, caches: Sequence[SelfCache] | None = None, mask: Tensor | None = None) -> Tensor:
        """idx (b, t) token ids -> the last layer's states (b, t, d), before the head."""
        raise NotImplementedError

    def self_attentions(self) -> list[MultiHeadAttention]:
        """Each layer's self-attention, first layer first: one cache each."""
        raise NotImplementedError

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
        return [KVCache() for _ in self.self_attentions()]

    def static_caches(self, batch_size: int, capacity: int) -> list[StaticKVCache]:
        """A StaticKVCache per layer for `capacity` positions of `batch_size` rows, allocated once."""
        return [
            StaticKVCache.empty(batch_size, attn.num_kv_heads, capacity, attn.head_dim, like=self.embed.weight)
            for attn in self.self_attentions()
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


class EncDecDecoding(FastPath, nn.Module):
    """EncoderDecoder's decoding: per-layer self-attention and cross-attention caches, the
    single-token step and greedy `generate`.

    The model supplies `max_len`, `pad_id`, `encode`, `decode` and `decoder_attentions`.
    """

    fast_step_name = "static KV cache decoding"
    max_len: int
    pad_id: int

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """src (b, s) -> (memory (b, s, d), memory mask (b, 1, 1, s), True for non-pad tokens)."""
        raise NotImplementedError

    def decode(
        self, tgt: Tensor, memory: Tensor, memory_mask: Tensor, caches: Sequence[DecoderCache] | None = None
    ) -> Tensor:
        """tgt (b, t) target ids so far -> logits (b, t, V_tgt)."""
        raise NotImplementedError

    def decoder_attentions(self) -> list[tuple[MultiHeadAttention, MultiHeadAttention]]:
        """Each decoder layer's (self-attention, cross-attention), first layer first."""
        raise NotImplementedError

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
        return [DecoderCache() for _ in self.decoder_attentions()]

    def static_caches(self, memory: Tensor, capacity: int | None = None) -> list[DecoderCache]:
        """Per decoder layer: a StaticKVCache for `capacity` target positions (default max_len) and
        the memory's (b, s, d) cross-attention keys and values, projected once."""
        capacity = self.max_len if capacity is None else capacity
        return [
            DecoderCache(
                StaticKVCache.empty(memory.shape[0], attn.num_kv_heads, capacity, attn.head_dim, like=memory),
                cross.memory_cache(memory),
            )
            for attn, cross in self.decoder_attentions()
        ]

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
