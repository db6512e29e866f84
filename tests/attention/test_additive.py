"""Bahdanau and Luong attention against a per-example loop, plus the STYLE.md battery."""

import pytest
import torch

from attnlab.attention.additive import AdditiveAttention, LuongAttention, additive_context, dot_context
from attnlab.core import capture, key_mask

B, I, J, QD, KD, VD, AD = 3, 4, 5, 6, 7, 3, 8
METHODS = ["additive", "dot", "general", "concat"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def build(method: str, dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    if method == "additive":
        module = AdditiveAttention(QD, KD, AD)
    elif method == "dot":
        module = LuongAttention(KD, KD, method="dot")
    else:
        module = LuongAttention(QD, KD, method=method, attn_dim=AD if method == "concat" else None)
    return module.to(dtype)


def inputs(method: str, dtype=torch.float32, seed=0, i=I):
    qd = KD if method == "dot" else QD
    query = torch.randn(B, i, qd, generator=gen(seed), dtype=dtype)
    keys = torch.randn(B, J, KD, generator=gen(seed + 1), dtype=dtype)
    values = torch.randn(B, J, VD, generator=gen(seed + 2), dtype=dtype)
    mask = torch.ones(B, J, dtype=torch.bool)
    mask[1, 3:] = False  # a padded sentence
    return query, keys, values, mask


def naive_score(module, method: str, s: torch.Tensor, h: torch.Tensor) -> float:
    """e for one query vector s and one key vector h, straight from the papers."""
    if method == "additive":  # v_a^T tanh(W_a s + U_a h + bias)
        hidden = module.query_proj.weight @ s + module.key_proj.weight @ h + module.key_proj.bias
        return float(module.v @ torch.tanh(hidden))
    if method == "dot":  # s^T h
        return float(s @ h)
    if method == "general":  # s^T W_a h
        return float(s @ module.weight_proj.weight @ h)
    # concat: v_a^T tanh(W_a [s; h])
    return float(module.v @ torch.tanh(module.concat_proj.weight @ torch.cat([s, h])))


def naive(module, method, query, keys, values, mask):
    """Loop over batch and query; softmax over the real keys only; no real key -> zero context."""
    out = torch.zeros(query.shape[0], query.shape[1], values.shape[-1], dtype=query.dtype)
    for b in range(query.shape[0]):
        real = [j for j in range(keys.shape[1]) if mask is None or mask[b, j]]
        if not real:
            continue
        for i in range(query.shape[1]):
            e = torch.tensor([naive_score(module, method, query[b, i], keys[b, j]) for j in real], dtype=query.dtype)
            alpha = torch.softmax(e, dim=0)
            out[b, i] = sum(alpha[n] * values[b, j] for n, j in enumerate(real))
    return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("use_mask", [False, True])
def test_matches_naive_loop(method, use_mask):
    module = build(method, torch.float64)
    query, keys, values, mask = inputs(method, torch.float64)
    mask = mask if use_mask else None
    with torch.no_grad():
        got = module(query, keys, values, mask=mask)
        assert got.shape == (B, I, VD)
        assert torch.allclose(got, naive(module, method, query, keys, values, mask), atol=1e-10)
        # values default to keys
        assert torch.allclose(
            module(query, keys, mask=mask), naive(module, method, query, keys, keys, mask), atol=1e-10
        )


def test_project_keys_once():
    module = build("additive")
    query, keys, values, mask = inputs("additive")
    projected = module.project_keys(keys)
    assert projected.shape == (B, J, AD)
    direct = module(query, keys, values, mask=mask)
    reused = module(query, keys, values, mask=mask, projected_keys=projected)
    assert torch.equal(direct, reused)
    # the precomputed keys are really used: different ones change the answer
    other = module(query, keys, values, mask=mask, projected_keys=projected.flip(1))
    assert not torch.allclose(direct, other)


@pytest.mark.parametrize("method", METHODS)
def test_padding_gets_zero_weight_and_traced_equals_untraced(method):
    module = build(method)
    query, keys, values, mask = inputs(method)
    plain = module(query, keys, values, mask=mask)
    with capture(module) as trace:
        traced = module(query, keys, values, mask=mask)
    assert torch.allclose(plain, traced, atol=1e-6)
    assert len(trace) == 1
    record = trace[0]
    assert record.kind == "cross" and record.weights.shape == (B, 1, I, J)
    assert torch.all(record.weights[1, :, :, 3:] == 0)
    assert torch.all(record.weights[1, :, :, :3] > 0)
    assert torch.allclose(record.weights.sum(-1), torch.ones(B, 1, I))
    assert not module.tracing  # the tap is gone after the block


@pytest.mark.parametrize("method", METHODS)
def test_fully_masked_row_gives_zeros_not_nan(method):
    module = build(method)
    query, keys, values, mask = inputs(method)
    query.requires_grad_(True)
    keys.requires_grad_(True)
    values.requires_grad_(True)
    mask[2] = False  # an empty source sentence
    for traced in (False, True):
        if traced:
            with capture(module):
                out = module(query, keys, values, mask=mask)
        else:
            out = module(query, keys, values, mask=mask)
        assert torch.all(out[2] == 0) and torch.isfinite(out).all()
        grads = torch.autograd.grad(out.pow(2).sum(), [query, keys, values, *module.parameters()])
        for g in grads:
            assert torch.isfinite(g).all()
        for g in grads[:3]:
            assert torch.all(g[2] == 0)


def test_planted_answer_dot():
    module = LuongAttention(KD, KD, method="dot")
    query = torch.randn(B, KD, generator=gen(3))
    keys = torch.randn(B, J, KD, generator=gen(4))
    values = torch.randn(B, J, VD, generator=gen(5))
    target = torch.tensor([0, 4, 2])
    keys[torch.arange(B), target] = 20 * query
    with capture(module) as trace:
        out = module(query, keys, values)
    weights = trace[0].weights[:, 0, 0]  # (b, j)
    assert torch.all(weights.argmax(-1) == target)
    assert torch.all(weights[torch.arange(B), target] > 0.999)
    assert torch.allclose(out, values[torch.arange(B), target], atol=1e-2)


@pytest.mark.parametrize("method", METHODS)
def test_single_step_equals_all_steps(method):
    module = build(method)
    query, keys, values, mask = inputs(method)
    all_steps = module(query, keys, values, mask=mask)
    with capture(module) as trace:
        steps = [module(query[:, i], keys, values, mask=mask) for i in range(I)]
    assert steps[0].shape == (B, VD)
    assert torch.allclose(torch.stack(steps, dim=1), all_steps, atol=1e-6)
    assert [r.step for r in trace] == list(range(I))
    assert trace[0].weights.shape == (B, 1, 1, J)


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck(method):
    torch.manual_seed(0)
    qd = 3 if method != "dot" else 2
    if method == "additive":
        module = AdditiveAttention(qd, 2, 3).double()
    else:
        module = LuongAttention(qd, 2, method=method).double()
    query = torch.randn(2, 2, qd, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    values = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert torch.autograd.gradcheck(lambda q, k, v: module(q, k, v, mask=mask), (query, keys, values))
    names = [name for name, _ in module.named_parameters()]
    if names:  # and through the parameters ("dot" has none)

        def by_params(*params):
            args = (query.detach(), keys.detach(), values.detach())
            return torch.func.functional_call(module, dict(zip(names, params)), args, {"mask": mask})

        params = tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())
        assert torch.autograd.gradcheck(by_params, params)


def test_constructor_errors():
    with pytest.raises(ValueError, match="query_dim=4.*key_dim=5"):
        LuongAttention(4, 5, method="dot")
    with pytest.raises(ValueError, match="concat.*dot.*general|dot.*general.*concat"):
        LuongAttention(4, 4, method="bilinear")
    with pytest.raises(ValueError, match="attn_dim"):
        LuongAttention(4, 4, method="general", attn_dim=3)


@pytest.mark.parametrize(
    "change, arg",
    [
        (lambda q, k, v, m: (q[0, 0], k, v, m), "query"),  # rank 1
        (lambda q, k, v, m: (q[..., :-1], k, v, m), "query"),  # wrong dim
        (lambda q, k, v, m: (q[:, None], k, v, m), "query"),  # rank 4
        (lambda q, k, v, m: (q, k[..., :-1], v, m), "keys"),
        (lambda q, k, v, m: (q, k[:-1], v, m), "keys"),  # batch mismatch
        (lambda q, k, v, m: (q, k, v[:, :-1], m), "values"),
        (lambda q, k, v, m: (q, k, v[0], m), "values"),
        (lambda q, k, v, m: (q, k, v, m.float()), "mask"),
        (lambda q, k, v, m: (q, k, v, m[:, :-1]), "mask"),
    ],
)
@pytest.mark.parametrize("method", ["additive", "general"])
def test_shape_errors_name_the_argument(change, arg, method):
    module = build(method)
    q, k, v, m = change(*inputs(method))
    with pytest.raises(ValueError, match=rf"{arg} must be .*got"):
        module(q, k, v, mask=m)


def test_projected_keys_shape_error():
    module = build("additive")
    query, keys, values, _ = inputs("additive")
    with pytest.raises(ValueError, match=r"projected_keys must be \(b=3, j=5, attn_dim=8\); got shape \(3, 5, 7\)"):
        module(query, keys, values, projected_keys=keys)
    with pytest.raises(ValueError, match="keys must be"):
        module.project_keys(keys[..., :-1])


@pytest.mark.parametrize("method", ["additive", "dot", "general"])
def test_the_one_step_contexts_of_a_fused_decoder_equal_the_modules(method):
    module = build(method, torch.float64)
    query, keys, values, mask = inputs(method, torch.float64)
    mask[2] = False  # a sentence of PAD only: zero context, as from the module
    expected = module(query, keys, values, mask=mask)  # (b, i, f)
    projected = module.project_keys(keys)  # (b, j, a) or (b, j, query_dim)
    for i in range(I):
        if method == "additive":
            got = additive_context(
                query[:, i] @ module.query_proj.weight.T, projected, values, key_mask(mask), module.v
            )
        else:
            got = dot_context(query[:, i], projected, values, key_mask(mask))
        torch.testing.assert_close(got, expected[:, i], rtol=0, atol=1e-12)
    assert not got[2].any()


def test_luong_project_keys_is_the_identity_for_dot_and_w_a_for_general():
    keys = torch.randn(B, J, KD, generator=gen(3))
    assert build("dot").project_keys(keys) is keys
    general = build("general")
    torch.testing.assert_close(general.project_keys(keys), keys @ general.weight_proj.weight.T)
    with pytest.raises(ValueError, match="'concat' is additive"):
        build("concat").project_keys(keys)
    with pytest.raises(ValueError, match=r"keys must be \(b, j, key_dim=7\)"):
        general.project_keys(keys[..., :-1])
