"""The "ram" family: built by name from a TaskSpec, the loop's (logits, aux_loss) contract, the same
training loss on every path, and a policy that learns where to look on a task whose answer is
invisible from the image centre."""

import copy

import pytest
import torch
import torch.nn.functional as F

import attnlab.models.glimpse  # noqa: F401  (registers "ram")
from attnlab.models.registry import build_model, split_output
from attnlab.spec import TaskSpec

SPEC = TaskSpec(seq_len=1, answer_len=1, num_outputs=4, image=(1, 28, 28))
SMALL = {
    "glimpse_size": 8,
    "num_scales": 1,
    "num_glimpses": 3,
    "glimpse_hidden": 32,
    "glimpse_dim": 64,
    "core_size": 64,
}


def quadrant_batch(b, gen):
    """A 3x3 bright square in one of 4 quadrants (the label), 2 columns from the vertical midline
    and far above or below the centre, so the 8x8 patch at the image centre (rows and columns
    10..17) never sees it: rows 4..6 or 21..23, columns 10..12 or 15..17."""
    labels = torch.randint(0, 4, (b,), generator=gen)
    images = torch.zeros(b, 1, 28, 28)
    for i, label in enumerate(labels.tolist()):
        r, c = (4, 21)[label // 2], (10, 15)[label % 2]
        images[i, 0, r : r + 3, c : c + 3] = 1.0
    return images, labels[:, None]  # (b, 1, 28, 28), (b, 1)


def accuracy(model, images, labels):
    model.eval()
    with torch.no_grad():
        return (model(images)[:, 0].argmax(-1) == labels[:, 0]).float().mean().item()


def test_family_is_ram_with_its_own_config_and_the_tasks_sizes():
    from attnlab.config import to_dict
    from attnlab.errors import ConfigError
    from attnlab.glimpse import RAM, RAMConfig
    from attnlab.models import MODELS

    model = build_model("ram", SMALL, TaskSpec(seq_len=1, answer_len=1, num_outputs=5, image=(3, 16, 16)))
    assert MODELS.get("ram").Config is RAMConfig and model.config == RAMConfig(**SMALL) and MODELS.defaults("ram") == {}
    assert isinstance(model.ram, RAM) and model.ram.config is model.config
    assert (model.ram.num_classes, model.ram.image_channels, model.ram.classifier.out_features) == (5, 3, 5)
    assert to_dict(model.config) == {
        **SMALL,
        "core": "rnn",
        "location_std": 0.17,
        "policy_trains_core": False,
        "what_net": "mlp",
        "guide_baseline": False,
        "guide_jitter": False,
        "reward": "correct",
    }
    with pytest.raises(ConfigError, match=r"unknown key model.num_classes"):
        build_model("ram", {"num_classes": 4}, SPEC)


def test_every_path_gives_the_same_training_loss_from_the_same_seed():
    from attnlab.core.fast import set_path

    torch.manual_seed(0)
    model = build_model("ram", SMALL, SPEC).train()
    images, labels = quadrant_batch(6, torch.Generator().manual_seed(1))
    assert set_path(model, "fast") == ["ram (RAM): fused glimpse loop"]
    losses = {}
    for path in ("eager", "fast"):
        set_path(model, path)
        torch.manual_seed(2)
        logits, aux = split_output(model(images, labels))
        losses[path] = F.cross_entropy(logits[:, 0], labels[:, 0]) + aux
    torch.testing.assert_close(losses["fast"], losses["eager"], rtol=0, atol=1e-6)


def test_forward_follows_the_loop_contract():
    torch.manual_seed(0)
    model = build_model("ram", SMALL, SPEC)
    images, labels = quadrant_batch(6, torch.Generator().manual_seed(0))
    logits, aux = split_output(model.train()(images, labels))
    assert logits.shape == (6, 1, 4) and aux.dim() == 0
    assert split_output(model(images))[1] is None  # no targets: logits only
    assert model.eval()(images, labels).shape == (6, 1, 4)


@pytest.mark.parametrize("reward", ["correct", "likelihood"])
def test_the_aux_loss_is_reinforce_with_the_configs_reward(reward):
    from attnlab.glimpse.reinforce import policy_gradient_loss

    model = build_model("ram", {**SMALL, "reward": reward}, SPEC).train()
    images, labels = quadrant_batch(6, torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    logits, aux = model(images, labels)
    torch.manual_seed(3)  # the same draws
    out = model.ram(images)
    right = (out.logits.argmax(-1) == labels[:, 0]).float()  # (b,)
    expected = right if reward == "correct" else -F.cross_entropy(out.logits, labels[:, 0], reduction="none")
    torch.testing.assert_close(logits[:, 0], out.logits)
    torch.testing.assert_close(aux, policy_gradient_loss(out.log_probs, out.baselines, expected.detach()))


def test_bad_specs_and_inputs_fail_with_a_message():
    with pytest.raises(ValueError, match=r"TaskSpec.image"):
        build_model("ram", SMALL, TaskSpec(seq_len=5, answer_len=1, num_outputs=4))
    with pytest.raises(ValueError, match="answer_len"):
        build_model("ram", SMALL, TaskSpec(seq_len=1, answer_len=2, num_outputs=4, image=(1, 28, 28)))
    with pytest.raises(ValueError, match="glimpse_size"):
        build_model("ram", {**SMALL, "glimpse_size": 0}, SPEC)
    with pytest.raises(ValueError, match=r"\(b, 1, 28, 28\)"):
        build_model("ram", SMALL, SPEC)(torch.zeros(2, 1, 20, 20))


def test_the_policy_learns_where_to_look():
    torch.manual_seed(0)
    model = build_model("ram", {**SMALL, "location_std": 0.3}, SPEC)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    test_images, test_labels = quadrant_batch(256, torch.Generator().manual_seed(99))
    for _ in range(400):
        images, labels = quadrant_batch(64, gen)
        logits, aux = model.train()(images, labels)
        loss = F.cross_entropy(logits[:, 0], labels[:, 0]) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
    learned = accuracy(model, test_images, test_labels)
    # The same networks with every glimpse at the centre see blank patches: at best the most frequent class.
    pinned = copy.deepcopy(model)
    torch.nn.init.zeros_(pinned.ram.locator.weight)
    torch.nn.init.zeros_(pinned.ram.locator.bias)
    majority = torch.bincount(test_labels[:, 0], minlength=4).max().item() / len(test_labels)
    assert accuracy(pinned, test_images, test_labels) <= majority
    assert learned >= 0.7 > majority + 0.35


@pytest.mark.parametrize(
    ("unordered", "answers", "order"), [(True, 2, "position"), (False, 2, "value"), (False, 1, "position")]
)
def test_dram_family_guides_in_an_order_its_answers_allow_with_baseline_and_jitter(unordered, answers, order):
    from attnlab.glimpse.guide import guide_loss

    tiny = {"glimpse_size": 4, "num_scales": 2, "glimpses_per_label": 2, "glimpse_hidden": 8, "feature_dim": 8,
            "core_size": 8, "context_size": 4, "context_hidden": 8, "unordered": unordered}  # fmt: skip
    spec = TaskSpec(seq_len=1, answer_len=answers, num_outputs=5, image=(1, 40, 40))
    family = build_model("dram", tiny, spec).train()
    x = torch.rand(3, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[[4, 24, 10, 10], [20, 2, 10, 10]]] * 3)  # (b, 2, 4) the smaller digit's on the right
    targets = torch.tensor([[1, 3]] * 3) if answers == 2 else torch.tensor([[4]] * 3)
    torch.manual_seed(1)
    ours = family.guide_loss(x, targets, boxes)
    torch.manual_seed(1)
    expected = guide_loss(family.dram, x, boxes, targets, order=order, baseline=True, jitter=True)
    assert torch.equal(ours, expected)
    torch.manual_seed(1)
    other = "value" if order == "position" else "position"
    assert (
        not torch.equal(ours, guide_loss(family.dram, x, boxes, targets, order=other, baseline=True, jitter=True))
        or answers == 1
    )


def test_ram_family_guides_with_the_imitation_training_its_core():
    from attnlab.glimpse.guide import guide_loss

    family = build_model("ram", SMALL, SPEC).train()
    images, labels = quadrant_batch(4, torch.Generator().manual_seed(0))
    boxes = torch.tensor([[4, 10, 3, 3], [21, 15, 3, 3], [4, 15, 3, 3], [21, 10, 3, 3]])

    def core_grad(loss):  # the value is the same either way; where its gradient goes is not
        family.zero_grad()
        loss.backward()
        return family.ram.recurrent.weight.grad.clone()

    ours = family.guide_loss(images, labels, boxes)
    expected = guide_loss(family.ram, images, boxes, labels, order="position", trains_core=True)
    assert torch.equal(ours, expected)
    assert torch.equal(core_grad(ours), core_grad(expected))
    ours = family.guide_loss(images, labels, boxes)
    assert not torch.equal(core_grad(ours), core_grad(guide_loss(family.ram, images, boxes, labels, order="position")))


@pytest.mark.parametrize(("baseline", "jitter"), [(True, False), (False, True), (True, True)])
def test_ram_family_guides_with_the_baseline_and_jitter_its_config_asks_for(baseline, jitter):
    from attnlab.glimpse.guide import guide_loss

    values = {**SMALL, "guide_baseline": baseline, "guide_jitter": jitter}
    family = build_model("ram", values, SPEC).train()
    images, labels = quadrant_batch(4, torch.Generator().manual_seed(0))
    boxes = torch.tensor([[4, 10, 3, 3], [21, 15, 3, 3], [4, 15, 3, 3], [21, 10, 3, 3]])
    torch.manual_seed(2)
    ours = family.guide_loss(images, labels, boxes)
    torch.manual_seed(2)
    kw = {"order": "position", "trains_core": True}
    assert torch.equal(ours, guide_loss(family.ram, images, boxes, labels, baseline=baseline, jitter=jitter, **kw))
    torch.manual_seed(2)
    assert not torch.equal(ours, guide_loss(family.ram, images, boxes, labels, **kw))  # the defaults: neither


def test_dram_family_guides_without_baseline_or_jitter_when_its_config_turns_them_off():
    from attnlab.glimpse.guide import guide_loss

    tiny = {"glimpse_size": 4, "num_scales": 2, "glimpses_per_label": 2, "glimpse_hidden": 8, "feature_dim": 8,
            "core_size": 8, "context_size": 4, "context_hidden": 8, "unordered": True}  # fmt: skip
    spec = TaskSpec(seq_len=1, answer_len=2, num_outputs=5, image=(1, 40, 40))
    family = build_model("dram", {**tiny, "guide_baseline": False, "guide_jitter": False}, spec).train()
    x = torch.rand(3, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[[4, 24, 10, 10], [20, 2, 10, 10]]] * 3)  # (b, 2, 4)
    targets = torch.tensor([[1, 3]] * 3)
    plain = guide_loss(family.dram, x, boxes, targets, order="position")  # no draws: the same on every call
    assert torch.equal(family.guide_loss(x, targets, boxes), plain)
