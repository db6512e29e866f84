"""Each score against its formula written out elementwise in the test."""

import math

import pytest
import torch

from attnlab.core import scores


@pytest.fixture
def qk():
    torch.manual_seed(0)
    return torch.randn(2, 3, 4, 5, dtype=torch.float64), torch.randn(2, 3, 6, 5, dtype=torch.float64)


def loop(q, k, fn):
    b, h, i, _ = q.shape
    j = k.shape[2]
    return torch.tensor(
        [[[[float(fn(q[x, y, r], k[x, y, c])) for c in range(j)] for r in range(i)] for y in range(h)] for x in range(b)],
        dtype=q.dtype,
    )


def test_scaled_dot_and_dot(qk):
    q, k = qk
    torch.testing.assert_close(scores.dot(q, k), loop(q, k, lambda a, b: a @ b))
    torch.testing.assert_close(scores.scaled_dot(q, k), loop(q, k, lambda a, b: a @ b / math.sqrt(5)))
    torch.testing.assert_close(scores.scaled_dot(q, k, scale=2.0), 2 * scores.dot(q, k))
    one = q[:, :, :1]  # (b, h, 1, e): a single query takes the broadcast product
    torch.testing.assert_close(scores.dot(one, k), loop(one, k, lambda a, b: a @ b))


def test_general(qk):
    q, k = qk
    w = torch.randn(5, 5, dtype=torch.float64)
    torch.testing.assert_close(scores.general(q, k, weight=w), loop(q, k, lambda a, b: a @ w @ b))


def test_general_with_different_key_dim():
    q, k = torch.randn(1, 1, 2, 3), torch.randn(1, 1, 4, 7)
    assert scores.general(q, k, weight=torch.randn(3, 7)).shape == (1, 1, 2, 4)


def test_additive(qk):
    q, k = qk
    wq, wk, v = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    want = loop(q, k, lambda a, b: v @ torch.tanh(wq @ a + wk @ b))
    torch.testing.assert_close(scores.additive(q, k, v=v, w_q=wq, w_k=wk), want)
    # keys projected once outside, as a recurrent decoder does
    torch.testing.assert_close(scores.additive(q, k @ wk.T, v=v, w_q=wq), want)


def test_additive_rejects_mismatched_dims(qk):
    q, k = qk
    with pytest.raises(ValueError, match="share the attention dim"):
        scores.additive(q.float(), k.float(), v=torch.ones(3), w_q=torch.ones(7, 5), w_k=torch.ones(7, 5))


def test_cosine_with_strength(qk):
    q, k = qk
    beta = torch.rand(2, 3, 4, 1, dtype=torch.float64) * 5
    got = scores.cosine(q, k, strength=beta, eps=0.0)
    want = beta * loop(q, k, lambda a, b: a @ b / (a.norm() * b.norm()))
    torch.testing.assert_close(got, want)


def test_cosine_zero_vectors_give_zero_similarity():
    q = torch.zeros(1, 1, 1, 4)
    k = torch.randn(1, 1, 3, 4)
    assert torch.equal(scores.cosine(q, k), torch.zeros(1, 1, 1, 3))
