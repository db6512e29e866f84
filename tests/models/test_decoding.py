"""Decoding: reorder, greedy, beam search (a hand-made table where beam beats greedy, beam 1 equals
greedy), and the cross-attention read back in the inputs' columns."""

import math
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters

from attnlab.attention.multihead import KVCache, StaticKVCache
from attnlab.core.fast import set_path
from attnlab.models import build_model
from attnlab.models.decoding import FINISHED_PAD_LOGIT, beam_search, cross_attention, greedy, greedy_logits, reorder
from attnlab.models.transformer import DecoderCache
from attnlab.spec import PAD, TaskSpec
from batches import TINY_DECODERS

EOS, A, B = 1, 2, 3
TINY = {**TINY_DECODERS, "encdec": {**TINY_DECODERS["encdec"], "num_layers": 2}}
VARIANTS = [
    ("seq2seq", {}),
    ("seq2seq", {"cell": "lstm", "num_layers": 2}),
    ("bahdanau", {}),
    ("luong", {}),
    ("luong", {"method": "dot", "bidirectional": True, "num_layers": 2}),
    ("encdec", {}),
]


def ids(variant):
    name, extra = variant
    return name + "".join(f"-{k}={v}" for k, v in extra.items())


def spec_for(n=6, vocab=12, eos=EOS):
    return TaskSpec(seq_len=n, answer_len=n, vocab_size=vocab, num_outputs=vocab, eos_id=eos)


def tiny(name, spec, seed=0, **extra):
    torch.manual_seed(seed)
    return build_model(name, {**TINY[name], **extra}, spec).eval()


