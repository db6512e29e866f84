"""Decoding the answers of a seq2seq family one token at a time: greedy and beam search, batched.

Every decoding family (seq2seq, bahdanau, luong, encdec) implements the incremental interface

    model.bos_id                          the decoder's start symbol (num_outputs: never predicted)
    model.start(inputs (b, s)) -> state   encodes once; state = nested dicts / tuples / lists of
                                          batch-first tensors and objects with `select(index)`
    model.step(tokens (b,), state) -> (logits (b, o), state)
    model.teacher_force(inputs, targets (b, n)) -> logits (b, n, o), whatever the module's mode
    model.source_order(inputs) -> (b, s)  optional: the input column of each encoded position, for
                                          families that move the real tokens to the front

and `step` may update the caches in `state` in place: keep the returned state, not the old one.

Beam search (Sutskever et al. 2014, §3.2; Wu et al. 2016, §7 for the length normalisation) keeps
the k best prefixes of each sentence by total log-probability,

    score(y_1..y_t) = sum_{t'} log p(y_t' | y_<t', x)                  `scores`, (b, k)

Finished hypotheses (eos produced) stay in the beam and are extended by PAD at no cost, so a beam
of 1 is exactly greedy decoding. The best final hypothesis maximises score / len ** alpha, with
len the number of tokens including eos and alpha = `length_penalty` (1: the mean log-probability
per token; 0: the raw sum, which prefers short outputs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from attnlab.core import capture
from attnlab.spec import PAD, TaskSpec

FINISHED_PAD_LOGIT = 1.0  # greedy_logits' steps after every row finished: 0 everywhere, this at PAD


class Decoder(Protocol):
    """The incremental interface above, as a type (every decoding family is an nn.Module too)."""

    spec: TaskSpec
    bos_id: int

    def start(self, inputs: Tensor) -> Any: ...

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]: ...

    def teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor: ...


def as_decoder(model: nn.Module) -> Decoder:
    """model as a Decoder; a ValueError naming it unless it is a decoding family (seq2seq = True)."""
    if not getattr(model, "seq2seq", False):
        raise ValueError(f"{type(model).__name__} does not decode its answers (not a seq2seq family)")
    return cast(Decoder, model)


def reorder(state: Any, index: Tensor) -> Any:
    """The rows `index` (b',) of a decoding state: expands sentences into beams, or follows the beams.

    Tensors are indexed along dim 0; dicts, lists and tuples recursively; objects with a
    `select(index)` method (KVCache, DecoderCache) select themselves; anything else is kept.
    """
    if isinstance(state, Tensor):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {key: reorder(value, index) for key, value in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a NamedTuple
        return type(state)(*(reorder(value, index) for value in state))
    if isinstance(state, (list, tuple)):
        return type(state)(reorder(value, index) for value in state)
    if callable(getattr(state, "select", None)):
        return state.select(index)
    return state


def _eos(model: Decoder) -> int | None:
    return model.spec.eos_id


def _greedy_steps(model: Decoder, inputs: Tensor, steps: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield (logits (b, o), argmax token (b,), done before this step (b,)) for each greedy step.

    Each step is fed the previous step's argmax; the steps end once every row has produced eos_id.
    """
    b = inputs.shape[0]
    eos = _eos(model)
    state = model.start(inputs)
    token = torch.full((b,), model.bos_id, dtype=torch.long, device=inputs.device)  # (b,)
    done = torch.zeros(b, dtype=torch.bool, device=inputs.device)  # (b,)
    for _ in range(steps):
        logits, state = model.step(token, state)  # (b, o)
        token = logits.argmax(-1)  # (b,)
        yield logits, token, done.clone()
        if eos is not None:
            done |= token == eos
            if bool(done.all()):
                return


def greedy_logits(model: Decoder, inputs: Tensor, steps: int) -> Tensor:
    """Logits of greedy decoding, each step fed the previous step's argmax.

    Args:
        model: a decoding family.
        inputs: (b, s) source ids.
        steps: n, the number of answers.
    Returns:
        (b, n, o). Once every row has produced eos_id, the steps left are not run: their logits
        are 0 with FINISHED_PAD_LOGIT at PAD, so their argmax is PAD.
    """
    out = [logits for logits, _, _ in _greedy_steps(model, inputs, steps)]
    logits = torch.stack(out, dim=1)  # (b, t, o)
    if logits.shape[1] < steps:
        rest = logits.new_zeros(logits.shape[0], steps - logits.shape[1], logits.shape[2])  # (b, n - t, o)
        rest[..., PAD] = FINISHED_PAD_LOGIT
        logits = torch.cat([logits, rest], dim=1)  # (b, n, o)
    return logits


@torch.no_grad()
def greedy(model: Decoder, inputs: Tensor, max_len: int) -> Tensor:
    """Greedy decoding of a batch.

    Args:
        model: a decoding family (its mode is left as it is: call model.eval() first).
        inputs: (b, s) source ids.
        max_len: the most output tokens per row.
    Returns:
        (b, t) long output ids, t <= max_len: eos_id included where produced, PAD after it.
        Decoding stops as soon as every row has produced eos_id.
    """
    out = [token.masked_fill(done, PAD) for _, token, done in _greedy_steps(model, inputs, max_len)]
    if not out:
        return inputs.new_zeros(inputs.shape[0], 0)
    return torch.stack(out, dim=1)  # (b, t)


@torch.no_grad()
def beam_search(model: Decoder, inputs: Tensor, beam_size: int, max_len: int, length_penalty: float = 1.0) -> Tensor:
    """Beam search over b * beam_size rows at once.

    Args:
        model: a decoding family (call model.eval() first).
        inputs: (b, s) source ids.
        beam_size: k, hypotheses kept per sentence; 1 gives exactly `greedy`'s output.
        max_len: the most output tokens per row.
        length_penalty: alpha; the best hypothesis maximises score / len ** alpha.
    Returns:
        (b, t) long ids of each sentence's best hypothesis, t <= max_len: eos_id where produced,
        PAD after it.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size: must be >= 1; got {beam_size}")
    b, k, device = inputs.shape[0], beam_size, inputs.device
    eos = _eos(model)
    state = reorder(model.start(inputs), torch.arange(b, device=device).repeat_interleave(k))
    scores = torch.full((b, k), float("-inf"), device=device)  # (b, k)
    scores[:, 0] = 0.0  # one live prefix per sentence at first, so the k beams start apart
    token = torch.full((b * k,), model.bos_id, dtype=torch.long, device=device)  # (b * k,)
    done = torch.zeros(b * k, dtype=torch.bool, device=device)  # (b * k,)
    lengths = torch.zeros(b * k, device=device)  # (b * k,) tokens so far, eos included
    seqs = torch.zeros(b * k, 0, dtype=torch.long, device=device)  # (b * k, t)
    base = torch.arange(b, device=device)[:, None] * k  # (b, 1)
    pad_only = None
    for _ in range(max_len):
        logits, state = model.step(token, state)  # (b * k, o)
        logp = torch.log_softmax(logits.float(), dim=-1)  # (b * k, o)
        if pad_only is None:
            pad_only = torch.full_like(logp[0], float("-inf"))  # (o,)
            pad_only[PAD] = 0.0
        logp = torch.where(done[:, None], pad_only, logp)  # a finished hypothesis only grows PAD, for free
        o = logp.shape[1]
        candidates = (scores.view(b * k, 1) + logp).view(b, k * o)  # (b, k * o)
        scores, best = candidates.topk(k, dim=1)  # (b, k)
        rows = (base + torch.div(best, o, rounding_mode="floor")).view(-1)  # (b * k,)
        token = (best % o).view(-1)  # (b * k,)
        seqs = torch.cat([seqs.index_select(0, rows), token[:, None]], dim=1)  # (b * k, t + 1)
        done = done.index_select(0, rows)
        lengths = lengths.index_select(0, rows) + (~done).float()
        if eos is not None:
            done = done | (token == eos)
        state = reorder(state, rows)
        if bool(done.all()):
            break
    normalised = scores / lengths.clamp(min=1.0).view(b, k) ** length_penalty  # (b, k)
    pick = normalised.argmax(dim=1)  # (b,)
    return seqs.view(b, k, -1)[torch.arange(b, device=device), pick]  # (b, t)


@torch.no_grad()
def cross_attention(model: nn.Module, inputs: Tensor, outputs: Tensor) -> list[Tensor]:
    """Every cross-attention module's weights while teacher-forced on given outputs, in eval mode.

    Args:
        model: a decoding family; its training mode is restored afterwards.
        inputs: (b, s) source ids.
        outputs: (b, i) output ids (eos included, PAD after), the decoder's targets.
    Returns:
        One (b, h, i, s) tensor per cross-attention module, in call order: row i is the attention
        while predicting outputs[:, i]; columns are `inputs`' columns (zeros on PAD columns).
    """
    training = model.training
    model.eval()
    try:
        with capture(model) as trace:
            as_decoder(model).teacher_force(inputs, outputs)
    finally:
        model.train(training)
    by_path: dict[str, list[Tensor]] = {}
    for record in trace.select(kind="cross"):
        by_path.setdefault(record.path, []).append(record.weights)
    weights = [torch.cat(steps, dim=2) for steps in by_path.values()]  # each (b, h, i, j)
    source_order = getattr(model, "source_order", None)
    order = source_order(inputs) if callable(source_order) else None
    if order is None:
        return weights
    out = []
    for w in weights:
        j = w.shape[-1]
        index = order[:, None, None, :j].expand_as(w)  # (b, h, i, j)
        out.append(w.new_zeros(*w.shape[:3], inputs.shape[1]).scatter_(3, index, w))  # (b, h, i, s)
    return out
