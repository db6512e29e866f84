"""The deep recurrent attention model: shapes, the trace (which glimpse served which label), the
context network, where gradients go, sequential rewards and REINFORCE against a closed form,
overfitting a few canvases, and the "dram" family behind the loop's contract."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from attnlab.core import capture
from attnlab.glimpse.dram import DRAM, DRAMConfig, ascending, best_order, rewards_to_go, sequential_rewards
from attnlab.glimpse.reinforce import gaussian_log_prob, policy_gradient_loss

TINY = {
    "glimpse_size": 4,
    "num_scales": 2,
    "glimpses_per_label": 2,
    "glimpse_hidden": 16,
    "feature_dim": 16,
    "core_size": 24,
    "context_size": 4,
    "context_hidden": 8,
}


def images(b=5, c=1, size=12, seed=0):
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed))


def model(seed=0, **extra):
    torch.manual_seed(seed)
    return DRAM(DRAMConfig(**{**TINY, **extra}), num_classes=7, num_labels=3, image_channels=1)


@pytest.mark.parametrize("what_net", ["mlp", "conv"])
def test_output_shapes(what_net):
    net = model(what_net=what_net)
    x = images()
    for training in (True, False):
        out = net.train(training)(x)
        assert out.logits.shape == (5, 3, 7)
        assert out.log_probs.shape == out.baselines.shape == (5, 6)  # N = 3 labels x 2 glimpses
        assert out.locations.shape == (5, 6, 2) and out.locations.abs().max() <= 1
        assert all(torch.isfinite(t).all() for t in out)
    assert net.num_glimpses == 6


def test_given_locations_replace_the_policys_and_are_scored_by_it():
    net, x = model().eval(), images()
    at = torch.rand(5, 6, 2, generator=torch.Generator().manual_seed(1)) * 2.4 - 1.2  # (b, N, 2), some past the edge
    for training in (True, False):
        out = net.train(training)(x, at=at)
        assert torch.equal(out.locations, at.clamp(-1, 1))  # every glimpse where it was told
        own = net.eval()(x)  # the first mean comes from the context network alone, whatever the glimpses
        expected = gaussian_log_prob(at[:, 0], own.locations[:, 0], net.config.location_std)  # (b,)
        assert torch.allclose(out.log_probs[:, 0], expected, atol=1e-5)
    assert not torch.allclose(net(x, at=at).logits, net(x).logits)  # elsewhere, other views


def test_trace_records_every_glimpse_with_the_label_it_served():
    net = model().eval()
    x = images()
    with torch.no_grad(), capture(net) as trace:
        out = net(x)
    records = trace.select(kind="glimpse")
    assert len(records) == 6
    assert [r.extra["label"] for r in records] == [0, 0, 1, 1, 2, 2]
    torch.testing.assert_close(torch.stack([r.weights for r in records], 1), out.locations)
    assert records[0].extra["patches"].shape == (5, 2, 1, 4, 4)
    assert {r.extra["glimpse_size"] for r in records} == {4} and {r.extra["scale_factor"] for r in records} == {2}
    with torch.no_grad():
        torch.testing.assert_close(net(x).logits, out.logits)  # tracing changes nothing
    for r in records:  # the gathered patches are the readable retina's at the same locations
        torch.testing.assert_close(r.extra["patches"], net.retina(x, r.weights), rtol=0, atol=0)


def test_training_glimpses_are_the_retinas_at_the_sampled_locations():
    net = model(location_std=1.0).train()  # wide draws: some are clamped at the image's edges
    x = torch.rand(3, 1, 21, 17, generator=torch.Generator().manual_seed(2))  # not square
    torch.manual_seed(5)
    with torch.no_grad(), capture(net) as trace:
        out = net(x)
    assert (out.locations.abs() == 1.0).any() and (out.locations.abs() < 1.0).any()
    for n, r in enumerate(trace.select(kind="glimpse")):
        torch.testing.assert_close(r.weights, out.locations[:, n])
        torch.testing.assert_close(r.extra["patches"], net.retina(x, r.weights), rtol=0, atol=0)


def test_the_context_network_sets_the_first_location():
    x = images(b=4)
    with torch.no_grad():
        net = model().eval()
        first = net(x).locations[:, 0]  # (4, 2)
        assert (first[0] != first[1]).any()  # different images, different coarse views, different starts
        changed = x.clone()
        changed[0] = changed[0].flip(-1)  # another coarse image
        assert (net(changed).locations[0, 0] != first[0]).any()
        # The context network reads only the coarse image: a change that pools away leaves l_0 alone.
        # The context network reads only the coarse image: a change that pools away leaves l_0 alone
        # (pooling 12 -> 4 averages 3x3 blocks; these stripes sum to 0 over every 3 columns).
        stripes = torch.tensor([0.1, -0.2, 0.1]).repeat(4)  # (12,)
        pooled_away = x + stripes  # (4, 1, 12, 12)
        torch.testing.assert_close(net.coarse(pooled_away), net.coarse(x))
        torch.testing.assert_close(net(pooled_away).locations[:, 0], first)
        assert (net(pooled_away).locations[:, 1:] != net(x).locations[:, 1:]).any()  # the glimpses see it

        blind = model(context=False).eval()
        assert blind.context is None
        starts = blind(x).locations[:, 0]  # (4, 2)
        torch.testing.assert_close(starts, starts[:1].expand(4, 2))  # the same learned start for every image
        torch.testing.assert_close(blind(changed).locations[:, 0], starts)
        assert (blind(x).locations[:, 1] != blind(x).locations[:, 1][:1]).any()  # later glimpses do look


def grads(net, names):
    """The total |gradient| of each named submodule's parameters (0 where none arrived)."""
    return {
        name: sum(float(p.grad.abs().sum()) for p in getattr(net, name).parameters() if p.grad is not None)
        for name in names
    }


