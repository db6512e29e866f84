import math

import pytest
import torch

from attnlab.core import attend, capture
from attnlab.memory.hopfield import Hopfield, HopfieldConfig, energy, hopfield_update

F64 = torch.float64


def naive_update(queries, patterns, beta):
    b, i, _d = queries.shape
    out = torch.zeros_like(queries)
    for bi in range(b):
        for q in range(i):
            scores = [beta * float(queries[bi, q] @ patterns[bi, j]) for j in range(patterns.shape[1])]
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            for j, e in enumerate(exps):
                out[bi, q] += e / sum(exps) * patterns[bi, j]
    return out


def naive_energy(xi, patterns, beta):
    overlaps = [beta * float(xi @ x) for x in patterns]
    top = max(overlaps)
    lse = (top + math.log(sum(math.exp(o - top) for o in overlaps))) / beta
    biggest = max(float(x.norm()) for x in patterns)
    return -lse + 0.5 * float(xi @ xi) + math.log(len(patterns)) / beta + 0.5 * biggest**2


def signs(*shape, generator):
    return torch.randint(0, 2, shape, generator=generator).to(F64) * 2 - 1


@pytest.mark.parametrize("beta", [0.1, 1.0, 4.0])
def test_update_matches_a_loop(beta):
    torch.manual_seed(0)
    queries, patterns = torch.randn(2, 3, 5, dtype=F64), torch.randn(2, 7, 5, dtype=F64)
    once = hopfield_update(queries, patterns, beta)
    assert once.shape == (2, 3, 5)
    torch.testing.assert_close(once, naive_update(queries, patterns, beta))
    thrice = naive_update(naive_update(naive_update(queries, patterns, beta), patterns, beta), patterns, beta)
    torch.testing.assert_close(hopfield_update(queries, patterns, beta, steps=3), thrice)
    torch.testing.assert_close(hopfield_update(queries, patterns, beta, steps=0), queries)


def test_update_is_attention_with_scale_beta():
    torch.manual_seed(0)
    queries, patterns, beta = torch.randn(2, 4, 6), torch.randn(2, 9, 6), 2.5
    x = patterns[:, None]
    fast = attend(queries[:, None], x, x, score="scaled_dot", score_args={"scale": beta}).out[:, 0]
    assert torch.equal(hopfield_update(queries, patterns, beta), fast)
    eager = attend(queries[:, None], x, x, score="scaled_dot", score_args={"scale": beta}, need_weights=True)
    torch.testing.assert_close(hopfield_update(queries, patterns, beta), eager.out[:, 0])
    # with beta = 1/sqrt(d) it is plain scaled dot-product attention
    plain = attend(queries[:, None], x, x).out[:, 0]
    torch.testing.assert_close(hopfield_update(queries, patterns, 1 / math.sqrt(6)), plain)


def test_energy_matches_the_formula_by_hand():
    torch.manual_seed(0)
    queries, patterns = torch.randn(2, 3, 4, dtype=F64), torch.randn(2, 5, 4, dtype=F64)
    got = energy(queries, patterns, 0.7)
    assert got.shape == (2, 3)
    for b in range(2):
        for i in range(3):
            assert got[b, i].item() == pytest.approx(naive_energy(queries[b, i], patterns[b], 0.7), rel=1e-10)
    assert (got >= -1e-9).all()  # their Lemma A1: E is bounded below by 0


@pytest.mark.parametrize("beta", [0.05, 0.5, 2.0, 8.0])
def test_energy_does_not_increase_after_an_update(beta):
    gen = torch.Generator().manual_seed(0)
    patterns = torch.randn(3, 20, 16, generator=gen, dtype=F64)
    queries = torch.randn(3, 10, 16, generator=gen, dtype=F64) * 2
    before = energy(queries, patterns, beta)
    after = energy(hopfield_update(queries, patterns, beta), patterns, beta)
    assert (after <= before + 1e-9).all()
    assert (after < before).any()


