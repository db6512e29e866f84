"""MultiHeadAttention against nn.MultiheadAttention (copied weights), GQA, caching and tracing."""

import pytest
import torch
from torch import nn

from attnlab.attention.multihead import KVCache, MultiHeadAttention, StaticKVCache, torch_masks_to_attend
from attnlab.core import capture, causal_mask, padding_mask


def torch_reference(d=16, h=4, kdim=None, vdim=None, bias=True, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    m = nn.MultiheadAttention(d, h, bias=bias, kdim=kdim, vdim=vdim, batch_first=True).to(dtype)
    with torch.no_grad():  # non-zero biases so that copying them is tested
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m


@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_self_attention_with_masks(bias):
    m = torch_reference(bias=bias)
    ours = MultiHeadAttention.from_torch(m)
    x = torch.randn(2, 6, 16, dtype=torch.float64, requires_grad=True)
    pad = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])  # torch polarity: True = padding
    future = ~causal_mask(6)  # torch polarity: True = masked
    want, want_w = m(x, x, x, key_padding_mask=pad, attn_mask=future, average_attn_weights=False)
    with capture(ours) as trace:
        got = ours(x, mask=torch_masks_to_attend(future, pad))
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(trace[0].weights, want_w)
    g = torch.randn_like(got)
    torch.testing.assert_close(
        torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0]
    )


def test_from_torch_cross_attention_other_dims():
    m = torch_reference(kdim=5, vdim=7)
    ours = MultiHeadAttention.from_torch(m)
    q = torch.randn(3, 4, 16, dtype=torch.float64)
    k = torch.randn(3, 9, 5, dtype=torch.float64)
    v = torch.randn(3, 9, 7, dtype=torch.float64)
    want, _ = m(q, k, v)
    torch.testing.assert_close(ours(q, k, v), want)


def test_from_torch_rejects_bias_kv():
    with pytest.raises(ValueError, match="add_bias_kv"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True))


def test_grouped_heads_equal_repeated_full_heads():
    torch.manual_seed(0)
    gqa = MultiHeadAttention(16, 4, num_kv_heads=2).double()
    full = MultiHeadAttention(16, 4).double()
    e = gqa.head_dim
    with torch.no_grad():
        full.q_proj.load_state_dict(gqa.q_proj.state_dict())
        full.out_proj.load_state_dict(gqa.out_proj.state_dict())
        for src, dst in ((gqa.k_proj, full.k_proj), (gqa.v_proj, full.v_proj)):
            # kv head n serves query heads 2n and 2n + 1
            dst.weight.copy_(src.weight.view(2, e, 16).repeat_interleave(2, 0).reshape(16, 16))
            dst.bias.copy_(src.bias.view(2, e).repeat_interleave(2, 0).reshape(16))
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    torch.testing.assert_close(gqa(x, causal=True), full(x, causal=True))
    assert gqa.k_proj.weight.shape == (8, 16)


@pytest.mark.parametrize("kv_heads", [4, 1])
def test_kv_cache_step_by_step_equals_full_causal(kv_heads):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, num_kv_heads=kv_heads).double().eval()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    full = mha(x, causal=True)
    cache = KVCache()
    steps = [mha(x[:, :3], causal=True, cache=cache)]  # a prompt of 3, then one token at a time
    steps += [mha(x[:, t : t + 1], causal=True, cache=cache) for t in range(3, 7)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
    assert cache.length == 7


@pytest.mark.parametrize("kv_heads", [4, 1])
def test_static_kv_cache_writes_in_place_and_equals_the_growing_cache(kv_heads):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, num_kv_heads=kv_heads).double().eval()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    full = mha(x, causal=True)
    cache = StaticKVCache.empty(2, kv_heads, 7, 4, like=x)
    buffers = cache.k.data_ptr(), cache.v.data_ptr()
    steps = [mha(x[:, :3], causal=True, cache=cache)]  # a prompt of 3, then one token at a time
    steps += [mha(x[:, t : t + 1], causal=True, cache=cache) for t in range(3, 7)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
    assert (cache.length, cache.capacity) == (7, 7)
    assert (cache.k.data_ptr(), cache.v.data_ptr()) == buffers  # written in place, never reallocated
    grown = KVCache()
    mha(x, causal=True, cache=grown)
    torch.testing.assert_close(cache.k[:, :, :7], grown.k)
    assert cache.k[:, :, 7:].eq(0).all()  # the spare position is never written


def test_static_kv_cache_grows_past_its_capacity():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double().eval()
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    cache = StaticKVCache.empty(1, 2, 2, 4, like=x)
    steps = [mha(x[:, t : t + 1], causal=True, cache=cache) for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, dim=1), mha(x, causal=True))
    assert cache.length == 6 and cache.capacity >= 6