def test_the_labels_train_the_classification_path_and_reinforce_the_location_layer():
    net = model().train()
    x, labels = images(), torch.randint(0, 7, (5, 3), generator=torch.Generator().manual_seed(1))
    classification, location = ("what", "where", "r1", "classifier"), ("r2", "context", "emission")
    out = net(x)
    F.cross_entropy(out.logits.flatten(0, 1), labels.flatten()).backward()
    seen = grads(net, classification + location + ("baseline",))
    assert all(seen[name] > 0 for name in classification), seen
    assert all(seen[name] == 0 for name in (*location, "baseline")), seen
    net.zero_grad()
    out = net(x)
    net.reinforce_loss(out, labels).backward()
    seen = grads(net, classification + location + ("baseline",))
    assert all(seen[name] > 0 for name in (*location, "baseline")), seen
    assert all(seen[name] == 0 for name in classification), seen


def test_sequential_rewards_are_cumulative_and_each_location_gets_what_follows():
    labels = torch.tensor([[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]])
    guesses = torch.tensor([[1, 2, 3], [1, 0, 3], [0, 2, 3], [1, 2, 0]])
    logits = F.one_hot(guesses, 4).float()  # (4, 3, 4)
    rewards = sequential_rewards(logits, labels)
    assert rewards.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0], [1, 1, 0]]  # r_k = 1 iff labels 1..k right
    returns = rewards_to_go(rewards, 2)  # (4, 6)
    naive = [[sum(row[n // 2 :]) for n in range(6)] for row in rewards.tolist()]  # sum over k >= n // gpl
    assert returns.tolist() == naive


def test_reinforce_with_sequential_rewards_matches_the_closed_form():
    # A 1-D Gaussian policy with known rewards: the surrogate's gradient with respect to each mean
    # is -(1/b) (R_n - b_n) d log N(l_n; mu_n, sigma^2)/d mu_n = -(1/b) (R_n - b_n) (l_n - mu_n) / sigma^2.
    gen = torch.Generator().manual_seed(0)
    b, k, gpl, sigma = 4, 3, 2, 0.3
    n = k * gpl
    mean = torch.randn(b, n, 1, generator=gen, dtype=torch.float64, requires_grad=True)  # (b, N, 1)
    action = (mean + sigma * torch.randn(b, n, 1, generator=gen, dtype=torch.float64)).detach()  # (b, N, 1)
    baselines = torch.rand(b, n, generator=gen, dtype=torch.float64)  # (b, N)
    rewards = torch.randint(0, 2, (b, k), generator=gen).double().cumprod(1)  # (b, K), cumulative
    returns = rewards_to_go(rewards, gpl)  # (b, N)
    loss = policy_gradient_loss(gaussian_log_prob(action, mean, sigma), baselines, returns)
    (grad,) = torch.autograd.grad(loss, mean)
    expected = torch.zeros(b, n, 1, dtype=torch.float64)
    for i in range(b):
        for t in range(n):
            following = sum(rewards[i, j].item() for j in range(t // gpl, k))  # R_{>=t}
            score = (action[i, t, 0] - mean[i, t, 0]).item() / sigma**2  # d log N / d mu
            expected[i, t, 0] = -(following - baselines[i, t].item()) * score / b
    torch.testing.assert_close(grad, expected)
    # and one episode reward per row is RAM's rule: every action gets R
    episode = rewards[:, -1]  # (b,)
    torch.testing.assert_close(
        policy_gradient_loss(gaussian_log_prob(action, mean, sigma), baselines, episode),
        policy_gradient_loss(gaussian_log_prob(action, mean, sigma), baselines, episode[:, None].expand(b, n)),
    )


def test_eval_mode_is_deterministic_and_training_samples():
    net = model()
    x = images()
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(net(x).locations, net(x).locations)
        net.train()
        assert not torch.equal(net(x).locations, net(x).locations)


def test_conv_what_reads_each_scale_as_a_channel():
    net = model(what_net="conv", glimpse_size=8).eval()
    first = net.what[0].first
    assert isinstance(first, torch.nn.Conv2d) and first.in_channels == 2  # k = 2 scales x c = 1
    at = torch.zeros(5, 6, 2)  # every glimpse at the centre
    out = net(images(), at=at)
    with torch.no_grad():  # a change to the coarser scale alone changes what the first glimpse's G_image gives
        first.weight[:, 1] += 1.0
    assert not torch.allclose(net(images(), at=at).logits, out.logits)


@pytest.mark.parametrize("what_net", ["mlp", "conv"])
def test_overfits_a_few_canvases(what_net):
    # 6 canvases of 16x16, two labels each (3 classes): a bright square in one of 3 columns, top and bottom half.
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (6, 2), generator=gen)  # (6, 2)
    x = torch.zeros(6, 1, 16, 16)
    for i, (top, bottom) in enumerate(labels.tolist()):
        x[i, 0, 2:5, 1 + 5 * top : 4 + 5 * top] = 1.0
        x[i, 0, 10:13, 1 + 5 * bottom : 4 + 5 * bottom] = 1.0
    torch.manual_seed(0)
    net = DRAM(
        DRAMConfig(glimpse_size=8, num_scales=2, glimpses_per_label=2, glimpse_hidden=32, feature_dim=32,
                   core_size=48, context_size=4, context_hidden=16, location_std=0.1, what_net=what_net),
        num_classes=3,
        num_labels=2,
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        net.train()
        out = net(x)
        loss = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten()) + net.reinforce_loss(out, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        predicted = net(x).logits.argmax(-1)  # (6, 2)
    assert torch.equal(predicted, labels)


def test_config_and_argument_errors():
    with pytest.raises(ValueError, match=r"DRAMConfig\.glimpses_per_label: must be >= 1"):
        DRAMConfig(glimpses_per_label=0)
    with pytest.raises(ValueError, match=r"DRAMConfig\.location_std: must be > 0"):
        DRAMConfig(location_std=0)
    with pytest.raises(ValueError, match=r"DRAMConfig\.what_net: must be 'mlp' or 'conv'; got 'cnn'"):
        DRAMConfig(what_net="cnn")
    with pytest.raises(ValueError, match=r"DRAMConfig\.glimpse_size: what_net='conv' needs >= 4; got 3"):
        DRAMConfig(**{**TINY, "glimpse_size": 3, "what_net": "conv"})
    with pytest.raises(ValueError, match="DRAM: num_labels must be >= 1"):
        DRAM(DRAMConfig(**TINY), num_classes=3, num_labels=0)
    with pytest.raises(ValueError, match=r"Retina: images must be \(b, c=1, y, x\)"):
        model()(torch.rand(2, 3, 12, 12))


def test_family_follows_the_loop_contract_and_draws_its_noise_ahead():
    import attnlab.models.glimpse  # noqa: F401  (registers "dram")
    from attnlab.models import MODELS
    from attnlab.models.registry import build_model, split_output
    from attnlab.spec import TaskSpec

    spec = TaskSpec(seq_len=1, answer_len=2, num_outputs=10, image=(1, 12, 12))
    assert MODELS.get("dram").Config is DRAMConfig
    torch.manual_seed(0)
    family = build_model("dram", TINY, spec)
    assert isinstance(family.dram, DRAM) and family.dram.num_labels == 2 and family.dram.num_glimpses == 4
    x, targets = images(b=3), torch.randint(0, 10, (3, 2), generator=torch.Generator().manual_seed(2))
    family.train()
    torch.manual_seed(5)
    logits, aux = split_output(family(x, targets))
    assert logits.shape == (3, 2, 10) and aux.dim() == 0
    torch.manual_seed(5)
    noise = family.draw_noise(x)
    assert noise.shape == (4, 3, 2)
    again, aux_again = split_output(family(x, targets, noise=noise))
    torch.testing.assert_close(again, logits)
    torch.testing.assert_close(aux_again, aux)
    family.eval()
    assert family.draw_noise(x) is None and family(x).shape == (3, 2, 10)
    with pytest.raises(ValueError, match=r"dram: inputs must be \(b, 1, 12, 12\)"):
        family(torch.rand(3, 1, 10, 10))
    with pytest.raises(ValueError, match=r"dram: TaskSpec\.image must be"):
        build_model("dram", TINY, TaskSpec(seq_len=4, answer_len=1, vocab_size=5, num_outputs=5))


def test_best_order_is_the_permutation_of_least_cross_entropy():
    logits = torch.randn(6, 3, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 5, (6, 3), generator=torch.Generator().manual_seed(1))
    order = best_order(logits, labels)
    assert order.shape == (6, 3) and (order.sort(1).values == torch.arange(3)).all()  # a permutation each
    for i in range(6):  # against every order, by brute force
        costs = {
            p: float(F.cross_entropy(logits[i], labels[i, list(p)], reduction="sum"))
            for p in itertools.permutations(range(3))
        }
        best = min(costs.values())
        assert costs[tuple(order[i].tolist())] == pytest.approx(best)
    swapped = torch.full((1, 2, 4), -5.0)
    swapped[0, 0, 3], swapped[0, 1, 1] = 5.0, 5.0  # names 3 then 1
    assert best_order(swapped, torch.tensor([[1, 3]])).tolist() == [[1, 0]]


def test_ascending_reorders_the_emissions_by_their_labels():
    logits = torch.full((2, 3, 4), -5.0)
    for i, names in enumerate(([2, 0, 3], [1, 1, 0])):
        for k, name in enumerate(names):
            logits[i, k, name] = 5.0 + k  # each row keeps a mark of where it came from
    out = ascending(logits)
    assert out.argmax(-1).tolist() == [[0, 2, 3], [0, 1, 1]]
    torch.testing.assert_close(out[0], logits[0, [1, 0, 2]])
    torch.testing.assert_close(out[1], logits[1, [2, 0, 1]])  # ties keep their order


def test_unordered_family_matches_the_labels_and_names_them_ascending():
    import attnlab.models.glimpse  # noqa: F401  (registers "dram")
    from attnlab.models.registry import build_model, split_output
    from attnlab.spec import TaskSpec

    spec = TaskSpec(seq_len=1, answer_len=2, num_outputs=10, image=(1, 12, 12))
    torch.manual_seed(0)
    family = build_model("dram", {**TINY, "unordered": True}, spec)
    x = images(b=4)
    targets = torch.tensor([[1, 3], [2, 2], [0, 9], [4, 5]])  # sorted, as a set is given
    family.train()
    noise = family.draw_noise(x)
    raw = family.dram(x, noise)  # the emissions in the order they were made
    logits, aux = split_output(family(x, targets, noise=noise))
    for i in range(4):  # the loss the loop takes is the cheaper of the two orders
        as_given = F.cross_entropy(raw.logits[i], targets[i], reduction="sum")
        swapped = F.cross_entropy(raw.logits[i], targets[i].flip(0), reduction="sum")
        torch.testing.assert_close(F.cross_entropy(logits[i], targets[i], reduction="sum"), min(as_given, swapped))
    emitted = targets.gather(1, best_order(raw.logits, targets))  # (b, 2) each emission's matched label
    torch.testing.assert_close(aux, family.dram.reinforce_loss(raw, emitted))
    family.eval()
    named = family(x)
    assert (named.argmax(-1).diff(dim=1) >= 0).all()
    torch.testing.assert_close(named, ascending(family.dram(x).logits))
    ordered = build_model("dram", TINY, spec)  # the default keeps the emission order
    ordered.load_state_dict(family.state_dict())
    ordered.eval()
    torch.testing.assert_close(ordered(x), family.dram(x).logits)


def test_under_bfloat16_autocast_the_policy_stays_in_the_images_dtype():
    net, x = model(what_net="conv").train(), images()
    torch.manual_seed(4)
    plain = net(x)
    torch.manual_seed(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(x)
    assert low.logits.dtype == torch.bfloat16  # the layers ran in bfloat16
    assert low.locations.dtype == low.log_probs.dtype == torch.float32  # the means, draws and log-probabilities not
    assert torch.allclose(low.locations, plain.locations, atol=0.05)  # the same draws, means a little apart