@pytest.mark.parametrize("damage", ["flip", "zero"])
def test_one_update_retrieves_every_pattern_from_a_damaged_query(damage):
    gen = torch.Generator().manual_seed(0)
    d, n = 64, 32
    patterns = signs(1, n, d, generator=gen)  # (1, 32, 64)
    positions = torch.rand(n, d, generator=gen).argsort(-1)  # a random order of the entries of each pattern
    queries = patterns.clone()
    if damage == "flip":
        flipped = positions[:, : d // 4]  # 25% of the signs
        queries[0].scatter_(-1, flipped, -patterns[0].gather(-1, flipped))
    else:
        queries[0].scatter_(-1, positions[:, : d // 2], 0.0)  # half the entries unknown
    changed = (queries != patterns).sum(-1)  # (1, n)
    assert (changed == (d // 4 if damage == "flip" else d // 2)).all()
    retrieved = hopfield_update(queries, patterns, beta=8.0).sign()
    assert torch.equal(retrieved, patterns)
    # the same queries fail without the update: the damage is real
    assert not torch.equal(queries.sign(), patterns)


def test_gradcheck_float64():
    torch.manual_seed(0)
    queries = torch.randn(2, 3, 4, dtype=F64, requires_grad=True)
    patterns = torch.randn(2, 5, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, x: hopfield_update(q, x, 0.8, steps=2), (queries, patterns))
    assert torch.autograd.gradcheck(lambda q, x: energy(q, x, 0.8), (queries, patterns))
    layer = Hopfield(HopfieldConfig(4, 3, hidden_size=6, stored_size=5, num_heads=2)).double()
    stored = torch.randn(2, 5, 5, dtype=F64, requires_grad=True)
    mask = torch.tensor([[True, True, False, True, True], [False] * 5])
    assert torch.autograd.gradcheck(lambda q, y: layer(q, y, mask), (queries, stored))


def copy_into_torch(layer, mha):
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([layer.q_proj.weight, layer.k_proj.weight, layer.v_proj.weight]))
        mha.in_proj_bias.copy_(torch.cat([layer.q_proj.bias, layer.k_proj.bias, layer.v_proj.bias]))
        mha.out_proj.weight.copy_(layer.out_proj.weight)
        mha.out_proj.bias.copy_(layer.out_proj.bias)


def test_layer_with_the_default_beta_is_multihead_attention():
    torch.manual_seed(0)
    d, h = 8, 2
    layer = Hopfield(HopfieldConfig(d, d, num_heads=h))
    assert layer.beta == pytest.approx(1 / math.sqrt(d // h))
    mha = torch.nn.MultiheadAttention(d, h, batch_first=True)
    copy_into_torch(layer, mha)
    queries, stored = torch.randn(2, 3, d), torch.randn(2, 6, d)
    keep = torch.tensor([[True] * 6, [True, False, True, True, False, False]])
    want, want_weights = mha(queries, stored, stored, key_padding_mask=~keep, average_attn_weights=False)
    with capture(layer) as trace:
        got = layer(queries, stored, keep)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(trace[0].weights, want_weights)


def test_traced_weights_rows_sum_to_one_and_tracing_changes_nothing():
    torch.manual_seed(0)
    layer = Hopfield(HopfieldConfig(6, 5, hidden_size=8, stored_size=7, num_heads=4, beta=2.0))
    queries, stored = torch.randn(3, 4, 6), torch.randn(3, 9, 7)
    plain = layer(queries, stored)
    with capture(layer) as trace:
        traced = layer(queries, stored)
    assert plain.shape == (3, 4, 5)
    torch.testing.assert_close(traced, plain)
    (record,) = trace.select(kind="hopfield")
    assert record.weights.shape == (3, 4, 4, 9)
    torch.testing.assert_close(record.weights.sum(-1), torch.ones(3, 4, 4))


def test_a_query_with_no_stored_pattern_gives_zeros_and_finite_gradients():
    torch.manual_seed(0)
    layer = Hopfield(HopfieldConfig(4, 4, num_heads=2, bias=False))
    queries, stored = torch.randn(2, 3, 4, requires_grad=True), torch.randn(2, 5, 4, requires_grad=True)
    mask = torch.tensor([[True] * 5, [False] * 5])
    out = layer(queries, stored, mask)
    assert (out[1] == 0).all()
    out.sum().backward()
    assert torch.isfinite(queries.grad).all() and torch.isfinite(stored.grad).all()


@pytest.mark.parametrize(
    "field, value",
    [("input_size", 0), ("output_size", 0), ("num_heads", 0), ("hidden_size", 0), ("stored_size", 0),
     ("hidden_size", 7), ("beta", 0.0)],
)
def test_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        HopfieldConfig(**{"input_size": 4, "output_size": 2, "num_heads": 2, field: value})