def test_static_kv_cache_select_continues_like_the_selected_batch():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double().eval()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    q = torch.randn(4, 1, 8, dtype=torch.float64)
    index = torch.tensor([2, 0, 0, 1])
    cache = StaticKVCache.empty(3, 2, 6, 4, like=x)
    mha(x, causal=True, cache=cache)
    picked = cache.select(index)
    assert picked.length == 4 and picked.capacity == 6 and cache.k.shape[0] == 3  # the original is kept
    want = mha(torch.cat([x[index], q], dim=1), causal=True)[:, -1:]  # (4, 1, d)
    torch.testing.assert_close(mha(q, causal=True, cache=picked), want)


def test_memory_cache_is_the_static_cache_a_first_call_fills():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, kdim=6, vdim=6).double()
    memory = torch.randn(2, 5, 6, dtype=torch.float64)
    filled = KVCache(static=True)
    q = torch.randn(2, 1, 8, dtype=torch.float64)
    want = mha(q, memory, cache=filled)
    projected = mha.memory_cache(memory)
    assert projected.static
    torch.testing.assert_close(projected.k, filled.k)
    torch.testing.assert_close(mha(q, torch.zeros_like(memory), cache=projected), want)


def test_static_cache_projects_memory_once():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double()
    memory = torch.randn(1, 5, 8, dtype=torch.float64)
    cache = KVCache(static=True)
    a = mha(torch.randn(1, 1, 8, dtype=torch.float64), memory, cache=cache)
    k_first = cache.k
    q = torch.randn(1, 1, 8, dtype=torch.float64)
    torch.testing.assert_close(mha(q, torch.zeros_like(memory), cache=cache), mha(q, memory))
    assert cache.k is k_first and a.shape == (1, 1, 8)


def test_kv_cache_select_continues_like_the_selected_batch():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double().eval()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    q = torch.randn(4, 1, 8, dtype=torch.float64)
    index = torch.tensor([2, 0, 0, 1])
    cache = KVCache()
    mha(x, causal=True, cache=cache)
    picked = cache.select(index)
    assert picked.length == 4 and not picked.static and cache.k.shape[0] == 3  # the original is kept
    want = mha(torch.cat([x[index], q], dim=1), causal=True)[:, -1:]  # (4, 1, d)
    torch.testing.assert_close(mha(q, causal=True, cache=picked), want)


def test_static_kv_cache_select_keeps_the_selected_memory():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double().eval()
    memory = torch.randn(3, 5, 8, dtype=torch.float64)
    index = torch.tensor([1, 1, 0])
    cache = KVCache(static=True)
    mha(torch.randn(3, 1, 8, dtype=torch.float64), memory, cache=cache)
    picked = cache.select(index)
    assert picked.static
    q = torch.randn(3, 1, 8, dtype=torch.float64)
    torch.testing.assert_close(mha(q, torch.zeros_like(memory), cache=picked), mha(q, memory[index]))
    assert KVCache(static=True).select(index).k is None


def test_traced_equals_untraced_with_kinds_and_per_head_weights():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4)
    x, mem = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    plain_self, plain_cross = mha(x), mha(x, mem, mask=padding_mask(torch.tensor([5, 2]), 5))
    with capture(mha) as trace:
        traced_self = mha(x)
        traced_cross = mha(x, mem, mask=padding_mask(torch.tensor([5, 2]), 5))
    torch.testing.assert_close(traced_self, plain_self)
    torch.testing.assert_close(traced_cross, plain_cross)
    assert [r.kind for r in trace] == ["self", "cross"]
    assert trace[1].weights.shape == (2, 4, 3, 5)
    assert (trace[1].weights[1, :, :, 2:] == 0).all()


def test_bad_inputs():
    mha = MultiHeadAttention(16, 4)
    with pytest.raises(ValueError, match=r"query must be \(b, i, d\) with last dim 16; got shape \(2, 3, 8\)"):
        mha(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match=r"key and value must share batch and length"):
        mha(torch.randn(2, 3, 16), torch.randn(2, 4, 16), torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="num_kv_heads 3 does not divide num_heads 4"):
        MultiHeadAttention(16, 4, num_kv_heads=3)
    with pytest.raises(ValueError, match=r"attend: mask must broadcast"):
        mha(torch.randn(2, 3, 16), mask=torch.ones(2, 4, dtype=torch.bool))
