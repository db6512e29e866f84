"""The recurrent attention model: shapes, where gradients go, determinism in eval mode, overfitting one batch, the traced glimpses, and the fused and compiled
paths against the eager loop (same random draws, same outputs and gradients)."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.core import capture
from attnlab.core.fast import set_path
from attnlab.glimpse.ram import RAM, RAMConfig
from attnlab.glimpse.reinforce import correct_reward
from attnlab.glimpse.retina import Retina

TINY = {"glimpse_size": 4, "num_scales": 2, "num_glimpses": 3, "glimpse_hidden": 16, "glimpse_dim": 24, "core_size": 32}


def images_and_labels(b=5, c=1, size=12, classes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, size, size, generator=gen), torch.randint(0, classes, (b,), generator=gen)


@pytest.mark.parametrize(("core", "what_net"), [("rnn", "mlp"), ("lstm", "mlp"), ("rnn", "conv")])
def test_output_shapes(core, what_net):
    torch.manual_seed(0)
    model = RAM(RAMConfig(**TINY, core=core, what_net=what_net), num_classes=7, image_channels=3)
    images, _ = images_and_labels(b=5, c=3, size=13)
    for training in (True, False):
        model.train(training)
        out = model(images)
        assert out.logits.shape == (5, 7)
        assert out.log_probs.shape == out.baselines.shape == (5, 3)
        assert out.locations.shape == (5, 3, 2)
        assert out.locations.abs().max().item() <= 1.0
        assert all(torch.isfinite(t).all() for t in out)


def test_the_classifier_gradient_never_reaches_the_policy_and_reinforce_does():
    torch.manual_seed(0)
    model = RAM(RAMConfig(**TINY), num_classes=10)
    images, labels = images_and_labels()
    out = model(images)
    assert not out.locations.requires_grad
    F.cross_entropy(out.logits, labels).backward()
    for module in (model.locator, model.baseline):
        assert all(p.grad is None or not p.grad.any() for p in module.parameters())
    assert model.glimpse_fc.weight.grad.abs().sum().item() > 0
    assert model.location_fc.weight.grad.abs().sum().item() > 0  # the glimpse network reads l_t
    model.zero_grad(set_to_none=True)
    out = model(images)
    model.reinforce_loss(out, torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])).backward()
    assert model.locator.weight.grad.abs().sum().item() > 0
    assert model.baseline.weight.grad.abs().sum().item() > 0
    for module in (model.glimpse_fc, model.location_fc, model.classifier):  # REINFORCE trains the policy only
        assert all(p.grad is None or not p.grad.any() for p in module.parameters())


@pytest.mark.parametrize("path", ["eager", "fast"])
def test_with_policy_trains_core_reinforce_reaches_the_core_and_glimpse_networks_and_the_baseline_does_not(path):
    torch.manual_seed(0)
    model = RAM(RAMConfig(**TINY, policy_trains_core=True), num_classes=10)
    set_path(model, path)
    images, _ = images_and_labels()
    out = model(images)
    reward = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    advantage = (reward[:, None] - out.baselines).detach()  # (b, g)
    (-(out.log_probs * advantage).sum(1).mean()).backward(retain_graph=True)  # the policy's term alone
    for module in (model.locator, model.glimpse_fc, model.location_fc, model.recurrent, model.input):
        assert module.weight.grad.abs().sum().item() > 0, module
    assert model.classifier.weight.grad is None or not model.classifier.weight.grad.any()
    model.zero_grad(set_to_none=True)
    F.mse_loss(out.baselines, reward[:, None].expand_as(out.baselines)).backward()  # the baseline's term alone
    assert model.baseline.weight.grad.abs().sum().item() > 0
    for module in (model.locator, model.glimpse_fc, model.recurrent):
        assert module.weight.grad is None or not module.weight.grad.any()


def test_eval_mode_is_deterministic_and_training_mode_samples():
    torch.manual_seed(0)
    model = RAM(RAMConfig(**TINY), num_classes=10).eval()
    images, _ = images_and_labels()
    first, second = model(images), model(images)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    model.train()
    assert not torch.equal(model(images).locations, model(images).locations)


def test_given_locations_replace_the_policy_and_keep_its_log_probabilities():
    torch.manual_seed(0)
    model = RAM(RAMConfig(**TINY), num_classes=10).eval()
    images, _ = images_and_labels()
    own = model.forward_eager(images)
    same = model.forward_eager(images, at=own.locations)  # (b, g, 2): where it looked anyway
    for a, b in zip(own, same):
        torch.testing.assert_close(a, b)
    centre = torch.tensor([[0.25, -0.5]]).expand(5, 2)  # (b, 2): every glimpse at one place
    fixed = model.forward_eager(images, at=centre)
    assert torch.equal(fixed.locations, centre[:, None].expand(5, 3, 2))
    assert not torch.allclose(fixed.logits, own.logits)
    assert torch.isfinite(fixed.log_probs).all()


@pytest.mark.parametrize("what_net", ["mlp", "conv"])
def test_overfits_one_batch_of_random_images(what_net):
    # A sharp policy (std 0.001 of the half-width, a fraction of a pixel) keeps each image's glimpses
    # in place, so 32 random labels can be memorised; the hybrid loss trains it as it always does.
    torch.manual_seed(0)
    model = RAM(
        RAMConfig(
            glimpse_size=8,
            num_scales=3,
            num_glimpses=3,
            glimpse_hidden=64,
            glimpse_dim=64,
            core_size=64,
            location_std=0.001,
            what_net=what_net,
        ),
        num_classes=10,
    )
    images, labels = images_and_labels(b=32, size=28, seed=1)
    cross_entropy = []

    def loss():
        out = model(images)
        cross_entropy.append(F.cross_entropy(out.logits, labels))
        return cross_entropy[-1] + model.reinforce_loss(out, correct_reward(out.logits, labels))

    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(500):
        total = loss()
        if cross_entropy[-1].item() < 0.01:
            break
        opt.zero_grad()
        total.backward()
        opt.step()
    assert cross_entropy[0].item() > 2.0
    model.eval()
    with torch.no_grad():
        assert F.cross_entropy(model(images).logits, labels).item() < 0.05


def test_traced_glimpses_have_the_documented_shapes_and_equal_the_output():
    torch.manual_seed(0)
    model = RAM(RAMConfig(**TINY), num_classes=10, image_channels=2).eval()
    images, _ = images_and_labels(b=4, c=2, size=11)
    plain = model(images)
    with torch.no_grad(), capture(model) as trace:
        out = model(images)
    records = trace.select(kind="glimpse")
    assert len(trace) == len(records) == 3
    retina = Retina(4, 2, 2, channels=2)
    for t, record in enumerate(records):
        assert record.step == t and record.path == ""
        assert record.weights.shape == (4, 2)
        torch.testing.assert_close(record.weights, out.locations[:, t])
        assert record.extra["patches"].shape == (4, 2, 2, 4, 4)
        torch.testing.assert_close(record.extra["patches"], retina(images, out.locations[:, t]))
        assert (record.extra["glimpse_size"], record.extra["num_scales"], record.extra["scale_factor"]) == (4, 2, 2)
    for a, b in zip(plain, out):  # tracing changes nothing
        torch.testing.assert_close(a, b)


def test_black_images_give_finite_outputs_and_gradients():
    torch.manual_seed(0)
    model = RAM(RAMConfig(**TINY), num_classes=10)
    images = torch.zeros(3, 1, 12, 12)
    out = model(images)
    loss = F.cross_entropy(out.logits, torch.tensor([0, 1, 2])) + model.reinforce_loss(out, torch.zeros(3))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bad_configs_fail_with_a_message():
    with pytest.raises(ValueError, match=r"RAMConfig.core"):
        RAMConfig(core="gru")
    with pytest.raises(ValueError, match=r"RAMConfig.location_std"):
        RAMConfig(location_std=0.0)
    with pytest.raises(ValueError, match=r"RAMConfig.reward: must be one of 'correct', 'likelihood'; got 'sparse'"):
        RAMConfig(reward="sparse")
    with pytest.raises(ValueError, match=r"RAMConfig.num_glimpses"):
        RAMConfig(num_glimpses=0)
    with pytest.raises(ValueError, match=r"RAMConfig.what_net: must be 'mlp' or 'conv'; got 'cnn'"):
        RAMConfig(what_net="cnn")
    with pytest.raises(ValueError, match="RAMConfig.glimpse_size: what_net='conv' needs >= 4; got 2"):
        RAMConfig(glimpse_size=2, what_net="conv")
    with pytest.raises(ValueError, match="RAM: num_classes must be >= 2; got 1"):
        RAM(RAMConfig(), num_classes=1)
    with pytest.raises(ValueError, match="RAM: image_channels must be >= 1; got 0"):
        RAM(RAMConfig(), num_classes=10, image_channels=0)


def run_path(model, path, images, labels, seed=5):
    """One training-mode forward and backward on `path` from a fixed seed: outputs, loss, grads, next draw."""
    set_path(model, path)
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = model(images)
    loss = F.cross_entropy(out.logits, labels) + model.reinforce_loss(out, correct_reward(out.logits, labels))
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return out, loss, grads, torch.randn(1)


def assert_same_run(got, expected, atol=1e-5):
    for a, b in zip(got[0], expected[0]):
        torch.testing.assert_close(a, b, rtol=0, atol=atol)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=atol)
    assert got[2].keys() == expected[2].keys()
    for name in got[2]:
        torch.testing.assert_close(got[2][name], expected[2][name], rtol=0, atol=atol, msg=name)
    assert torch.equal(got[3], expected[3])  # the same number of draws from the global generator


@pytest.mark.parametrize(
    ("core", "policy_trains_core", "what_net"),
    [("rnn", False, "mlp"), ("lstm", False, "mlp"), ("rnn", True, "mlp"), ("lstm", True, "mlp"), ("rnn", False, "conv")],
)
def test_the_fused_loop_draws_the_same_locations_and_gives_the_same_loss_and_gradients(core, policy_trains_core, what_net):
    torch.manual_seed(0)
    config = RAMConfig(**TINY, core=core, policy_trains_core=policy_trains_core, what_net=what_net)
    model = RAM(config, num_classes=10, image_channels=2)
    images, labels = images_and_labels(b=6, c=2, size=13)
    images[0] = 0.0  # a black image: ReLU units at exactly zero
    eager = run_path(model, "eager", images, labels)
    fast = run_path(model, "fast", images, labels)
    assert_same_run(fast, eager)
    assert not torch.equal(eager[0].locations, run_path(model, "eager", images, labels, seed=6)[0].locations)
    model.eval()  # the policy's means: deterministic on both paths
    set_path(model, "fast")
    fused = model(images)
    set_path(model, "eager")
    for a, b in zip(fused, model(images)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("path", ["eager", "fast"])
def test_draws_made_up_front_give_the_forward_that_draws_them_itself(path):
    torch.manual_seed(0)
    model = RAM(RAMConfig(**TINY), num_classes=10).train()
    set_path(model, path)
    images, _ = images_and_labels(b=4)
    torch.manual_seed(7)
    inside = model(images)
    torch.manual_seed(7)
    noise = model.draw_noise(images)
    assert noise is not None and noise.shape == (TINY.get("num_glimpses", RAMConfig().num_glimpses), 4, 2)
    for a, b in zip(model(images, noise), inside):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert model.eval().draw_noise(images) is None  # eval mode looks at the means: nothing drawn


def test_a_trace_runs_the_eager_loop_on_any_path():
    torch.manual_seed(0)
    model = RAM(RAMConfig(**TINY), num_classes=10).eval()
    images, _ = images_and_labels(b=3)
    eager = model.forward_eager(images)
    set_path(model, "fast")
    with capture(model) as trace:
        traced = model(images)
    assert len(trace.select(kind="glimpse")) == 3
    for a, b in zip(traced, eager):
        assert torch.equal(a, b)  # the very ops of the eager loop


@pytest.mark.parametrize(("glimpse_size", "what_net"), [(2, "mlp"), (4, "conv")])
def test_the_compiled_loop_equals_the_eager_one_and_compiles_once(glimpse_size, what_net):
    from torch._dynamo.utils import counters

    from attnlab.core.fast import FALLBACKS, why_not_compiled

    torch.manual_seed(0)
    sizes = {"num_scales": 2, "num_glimpses": 3, "glimpse_hidden": 8, "glimpse_dim": 8, "core_size": 8}
    model = RAM(RAMConfig(glimpse_size=glimpse_size, what_net=what_net, **sizes), num_classes=3)
    images, labels = images_and_labels(b=4, size=9, classes=3)
    eager = run_path(model, "eager", images, labels)
    assert_same_run(run_path(model, "compiled", images, labels), eager)
    graphs = counters["stats"]["unique_graphs"]
    for seed in (7, 8):  # new draws and new images: the same graph
        assert_same_run(
            run_path(model, "compiled", images.flip(0), labels, seed),
            run_path(model, "eager", images.flip(0), labels, seed),
        )
    assert counters["stats"]["unique_graphs"] == graphs
    if why_not_compiled() is None:  # it compiled, rather than falling back to the fused loop
        assert "ram.fused_glimpse" not in FALLBACKS
