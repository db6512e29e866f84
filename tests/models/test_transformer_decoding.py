"""KV-cache decoding of DecoderLM and EncoderDecoder: cached generation against the full recompute
on every path, seeded sampling, static caches allocated once, the compiled step, beam reordering."""

import pytest
import torch
from torch._dynamo.utils import counters

from attnlab.attention import POSITIONS
from attnlab.attention.multihead import StaticKVCache
from attnlab.core import capture
from attnlab.core.fast import set_path
from attnlab.models import DecoderLM, EncoderDecoder, TransformerConfig
from attnlab.models.transformer_decoding import DecoderCache


def tiny(positions="sinusoidal", **kw):
    # vocabularies of 20, max_len 64
    base = {"embed_dim": 16, "num_heads": 4, "num_layers": 2, "ff_dim": 32, "dropout": 0.0}
    base.update(kw)
    return TransformerConfig(positions=positions, **base)


@pytest.mark.parametrize("positions", sorted(POSITIONS))
@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("path", ["eager", "fast"])  # a growing KVCache, or StaticKVCaches
def test_lm_kv_cache_generation_equals_recompute(positions, norm_first, path):
    torch.manual_seed(0)
    lm = DecoderLM(tiny(positions, norm_first=norm_first, num_kv_heads=2), 20, max_len=64).double().eval()
    set_path(lm, path)
    prompt = torch.randint(1, 20, (3, 4))
    cached = lm.generate(prompt, 12, temperature=0, use_cache=True)
    plain = lm.generate(prompt, 12, temperature=0, use_cache=False)
    assert torch.equal(cached, plain)
    # the logits of the last cached step equal a full recompute over the whole sequence
    caches = lm.new_caches()
    lm(cached[:, :-1], caches=caches)
    step_logits, _ = lm(cached[:, -1:], caches=caches)
    full_logits, _ = lm(cached)
    torch.testing.assert_close(step_logits[:, -1], full_logits[:, -1])


def test_lm_sampling_is_seeded_and_respects_top_k():
    torch.manual_seed(0)
    lm = DecoderLM(tiny(), 20, max_len=64).eval()
    prompt = torch.randint(1, 20, (2, 3))
    a = lm.generate(prompt, 8, top_k=3, generator=torch.Generator().manual_seed(1))
    b = lm.generate(prompt, 8, top_k=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    logits, _ = lm(a[:, :-1])
    top3 = logits.topk(3, dim=-1).indices[:, 2:]  # positions that predicted a generated token
    assert (top3 == a[:, 3:, None]).any(-1).all()


@pytest.mark.parametrize("positions", ["sinusoidal", "rope", "t5"])
@pytest.mark.parametrize("path", ["eager", "fast"])
def test_encoder_decoder_cached_generation_equals_recompute(positions, path):
    torch.manual_seed(0)
    model = EncoderDecoder(tiny(positions, num_decoder_layers=3), 20, 20, max_len=64).double().eval()
    set_path(model, path)
    src = torch.randint(3, 20, (3, 6))
    src[1, 4:] = 0  # padding
    cached = model.generate(src, bos_id=1, eos_id=2, max_len=10, use_cache=True)
    plain = model.generate(src, bos_id=1, eos_id=2, max_len=10, use_cache=False)
    assert torch.equal(cached, plain)
    assert len(model.decoder.layers) == 3


def test_sampling_draws_the_same_tokens_on_every_path():
    torch.manual_seed(0)
    lm = DecoderLM(tiny("rope"), 20, max_len=64).double().eval()
    prompt = torch.randint(1, 20, (2, 3))
    drawn = []
    for path in ("eager", "fast"):
        set_path(lm, path)
        drawn.append(lm.generate(prompt, 10, top_k=5, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(drawn[0], drawn[1])


def test_static_caches_are_allocated_once_for_the_whole_sequence():
    torch.manual_seed(0)
    lm = DecoderLM(tiny("alibi", num_kv_heads=2), 20, max_len=64).eval()
    caches = lm.static_caches(3, 9)
    assert len(caches) == 2 and all(isinstance(c, StaticKVCache) for c in caches)
    assert caches[0].k.shape == (3, 2, 10, 4) and caches[0].capacity == 9  # one spare position
    prompt, token = torch.randint(1, 20, (3, 4)), torch.randint(1, 20, (3, 1))
    lm.decode_step(prompt, caches)
    pointer = caches[1].v.data_ptr()
    step = lm.decode_step(token, caches)  # (b, V)
    assert caches[1].v.data_ptr() == pointer and caches[1].length == 5
    torch.testing.assert_close(step, lm(torch.cat([prompt, token], 1))[0][:, -1])


def test_compiled_generation_equals_eager_and_compiles_at_most_twice():
    torch.manual_seed(0)
    lm = DecoderLM(tiny("rope", num_layers=1, num_kv_heads=2), 20, max_len=64).eval()
    prompt = torch.randint(1, 20, (2, 4))
    set_path(lm, "eager")
    want = lm.generate(prompt, 10, temperature=0)
    set_path(lm, "compiled")
    graphs = counters["stats"]["unique_graphs"]
    assert torch.equal(lm.generate(prompt, 10, temperature=0), want)
    # the first step compiles a graph for its length; the second, one where the length is symbolic
    assert counters["stats"]["unique_graphs"] - graphs <= 2
    with capture(lm) as trace:  # a trace runs the eager step, so it records every layer at every step
        assert torch.equal(lm.generate(prompt, 3, temperature=0), want[:, :7])
    assert len(trace) == 4


def test_decoder_caches_select_rows_for_beams():
    torch.manual_seed(0)
    model = EncoderDecoder(tiny(), 20, 20, max_len=64).double().eval()
    src = torch.randint(3, 20, (3, 6))
    src[1, 4:] = 0  # padding
    index = torch.tensor([1, 1, 2, 0])
    memory, mask = model.encode(src)
    caches = [DecoderCache() for _ in model.decoder.layers]
    model.decode(torch.tensor([[1], [4], [5]]), memory, mask, caches)
    picked = [c.select(index) for c in caches]
    nxt = torch.tensor([[6], [7], [8], [9]])
    got = model.decode(nxt, memory[index], mask[index], picked)  # (4, 1, V)
    want = model.decode(torch.cat([torch.tensor([[1], [4], [5]])[index], nxt], 1), memory[index], mask[index])
    torch.testing.assert_close(got[:, -1], want[:, -1])
    assert picked[0].cross_attn.static and picked[0].self_attn.length == 2 and caches[0].self_attn.length == 1
