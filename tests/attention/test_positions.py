"""Positional schemes: each against its paper's formula, written out here independently."""

import math

import pytest
import torch

from attnlab.attention.positions import (
    POSITIONS,
    AlibiPositions,
    LearnedPositions,
    Positions,
    RotaryPositions,
    SinusoidalPositions,
    T5Positions,
    alibi_slopes,
    build_positions,
    t5_bucket,
)
from attnlab.core import attend, causal_mask


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- sinusoidal / learned


@pytest.mark.parametrize("d", [6, 7])
def test_sinusoidal_matches_formula(d):
    pe = SinusoidalPositions(embed_dim=d, num_heads=1, max_len=50)
    x = torch.zeros(1, 50, d)
    got = pe.embed(x)[0]  # (t, d)
    for pos in range(50):
        for k in range(d):
            angle = pos / 10000 ** ((k - k % 2) / d)
            want = math.sin(angle) if k % 2 == 0 else math.cos(angle)
            assert got[pos, k].item() == pytest.approx(want, abs=1e-6)


def test_sinusoidal_offset_and_not_saved():
    pe = SinusoidalPositions(embed_dim=8, num_heads=2, max_len=20)
    x = torch.randn(2, 12, 8, generator=gen(0))
    full = pe.embed(x)
    tail = pe.embed(x[:, 5:], offset=5)
    assert torch.equal(full[:, 5:], tail)
    assert "table" not in pe.state_dict()


@pytest.mark.parametrize("cls", [SinusoidalPositions, LearnedPositions])
def test_absolute_out_of_range(cls):
    pe = cls(embed_dim=4, num_heads=1, max_len=10)
    pe.embed(torch.zeros(1, 10, 4))  # exactly max_len is fine
    with pytest.raises(ValueError, match="max_len=10"):
        pe.embed(torch.zeros(1, 11, 4))
    with pytest.raises(ValueError, match="max_len=10"):
        pe.embed(torch.zeros(1, 3, 4), offset=8)
    with pytest.raises(ValueError, match="embed_dim|d=4"):
        pe.embed(torch.zeros(1, 3, 5))


def test_learned_adds_its_rows_and_gets_gradients():
    pe = LearnedPositions(embed_dim=4, num_heads=1, max_len=10)
    x = torch.randn(2, 3, 4, generator=gen(1))
    out = pe.embed(x, offset=2)
    assert torch.allclose(out, x + pe.table.weight[2:5])
    out.pow(2).sum().backward()
    grad = pe.table.weight.grad
    assert grad[2:5].abs().sum() > 0
    assert grad[:2].abs().sum() == 0 and grad[5:].abs().sum() == 0


# ---------------------------------------------------------------- rope


def test_rope_preserves_norm_and_position_zero():
    rope = RotaryPositions(embed_dim=32, num_heads=4, max_len=16)
    x = torch.randn(2, 4, 10, 8, generator=gen(2))
    y = rope.rotate(x, offset=3)
    assert y.shape == x.shape
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.allclose(rope.rotate(x[:, :, :1]), x[:, :, :1])  # angle 0 at position 0
    assert not torch.allclose(y, x)


