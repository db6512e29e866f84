"""attend against SDPA (the oracle), a naive loop, and the battery in STYLE.md."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.core import attend, causal_mask, padding_mask, scores, why_not_fast_path


def rand(*shape, dtype=torch.float32, grad=False, seed=None):
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    t = torch.randn(*shape, generator=g, dtype=dtype)
    return t.requires_grad_(grad)


def qkv(b=2, h=4, i=5, j=7, e=8, f=None, hk=None, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    hk = h if hk is None else hk
    f = e if f is None else f
    return (
        rand(b, h, i, e, dtype=dtype, grad=True),
        rand(b, hk, j, e, dtype=dtype, grad=True),
        rand(b, hk, j, f, dtype=dtype, grad=True),
    )


def grads(out, *inputs, seed=1):
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, inputs, g)


def naive(q, k, v, mask=None, scale=None):
    """A loop over batch, head and query, written independently of attend."""
    b, h, i, e = q.shape
    hk = k.shape[1]
    scale = 1 / math.sqrt(e) if scale is None else scale
    out = torch.zeros(b, h, i, v.shape[-1], dtype=q.dtype)
    weights = torch.zeros(b, h, i, k.shape[2], dtype=q.dtype)
    for bb in range(b):
        for hh in range(h):
            kh = hh // (h // hk)
            for ii in range(i):
                logits = torch.stack([q[bb, hh, ii] @ k[bb, kh, jj] * scale for jj in range(k.shape[2])])
                allowed = (
                    torch.ones(k.shape[2], dtype=torch.bool)
                    if mask is None
                    else mask.expand(b, h, i, k.shape[2])[bb, hh, ii]
                )
                if not allowed.any():
                    continue
                ex = torch.where(allowed, torch.exp(logits - logits[allowed].max()), torch.zeros(()))
                w = ex / ex.sum()
                weights[bb, hh, ii] = w
                out[bb, hh, ii] = (w[:, None] * v[bb, kh]).sum(0)
    return out, weights


MASKS = {
    "none": lambda b, i, j: None,
    "padding": lambda b, i, j: padding_mask(torch.tensor([j, 3])[:b], j),
    "causal": lambda b, i, j: causal_mask(i, j),
    "padding+causal": lambda b, i, j: padding_mask(torch.tensor([j, 3])[:b], j) & causal_mask(i, j),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("hk", [4, 2, 1])
@pytest.mark.parametrize("weights", [False, True])
def test_equals_sdpa_values_and_gradients(dtype, mask_name, hk, weights):
    q, k, v = qkv(hk=hk, dtype=dtype)
    mask = MASKS[mask_name](2, 5, 7)
    got = attend(q, k, v, mask=mask, need_weights=weights).out
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=hk != 4)
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(got, want, **tol)
    for a, b in zip(grads(got, q, k, v), grads(want, q, k, v)):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("i,j", [(5, 5), (3, 7), (1, 6)])
def test_causal_flag_equals_bottom_right_mask(i, j):
    q, k, v = qkv(i=i, j=j, dtype=torch.float64)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(i, j))
    for weights in (False, True):
        torch.testing.assert_close(attend(q, k, v, causal=True, need_weights=weights).out, want)
    padded = padding_mask(torch.tensor([j, j - 1]), j)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=padded & causal_mask(i, j))
    torch.testing.assert_close(attend(q, k, v, mask=padded, causal=True).out, want)


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("hk", [4, 2])
def test_equals_naive_loop(mask_name, hk):
    q, k, v = qkv(hk=hk, dtype=torch.float64)
    mask = MASKS[mask_name](2, 5, 7)
    out, weights = attend(q, k, v, mask=mask, need_weights=True)
    want_out, want_weights = naive(q.detach(), k.detach(), v.detach(), mask)
    torch.testing.assert_close(out, want_out)
    torch.testing.assert_close(weights, want_weights)


def test_value_dim_may_differ():
    q, k, v = qkv(e=8, f=3, dtype=torch.float64)
    out, w = attend(q, k, v, need_weights=True)
    assert out.shape == (2, 4, 5, 3) and w.shape == (2, 4, 5, 7)
    torch.testing.assert_close(attend(q, k, v).out, out)


def test_bias_added_to_logits_on_both_paths():
    q, k, v = qkv(dtype=torch.float64)
    bias = rand(4, 5, 7, dtype=torch.float64, seed=3)
    mask = padding_mask(torch.tensor([7, 3]), 7)
    logits = scores.scaled_dot(q, k) + bias
    logits = logits.masked_fill(~mask, float("-inf"))
    want = torch.softmax(logits, -1) @ v
    for weights in (False, True):
        torch.testing.assert_close(attend(q, k, v, mask=mask, bias=bias, need_weights=weights).out, want)


def test_bias_follows_query_dtype_and_mixed_dtypes_are_rejected():
    q, k, v = qkv(dtype=torch.float64)
    bias = torch.randn(4, 5, 7)  # float32, as positional tables are
    for weights in (False, True):
        out = attend(q, k, v, bias=bias, need_weights=weights).out
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, attend(q, k, v, bias=bias.double()).out)
    with pytest.raises(ValueError, match="q, k and v must share a dtype"):
        attend(q, k.float(), v)


def test_fast_equals_eager_with_scale_and_dot():
    q, k, v = qkv(dtype=torch.float64)
    for score, args in (("scaled_dot", {"scale": 0.3}), ("dot", None)):
        assert why_not_fast_path(score=score, score_args=args) is None
        fast = attend(q, k, v, score=score, score_args=args)
        eager = attend(q, k, v, score=score, score_args=args, need_weights=True)
        assert fast.weights is None
        torch.testing.assert_close(fast.out, eager.out)


def test_planted_answer_gets_the_weight():
    torch.manual_seed(0)
    k = torch.randn(1, 1, 10, 16)
    q = 10 * k[:, :, 6:7]  # a query pointing at key 6
    v = torch.eye(10)[None, None]  # value j is the one-hot of j
    for score in ("scaled_dot", "dot", "cosine"):
        args = {"strength": 50.0} if score == "cosine" else None
        out, w = attend(q, k, v, score=score, score_args=args, need_weights=True)
        assert w[0, 0, 0].argmax() == 6 and w[0, 0, 0, 6] > 0.99
        assert out[0, 0, 0].argmax() == 6


@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_fully_masked_rows_give_zeros_never_nan(weights, dropout):
    q, k, v = qkv()
    mask = torch.ones(2, 1, 5, 7, dtype=torch.bool)
    mask[0, :, 2] = False  # query 2 of example 0 may attend nothing
    mask[1] = False  # example 1 may attend nothing at all
    out, w = attend(q, k, v, mask=mask, dropout=dropout, need_weights=weights)
    assert not out.isnan().any()
    assert (out[0, :, 2] == 0).all() and (out[1] == 0).all()
    if weights:
        assert (w[0, :, 2] == 0).all() and (w[1] == 0).all()
        torch.testing.assert_close(w[0, :, 0].sum(-1), torch.ones(4))
    gq, gk, gv = grads(out, q, k, v)
    for g in (gq, gk, gv):
        assert torch.isfinite(g).all()
    assert (gq[0, :, 2] == 0).all() and (gk[1] == 0).all() and (gv[1] == 0).all()


@pytest.mark.parametrize("score", ["scaled_dot", "cosine", "additive", "general"])
def test_zero_vectors_are_safe(score):
    q = torch.zeros(1, 1, 3, 4, requires_grad=True)
    k = torch.zeros(1, 1, 5, 4, requires_grad=True)
    v = torch.randn(1, 1, 5, 2)
    args = {
        "scaled_dot": None,
        "cosine": {"strength": 3.0},
        "additive": {"v": torch.ones(6), "w_q": torch.ones(6, 4), "w_k": torch.ones(6, 4)},
        "general": {"weight": torch.ones(4, 4)},
    }[score]
    out, w = attend(q, k, v, score=score, score_args=args, need_weights=True)
    torch.testing.assert_close(w, torch.full_like(w, 1 / 5))  # no information: uniform
    gq, gk = torch.autograd.grad(out.sum(), (q, k))
    assert torch.isfinite(gq).all() and torch.isfinite(gk).all()


@pytest.mark.parametrize("score", ["scaled_dot", "dot", "general", "additive", "cosine"])
def test_gradcheck_float64(score):
    torch.manual_seed(0)
    q, k, v = qkv(b=1, h=2, i=3, j=4, e=3, dtype=torch.float64)
    mask = padding_mask(torch.tensor([3]), 4)
    mask = mask.expand(1, 2, 3, 4).clone()
    mask[0, 1, 2] = False  # one fully masked row inside the check
    extra = {
        "general": {"weight": torch.randn(3, 3, dtype=torch.float64, requires_grad=True)},
        "additive": {
            "v": torch.randn(5, dtype=torch.float64, requires_grad=True),
            "w_q": torch.randn(5, 3, dtype=torch.float64, requires_grad=True),
            "w_k": torch.randn(5, 3, dtype=torch.float64, requires_grad=True),
        },
        "cosine": {"strength": torch.rand(1, 2, 3, 1, dtype=torch.float64, requires_grad=True) * 3},
    }.get(score, {})
    names = list(extra)

    def fn(q, k, v, *params):
        args = dict(zip(names, params))
        out, w = attend(q, k, v, score=score, score_args=args, mask=mask, need_weights=True)
        return out, w

    assert torch.autograd.gradcheck(fn, (q, k, v, *extra.values()))
    if score in ("scaled_dot", "dot"):
        assert torch.autograd.gradcheck(lambda q, k, v: attend(q, k, v, score=score, mask=mask).out, (q, k, v))


def test_custom_score_callable_goes_eager():
    q, k, v = qkv(dtype=torch.float64)
    assert "custom" in why_not_fast_path(score=scores.dot)
    torch.testing.assert_close(attend(q, k, v, score=scores.dot).out, attend(q, k, v, score="dot").out)


def test_why_not_fast_path_reasons():
    assert why_not_fast_path() is None
    assert "need_weights" in why_not_fast_path(need_weights=True)
    assert "additive" in why_not_fast_path(score="additive")
    assert "strength" in why_not_fast_path(score="dot", score_args={"strength": 1.0})


def test_dropout_in_training_changes_output_and_zero_is_deterministic():
    q, k, v = qkv()
    torch.manual_seed(0)
    a = attend(q, k, v, dropout=0.5).out
    b = attend(q, k, v).out
    assert not torch.allclose(a, b)
    torch.testing.assert_close(attend(q, k, v).out, b)


@pytest.mark.parametrize(
    "change,arg",
    [
        (lambda q, k, v: (q[0], k, v), "q"),
        (lambda q, k, v: (q, k[..., :3], v), "k"),
        (lambda q, k, v: (q, k[:1], v), "k"),
        (lambda q, k, v: (q, k, v[:, :, :3]), "v"),
        (lambda q, k, v: (q, k[:, :3], v[:, :3]), "k"),
    ],
)
def test_bad_shapes_name_the_argument(change, arg):
    q, k, v = change(*qkv())
    with pytest.raises(ValueError, match=rf"attend: {arg} .*got.*{tuple(locals()[arg].shape)}".replace("(", r"\(").replace(")", r"\)")):
        attend(q, k, v)


def test_bad_masks_and_scores():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"mask must be a bool tensor.*float32"):
        attend(q, k, v, mask=torch.ones(5, 7))
    with pytest.raises(ValueError, match=r"mask must broadcast to \(b, h, i, j\) = \(2, 4, 5, 7\); got shape \(5, 6\)"):
        attend(q, k, v, mask=torch.ones(5, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"bias must broadcast.*\(3, 5, 7\)"):
        attend(q, k, v, bias=torch.zeros(3, 5, 7))
    with pytest.raises(ValueError, match="unknown score 'dotty'"):
        attend(q, k, v, score="dotty")
    with pytest.raises(ValueError, match=r"weight must have shape \(e, e_k\) = \(8, 8\)"):
        attend(q, k, v, score="general", score_args={"weight": torch.ones(8, 3)})


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3),
    groups=st.integers(1, 3),
    hk=st.integers(1, 2),
    i=st.integers(1, 6),
    j=st.integers(1, 6),
    e=st.integers(1, 5),
    data=st.data(),
)
def test_property_shapes_rows_sum_to_one_or_zero(b, groups, hk, i, j, e, data):
    h = hk * groups
    q, k, v = (torch.randn(b, h, i, e), torch.randn(b, hk, j, e), torch.randn(b, hk, j, e + 1))
    mask_shape = data.draw(st.sampled_from([(b, 1, 1, j), (i, j), (b, h, i, j), (1, j)]))
    mask = torch.tensor(data.draw(st.lists(st.booleans(), min_size=math.prod(mask_shape), max_size=math.prod(mask_shape))))
    mask = mask.reshape(mask_shape)
    out, w = attend(q, k, v, mask=mask, need_weights=True)
    assert out.shape == (b, h, i, e + 1) and w.shape == (b, h, i, j)
    allowed = mask.expand(b, h, i, j)
    sums = w.sum(-1)
    torch.testing.assert_close(sums, allowed.any(-1).to(sums.dtype))
    assert (w[~allowed] == 0).all()
    torch.testing.assert_close(attend(q, k, v, mask=mask).out, out, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("queries", [5, 1])  # one query: the broadcast products instead of matmuls
def test_under_vmap_the_eager_path_gives_what_the_fused_kernel_gives(queries):
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 2, queries, 4), torch.randn(3, 2, 2, 6, 4), torch.randn(3, 2, 2, 6, 4)
    mask = torch.rand(2, 1, queries, 6) > 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fused kernel under vmap warns of a per-sample fallback
        batched = torch.vmap(lambda q, k, v: attend(q, k, v, mask=mask).out)(q, k, v)  # (3, b, h, i, f)
    for n in range(3):
        torch.testing.assert_close(batched[n], attend(q[n], k[n], v[n], mask=mask).out)