def sources(b, seed, s=6, vocab=12, left=False):
    """(b, s) ids in 2..vocab-1 with 2..s real tokens per row, PAD on the right (or left)."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.randint(2, vocab, (b, s), generator=gen)  # (b, s)
    lengths = torch.randint(2, s + 1, (b,), generator=gen)  # (b,)
    pad = torch.arange(s)[None, :] >= lengths[:, None]  # (b, s)
    return out.masked_fill(pad.flip(1) if left else pad, PAD)


class TableModel:
    """A decoder whose next-token probabilities are a hand-made table of the prefix.

    inputs[:, 0] picks the table of the row; a prefix not in the table ends with EOS for sure.
    """

    TABLES: ClassVar[dict] = {
        1: {(): {A: 0.6, B: 0.4}, (A,): {A: 0.4, B: 0.3, EOS: 0.3}, (B,): {B: 0.9, EOS: 0.1}},  # greedy's trap
        2: {(): {A: 0.6, B: 0.4}, (A,): {A: 0.9, EOS: 0.1}, (B,): {B: 0.5, EOS: 0.5}},  # greedy is best
        3: {(): {EOS: 0.5, A: 0.45, B: 0.05}, (A,): {A: 1.0}},  # short or long, by the length penalty
    }
    bos_id = 4
    spec = TaskSpec(seq_len=4, answer_len=4, vocab_size=5, num_outputs=4, eos_id=EOS)

    def start(self, inputs):
        return {"table": inputs[:, 0], "prefix": inputs.new_zeros(inputs.shape[0], 0)}

    def step(self, tokens, state):
        prefix = state["prefix"]
        if not bool((tokens == self.bos_id).all()):
            prefix = torch.cat([prefix, tokens[:, None]], dim=1)  # (b, t + 1)
        logits = torch.full((tokens.shape[0], 4), math.log(1e-6))
        for r, (table, seen) in enumerate(zip(state["table"].tolist(), prefix.tolist())):
            for token, p in self.TABLES[table].get(tuple(seen), {EOS: 1.0}).items():
                logits[r, token] = math.log(p)
        return logits, {"table": state["table"], "prefix": prefix}


def test_reorder_indexes_tensors_and_recurses():
    state = {"h": torch.arange(6).view(3, 2), "pair": (torch.arange(3), [torch.arange(3) * 10]), "n": 7}
    out = reorder(state, torch.tensor([2, 2, 0]))
    assert out["h"].tolist() == [[4, 5], [4, 5], [0, 1]]
    assert out["pair"][0].tolist() == [2, 2, 0] and out["pair"][1][0].tolist() == [20, 20, 0]
    assert isinstance(out["pair"], tuple) and isinstance(out["pair"][1], list) and out["n"] == 7


def test_reorder_selects_kv_and_decoder_caches():
    k, v = torch.randn(3, 2, 4, 5), torch.randn(3, 2, 4, 5)
    cache = DecoderCache(KVCache(k, v), KVCache(k + 1, v + 1, static=True))
    index = torch.tensor([1, 1, 2, 0])
    (out,) = reorder([cache], index)
    assert isinstance(out, DecoderCache) and out is not cache
    torch.testing.assert_close(out.self_attn.k, k[index])
    torch.testing.assert_close(out.cross_attn.v, v[index] + 1)
    assert out.cross_attn.static and not out.self_attn.static
    empty = reorder(DecoderCache(), index)
    assert empty.self_attn.k is None and empty.cross_attn.static


@pytest.mark.parametrize("variant", VARIANTS, ids=ids)
def test_a_reordered_state_decodes_like_the_reordered_batch(variant):
    name, extra = variant
    model = tiny(name, spec_for(), **extra)
    inputs, index = sources(3, seed=1), torch.tensor([2, 0, 0, 1])
    tokens = torch.tensor([5, 6, 7])
    state = model.start(inputs)
    _, state = model.step(torch.full((3,), model.bos_id), state)
    got, _ = model.step(tokens[index], reorder(state, index))  # (4, o)
    state = model.start(inputs[index])
    _, state = model.step(torch.full((4,), model.bos_id), state)
    want, _ = model.step(tokens[index], state)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_beam_search_finds_the_likelier_sentence_that_greedy_misses():
    model = TableModel()
    inputs = torch.tensor([[1], [2], [1]])
    assert greedy(model, inputs, 4).tolist() == [[A, A, EOS], [A, A, EOS], [A, A, EOS]]  # 0.24, 0.54, 0.24
    assert beam_search(model, inputs, 2, 4).tolist() == [[B, B, EOS], [A, A, EOS], [B, B, EOS]]  # 0.36
    assert beam_search(model, inputs, 5, 4).tolist() == [[B, B, EOS], [A, A, EOS], [B, B, EOS]]  # k > o
    assert beam_search(model, inputs, 1, 4).tolist() == greedy(model, inputs, 4).tolist()


def test_the_length_penalty_divides_the_score_by_length_to_the_alpha():
    model = TableModel()
    inputs = torch.tensor([[3]])
    # [EOS]: log 0.5 = -0.69; [A, A, EOS]: log 0.45 = -0.80, or -0.27 per token
    assert beam_search(model, inputs, 2, 4, length_penalty=1.0).tolist() == [[A, A, EOS]]
    assert beam_search(model, inputs, 2, 4, length_penalty=0.0).tolist() == [[EOS, PAD, PAD]]


def test_greedy_pads_after_eos_and_stops_when_all_rows_finished():
    model = TableModel()
    inputs = torch.tensor([[3], [1]])
    assert greedy(model, inputs, 10).tolist() == [[EOS, PAD, PAD], [A, A, EOS]]
    assert greedy(model, inputs, 2).tolist() == [[EOS, PAD], [A, A]]
    logits = greedy_logits(model, inputs, 5)  # (b, 5, o)
    assert logits.shape == (2, 5, 4)
    assert logits[1].argmax(-1).tolist() == [A, A, EOS, PAD, PAD]  # steps 3, 4 were not run
    assert logits[:, 3:, PAD].eq(FINISHED_PAD_LOGIT).all() and logits[:, 3:, EOS:].eq(0).all()


@pytest.mark.parametrize("variant", VARIANTS, ids=ids)
def test_beam_1_equals_greedy_on_random_weights(variant):
    name, extra = variant
    model = tiny(name, spec_for(eos=None), **extra)  # no EOS: all 6 steps (the trained test below ends rows)
    inputs = sources(6, seed=2, left=name == "luong")
    out = greedy(model, inputs, 6)
    assert out.shape == (6, 6)
    assert torch.equal(beam_search(model, inputs, 1, 6), out)
    assert torch.equal(out, greedy_logits(model, inputs, 6).argmax(-1))


def test_reorder_indexes_static_caches_and_keeps_the_memory():
    k, v = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    index = torch.tensor([1, 1, 2, 0])
    (out,) = reorder([DecoderCache(StaticKVCache(k, v, length=3), KVCache(k + 1, v + 1, static=True))], index)
    assert isinstance(out.self_attn, StaticKVCache) and out.self_attn.length == 3
    torch.testing.assert_close(out.self_attn.v, v[index])
    torch.testing.assert_close(out.cross_attn.k, k[index] + 1)


@pytest.mark.parametrize("name", ["encdec", "lm"])
def test_static_caches_decode_the_same_tokens_as_growing_ones(name):
    spec = spec_for(eos=None)
    torch.manual_seed(0)
    model = build_model(name, TINY["encdec"], spec).eval()
    inputs = sources(5, seed=6, left=name == "lm")
    outs = {}
    for path in ("eager", "fast"):  # a KVCache grown per step, or StaticKVCaches
        set_path(model, path)
        outs[path] = model(inputs), greedy(model, inputs, 6) if name == "encdec" else None
        if name == "encdec":
            outs[path] += (beam_search(model, inputs, 3, 6),)
    torch.testing.assert_close(outs["fast"][0], outs["eager"][0])
    for got, want in zip(outs["fast"][1:], outs["eager"][1:]):
        assert got is None or torch.equal(got, want)


def test_compiled_encdec_decodes_greedy_and_beam_like_eager():
    model = tiny("encdec", spec_for(eos=None))
    inputs = sources(4, seed=7)
    set_path(model, "eager")
    want_greedy, want_beam = greedy(model, inputs, 6), beam_search(model, inputs, 2, 6)
    set_path(model, "compiled")
    graphs = counters["stats"]["unique_graphs"]
    assert torch.equal(greedy(model, inputs, 6), want_greedy)
    assert torch.equal(beam_search(model, inputs, 2, 6), want_beam)
    # a graph for the second step, one with the length symbolic, one more with the batch (b * k rows)
    assert counters["stats"]["unique_graphs"] - graphs <= 3


def test_beam_1_equals_greedy_on_a_trained_model():
    spec = spec_for()
    model = tiny("bahdanau", spec).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(60):  # copy the source, then EOS: part-trained, so rows end at different steps
        inputs = sources(32, seed=10 + step, s=5)
        targets = F.pad(inputs, (0, 1))  # (b, 6)
        targets[torch.arange(32), (inputs != PAD).sum(1)] = EOS
        loss = F.cross_entropy(model(inputs, targets).flatten(0, 1), targets.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    inputs = sources(16, seed=3, s=5)
    out = greedy(model, inputs, 6)
    assert (out == EOS).any() and (out == PAD).any()
    assert torch.equal(beam_search(model, inputs, 1, 6), out)
    wide = beam_search(model, inputs, 3, 6)
    assert wide.shape[0] == 16 and (wide == EOS).any()


@pytest.mark.parametrize("name, heads, modules", [("bahdanau", 1, 1), ("luong", 1, 1), ("encdec", 2, 2)])
@pytest.mark.parametrize("left", [False, True])
def test_cross_attention_rows_sum_to_one_over_real_source_tokens(name, heads, modules, left):
    model = tiny(name, spec_for()).train()
    inputs = sources(4, seed=4, left=left)  # (b, 6)
    outputs = torch.tensor([[2, 3, EOS, PAD], [4, EOS, PAD, PAD], [5, 6, 7, EOS], [EOS, PAD, PAD, PAD]])
    weights = cross_attention(model, inputs, outputs)
    assert model.training
    assert len(weights) == modules
    real = (inputs != PAD)[:, None, None, :]  # (b, 1, 1, s)
    for w in weights:
        assert w.shape == (4, heads, 4, 6)
        assert float(w.masked_select(~real).abs().sum()) == 0.0
        torch.testing.assert_close(w.sum(-1), torch.ones(4, heads, 4))
        assert bool((w.masked_fill(~real, 1.0) > 0).all())


def test_cross_attention_of_a_model_without_attention_is_empty():
    model = tiny("seq2seq", spec_for())
    assert cross_attention(model, sources(2, seed=5), torch.tensor([[2, EOS], [EOS, PAD]])) == []


def test_beam_size_must_be_positive():
    with pytest.raises(ValueError, match="beam_size: must be >= 1; got 0"):
        beam_search(TableModel(), torch.tensor([[1]]), 0, 4)


def test_as_decoder_refuses_a_family_that_does_not_decode():
    from attnlab.models.decoding import as_decoder

    with pytest.raises(ValueError, match="Linear does not decode its answers"):
        as_decoder(torch.nn.Linear(2, 2))
    model = torch.nn.Linear(2, 2)
    model.seq2seq = True
    assert as_decoder(model) is model