def test_rope_matches_half_split_rotation():
    e = 6
    rope = RotaryPositions(embed_dim=e, num_heads=1)
    x = torch.randn(1, 1, 5, e, generator=gen(3), dtype=torch.float64)
    y = rope.rotate(x, offset=2)
    for t in range(5):
        pos = t + 2
        for k in range(e // 2):
            angle = pos * 10000 ** (-2 * k / e)
            a, b = x[0, 0, t, k].item(), x[0, 0, t, k + e // 2].item()
            assert y[0, 0, t, k].item() == pytest.approx(a * math.cos(angle) - b * math.sin(angle), abs=1e-5)
            assert y[0, 0, t, k + e // 2].item() == pytest.approx(b * math.cos(angle) + a * math.sin(angle), abs=1e-5)


def test_rope_dot_product_depends_only_on_relative_position():
    rope = RotaryPositions(embed_dim=16, num_heads=1, max_len=8)  # positions below go past max_len
    q = torch.randn(1, 1, 1, 16, generator=gen(4))
    k = torch.randn(1, 1, 1, 16, generator=gen(5))

    def score(m, n):
        return (rope.rotate(q, offset=m) * rope.rotate(k, offset=n)).sum().item()

    for m, n in [(5, 2), (2, 5), (0, 0), (7, 7)]:
        for shift in (1, 13, 40):
            assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)  # and it does depend on m - n


def test_rope_offset_equivalence_and_cache_growth():
    rope = RotaryPositions(embed_dim=8, num_heads=2, max_len=4)
    x = torch.randn(2, 2, 12, 4, generator=gen(6))
    full = rope.rotate(x)  # 12 > max_len: the cache grows rather than fail
    assert rope.cos.shape[0] >= 12
    assert torch.allclose(rope.rotate(x[:, :, 7:], offset=7), full[:, :, 7:], atol=1e-6)


def test_rope_head_dim_checks():
    assert RotaryPositions(embed_dim=32, num_heads=2, head_dim=6).head_dim == 6
    with pytest.raises(ValueError, match="even"):
        RotaryPositions(embed_dim=15, num_heads=3)
    with pytest.raises(ValueError, match="e=8"):
        RotaryPositions(embed_dim=16, num_heads=2).rotate(torch.zeros(1, 2, 3, 6))


def test_rope_attend_is_shift_invariant():
    rope = RotaryPositions(embed_dim=16, num_heads=2)
    q = torch.randn(2, 2, 5, 8, generator=gen(7))
    k = torch.randn(2, 2, 5, 8, generator=gen(8))
    v = torch.randn(2, 2, 5, 8, generator=gen(9))
    base = attend(rope.rotate(q), rope.rotate(k), v, causal=True).out
    shifted = attend(rope.rotate(q, offset=37), rope.rotate(k, offset=37), v, causal=True).out
    assert torch.allclose(base, shifted, atol=1e-5)
    only_q = attend(rope.rotate(q, offset=37), rope.rotate(k), v, causal=True).out
    assert not torch.allclose(base, only_q, atol=1e-3)


# ---------------------------------------------------------------- alibi


def test_alibi_slopes_power_of_two():
    assert alibi_slopes(8) == [1 / 2**h for h in range(1, 9)]
    assert torch.equal(AlibiPositions(embed_dim=16, num_heads=8).slopes, torch.tensor([0.5**h for h in range(1, 9)]))


def test_alibi_slopes_other_counts_follow_the_paper_rule():
    # 6 heads: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then the 1st and 3rd of the 8-head slopes 2^-1, 2^-3.
    four = [2 ** (-8 * h / 4) for h in range(1, 5)]
    eight = [2 ** (-8 * h / 8) for h in range(1, 9)]
    assert alibi_slopes(6) == pytest.approx(four + [eight[0], eight[2]])
    assert alibi_slopes(6) == pytest.approx([2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3])
    assert len(alibi_slopes(12)) == 12 and len(set(alibi_slopes(12))) == 12


def test_alibi_bias_hand_checked():
    alibi = AlibiPositions(embed_dim=4, num_heads=2)  # slopes 1/16, 1/256
    bias = alibi.bias(2, 3, offset=0)  # queries at 0, 1; keys at 0, 1, 2
    assert bias.shape == (2, 2, 3)
    want0 = torch.tensor([[0.0, -1.0, -2.0], [-1.0, 0.0, -1.0]]) / 16
    assert torch.allclose(bias[0], want0)
    assert torch.allclose(bias[1], want0 / 16)


def test_alibi_default_offset_aligns_last_query_with_last_key():
    alibi = AlibiPositions(embed_dim=8, num_heads=4)
    bias = alibi.bias(2, 6)  # queries at 4 and 5
    assert torch.equal(bias, alibi.bias(2, 6, offset=4))
    assert torch.equal(bias[:, -1, -1], torch.zeros(4))
    assert torch.equal(bias, alibi.bias(6, 6)[:, 4:])  # a cache step equals the tail of the full pass


# ---------------------------------------------------------------- t5


def test_t5_buckets_hand_computed():
    # 32 buckets, bidirectional: 16 per direction, 8 exact, 8 logarithmic from 8 up to 128.
    rel = torch.tensor([0, -1, 1, -7, 7, -8, 8, -16, 16, -127, -128, -10_000, 10_000])
    want = torch.tensor([0, 1, 17, 7, 23, 8, 24, 10, 26, 15, 15, 15, 31])
    assert torch.equal(t5_bucket(rel), want)
    # Unidirectional: 32 buckets for keys at or before the query, 16 exact; keys after go to bucket 0.
    uni = t5_bucket(torch.tensor([0, -1, -15, -16, 3, -10_000]), bidirectional=False)
    assert torch.equal(uni, torch.tensor([0, 1, 15, 16, 0, 31]))


def test_t5_bucket_edges_that_are_integers_are_exact():
    # 20 buckets, max_distance 160: 5 exact, then log buckets starting at 5 * 32^(r/5) = 10, 20, 40, 80.
    # In floats 5 * 32 ** (4 / 5) = 80.00000000000001; distance 80 must still open bucket 9.
    rel = -torch.tensor([4, 5, 9, 10, 19, 20, 39, 40, 79, 80, 159, 160, 10_000])
    got = t5_bucket(rel, num_buckets=20, max_distance=160)
    assert torch.equal(got, torch.tensor([4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 9, 9]))


def test_t5_buckets_match_the_log_formula_and_are_monotone():
    distances = torch.arange(0, 300)
    for sign, start in ((-1, 0), (1, 16)):
        got = t5_bucket(sign * distances)
        if sign == 1:
            got[0] += 16  # distance 0 sits in the lower half
        for d, b in zip(distances.tolist(), got.tolist()):
            want = d if d < 8 else min(15, 8 + int(math.log(d / 8) / math.log(128 / 8) * 8 + 1e-9))
            assert b == start + want, d
        assert torch.all(got[1:] >= got[:-1])
    assert set(t5_bucket(-distances).tolist()) == set(range(16))  # every bucket is used


def test_t5_bias_shape_values_and_gradients():
    t5 = T5Positions(embed_dim=8, num_heads=3, num_buckets=8, max_distance=16)
    bias = t5.bias(4, 6)
    assert bias.shape == (3, 4, 6)
    buckets = t5.buckets(4, 6)
    for h in range(3):
        for r in range(4):
            for c in range(6):
                assert bias[h, r, c] == t5.table.weight[buckets[r, c], h]
    assert buckets[-1, -1] == 0  # default offset: the last query is at the last key
    bias.sum().backward()
    assert t5.table.weight.grad.abs().sum() > 0


def test_t5_bad_settings():
    with pytest.raises(ValueError, match="max_distance"):
        T5Positions(embed_dim=4, num_heads=1, num_buckets=32, max_distance=8)
    with pytest.raises(ValueError, match="integer"):
        t5_bucket(torch.tensor([0.5]))


# ---------------------------------------------------------------- registry and attend


def test_registry_names_and_errors():
    assert set(POSITIONS) == {"none", "sinusoidal", "learned", "rope", "alibi", "t5"}
    with pytest.raises(ValueError, match="alibi.*learned.*none.*rope.*sinusoidal.*t5"):
        build_positions("rotary", embed_dim=8, num_heads=2)
    with pytest.raises(ValueError, match="num_buckets"):
        build_positions("alibi", embed_dim=8, num_heads=2, num_buckets=4)
    t5 = build_positions("t5", embed_dim=8, num_heads=2, num_buckets=8, max_distance=20)
    assert isinstance(t5, T5Positions) and t5.num_buckets == 8
    assert build_positions("rope", embed_dim=8, num_heads=2, head_dim=2).head_dim == 2


def test_none_is_identity():
    none = build_positions("none", embed_dim=8, num_heads=2)
    assert type(none) is Positions
    x = torch.randn(1, 3, 8)
    assert none.embed(x) is x and none.bias(3, 3) is None
    qk = torch.randn(1, 2, 3, 4)
    assert none.rotate(qk) is qk


@pytest.mark.parametrize("name", sorted(POSITIONS))
@pytest.mark.parametrize("causal", [False, True])
def test_every_scheme_feeds_attend(name, causal):
    b, h, t, d = 2, 2, 5, 8
    scheme = build_positions(name, embed_dim=d, num_heads=h, max_len=16)
    x = scheme.embed(torch.randn(b, t, d, generator=gen(10)))  # (b, t, d)
    qkv = x.view(b, t, h, d // h).transpose(1, 2)  # (b, h, t, e)
    q, k = scheme.rotate(qkv), scheme.rotate(qkv)
    bias = scheme.bias(t, t)
    for need in (False, True):
        out, weights = attend(q, k, qkv, bias=bias, causal=causal, need_weights=need)
        assert out.shape == (b, h, t, d // h) and torch.isfinite(out).all()
    assert torch.allclose(weights.sum(-1), torch.ones(b, h, t))
    if causal:
        assert torch.all(weights[..., ~causal_mask(t)] == 0)
    # decoding one step with a cache sees the same bias row as the full pass
    if bias is not None:
        assert torch.allclose(scheme.bias(1, t), bias[:, -1:])


def test_alibi_bias_changes_attention():
    alibi = AlibiPositions(embed_dim=8, num_heads=2)
    q = torch.zeros(1, 2, 4, 4)
    k = torch.zeros(1, 2, 4, 4)  # equal scores: the bias alone decides
    v = torch.eye(4).expand(1, 2, 4, 4)
    _, w = attend(q, k, v, bias=alibi.bias(4, 4), need_weights=True)
    assert torch.all(w.argmax(-1) == torch.arange(4))  # each query prefers its own position
