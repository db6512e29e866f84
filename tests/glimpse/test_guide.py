"""The guided start: where the guide looks (one digit, two in either order), the loss against its
parts, what each option trains, imitation moving the policy, and the error at the guide's views."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.core import capture
from attnlab.glimpse import DRAM, RAM, DRAMConfig, RAMConfig, box_centres
from attnlab.glimpse.guide import guide_locations, guide_loss, guided_view_error

SIZE = 40  # canvas side


def ram(seed=0, glimpses=4, **extra):
    torch.manual_seed(seed)
    sizes = {"glimpse_size": 6, "num_scales": 2, "glimpse_hidden": 16, "glimpse_dim": 24, "core_size": 24}
    return RAM(RAMConfig(num_glimpses=glimpses, **{**sizes, **extra}), num_classes=5)


def dram(seed=0, labels=2, **extra):
    torch.manual_seed(seed)
    sizes = {"glimpse_size": 6, "num_scales": 2, "glimpses_per_label": 2, "glimpse_hidden": 16, "feature_dim": 16,
             "core_size": 24, "context_size": 4, "context_hidden": 8}  # fmt: skip
    return DRAM(DRAMConfig(**{**sizes, **extra}), num_classes=5, num_labels=labels)


def canvases(b=6, seed=0):
    return torch.rand(b, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


# two boxes per canvas (top, left, height, width), the smaller digit's first: canvas 0 has it on the right,
# canvas 1 on the left, canvas 2 has them in nearly one column (the upper one is the second box)
PAIR_BOXES = torch.tensor([
    [[4, 24, 10, 10], [20, 2, 10, 10]],
    [[2, 3, 10, 10], [25, 26, 10, 10]],
    [[28, 15, 10, 10], [3, 16, 10, 10]],
])  # fmt: skip
PAIR_DIGITS = torch.tensor([[1, 3], [0, 4], [2, 2]])  # (b, 2) sorted, in the boxes' order


def test_one_digit_every_glimpse_at_its_centre():
    net, boxes = ram(), torch.tensor([[0, 0, 10, 10], [30, 20, 10, 10]])
    at, targets = guide_locations(net, canvases(2), boxes, torch.tensor([[3], [1]]))
    centre = box_centres(boxes, SIZE, SIZE)  # (b, 2)
    assert at.shape == (2, 4, 2) and torch.equal(at, centre[:, None].expand(-1, 4, -1))
    assert torch.allclose(at[0, 0], torch.tensor([4.5 / 39 * 2 - 1] * 2))  # pixel 4.5 of 0..39
    assert targets.tolist() == [[3], [1]]


def test_two_digits_half_the_glimpses_each_in_value_or_position_order():
    net, x = dram(), canvases(3)
    centres = box_centres(PAIR_BOXES, SIZE, SIZE)  # (b, 2, 2)
    at, targets = guide_locations(net, x, PAIR_BOXES, PAIR_DIGITS, "value")
    assert torch.equal(at, centres.repeat_interleave(2, dim=1)) and torch.equal(targets, PAIR_DIGITS)
    at, targets = guide_locations(net, x, PAIR_BOXES, PAIR_DIGITS, "position")
    first = torch.tensor([1, 0, 1])  # the left digit's box; canvas 2: nearly one column, so the upper one
    for i in range(3):
        order = [int(first[i]), 1 - int(first[i])]
        assert torch.equal(at[i], centres[i, order].repeat_interleave(2, dim=0))
        assert targets[i].tolist() == PAIR_DIGITS[i, order].tolist()
    sums = PAIR_DIGITS.sum(1, keepdim=True)  # one answer of both digits: the answer stays as it is
    assert torch.equal(guide_locations(net, x, PAIR_BOXES, sums, "position")[1], sums)
    with pytest.raises(ValueError, match="guide order must be one of value, position; got 'size'"):
        guide_locations(net, x, PAIR_BOXES, PAIR_DIGITS, "size")


def test_dram_loss_is_the_views_cross_entropy_less_the_imitation_plus_the_baselines_regression():
    net, x = dram().train(), canvases(3)
    at, targets = guide_locations(net, x, PAIR_BOXES, PAIR_DIGITS, "position")
    out = net(x, at=at)
    cross_entropy = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten())
    right = (out.logits.argmax(-1) == targets).float().cumprod(1)  # (b, K) sequential rewards
    returns = right.flip(1).cumsum(1).flip(1).repeat_interleave(2, dim=1)  # (b, N) the rewards that follow
    imitation = -out.log_probs.mean()
    kw = {"order": "position"}
    assert torch.allclose(guide_loss(net, x, PAIR_BOXES, PAIR_DIGITS, imitate=False, **kw), cross_entropy)
    assert torch.allclose(guide_loss(net, x, PAIR_BOXES, PAIR_DIGITS, **kw), cross_entropy + imitation)
    with_baseline = guide_loss(net, x, PAIR_BOXES, PAIR_DIGITS, baseline=True, **kw)
    assert torch.allclose(with_baseline, cross_entropy + imitation + F.mse_loss(out.baselines, returns))


def jittered(net, at, x, boxes, targets, seed=3):
    """Where a jittered guided step looked (b, g, 2), and the draws (b, g, 2) it made after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    draws = torch.randn_like(at)  # what the loss draws after the same seed
    torch.manual_seed(seed)
    with capture(net) as trace:
        guide_loss(net, x, boxes, targets, jitter=True)
    return torch.stack([r.weights for r in trace.records if r.kind == "glimpse"], 1), draws


def test_jitter_draws_each_guided_location_around_its_centre_with_the_policys_std():
    net, x = dram(location_std=0.1).train(), canvases(3)
    at, _ = guide_locations(net, x, PAIR_BOXES, PAIR_DIGITS, "value")
    looked, draws = jittered(net, at, x, PAIR_BOXES, PAIR_DIGITS)
    assert torch.allclose(looked, (at + 0.1 * draws).clamp(-1, 1))


def test_ram_imitating_starts_at_the_centre_and_trains_the_core_only_when_asked():
    net, x, boxes = ram().train(), canvases(2), torch.tensor([[0, 0, 10, 10], [30, 20, 10, 10]])
    targets = torch.tensor([[3], [1]])
    with capture(net) as trace:
        guide_loss(net, x, boxes, targets)
    looked = torch.stack([r.weights for r in trace.records if r.kind == "glimpse"], 1)  # (b, g, 2)
    assert torch.equal(looked[:, 0], torch.zeros(2, 2))  # where the policy starts
    assert torch.equal(looked[:, 1:], box_centres(boxes, SIZE, SIZE)[:, None].expand(-1, 3, -1))

    def core_grad(**kw):
        net.zero_grad()
        guide_loss(net, x, boxes, targets, **kw).backward()
        return net.recurrent.weight.grad.clone(), net.locator.weight.grad.clone()

    (core, locator), (core_trained, locator_trained) = core_grad(), core_grad(trains_core=True)
    assert torch.equal(locator, locator_trained)  # the imitation trains the locator either way
    assert not torch.allclose(core, core_trained)  # and reaches the core only with trains_core
    net.zero_grad()
    guide_loss(net, x, boxes, targets, imitate=False).backward()  # an oracle: no imitation, no locator gradient
    assert net.locator.weight.grad is None or not net.locator.weight.grad.any()


def test_ram_baseline_learns_the_guided_views_reward_at_every_glimpse_and_jitter_moves_them():
    net, x, boxes = ram(location_std=0.1).train(), canvases(2), torch.tensor([[0, 0, 10, 10], [30, 20, 10, 10]])
    targets = torch.tensor([[3], [1]])
    at, _ = guide_locations(net, x, boxes, targets)
    at[:, 0] = 0  # where the policy starts
    out = net.forward_eager(x, at=at)
    reward = (out.logits.argmax(-1) == targets[:, 0]).float()  # (b,) 1 where the answer is right
    plain = guide_loss(net, x, boxes, targets)
    assert torch.allclose(plain, F.cross_entropy(out.logits, targets[:, 0]) - out.log_probs.mean())
    with_baseline = guide_loss(net, x, boxes, targets, baseline=True)
    regression = F.mse_loss(out.baselines, reward[:, None].expand(-1, 4))
    assert regression > 0 and torch.allclose(with_baseline, plain + regression)
    net.zero_grad()
    guide_loss(net, x, boxes, targets, baseline=True).backward()
    assert net.baseline.weight.grad.abs().sum() > 0  # the baseline trains while guided
    looked, draws = jittered(net, at, x, boxes, targets)
    assert torch.allclose(looked, (at + 0.1 * draws).clamp(-1, 1))  # the first glimpse too, around the start
    likely = ram(location_std=0.1, reward="likelihood").train()  # the same weights (seed 0), log p as its reward
    log_p = -F.cross_entropy(out.logits, targets[:, 0], reduction="none")  # (b,)
    regression = F.mse_loss(out.baselines, log_p[:, None].expand(-1, 4))
    assert torch.allclose(guide_loss(likely, x, boxes, targets, baseline=True), plain + regression)


def test_options_of_the_other_model_are_refused():
    with pytest.raises(ValueError, match="trains_core is RAM's"):
        guide_loss(dram().train(), canvases(3), PAIR_BOXES, PAIR_DIGITS, trains_core=True)


def test_imitation_brings_the_policys_means_to_the_digit():
    net, boxes = ram(glimpses=3), torch.tensor([[2, 2, 10, 10]] * 16)  # the digit always top-left
    x, targets = canvases(16), torch.zeros(16, 1, dtype=torch.long)
    centre = box_centres(boxes[:1], SIZE, SIZE)  # (1, 2)

    def distance():  # of the policy's means after the first glimpse from the digit's centre
        return float((net.eval()(x).locations[:, 1:] - centre).norm(dim=-1).mean())

    before = distance()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        net.train()
        loss = guide_loss(net, x, boxes, targets, trains_core=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert before > 0.5 and distance() < 0.1


def test_error_at_the_guides_views_is_the_models_own_there():
    net, x = dram(unordered=True), canvases(3)
    at, _ = guide_locations(net, x, PAIR_BOXES, PAIR_DIGITS, "position")
    named = net.eval()(x, at=at).logits.argmax(-1).sort(dim=1).values  # (b, 2) named in ascending order
    targets = named.clone()
    targets[0] = (targets[0] + 1) % 5  # canvas 0 wrong, 1 and 2 right
    targets = targets.sort(dim=1).values
    error = guided_view_error(net, x, PAIR_BOXES, targets, "position", chunk=2)
    assert error == pytest.approx(1 / 3)
    assert guided_view_error(net, x, PAIR_BOXES, targets, "position") == error  # chunks change nothing
    assert not net.training


@pytest.mark.parametrize("first", [1, 3, 4])
def test_error_with_the_later_glimpses_at_the_digit_keeps_the_policys_earlier_ones(first):
    net, x = ram(glimpses=4).eval(), canvases(6)
    boxes = torch.tensor([[0, 0, 10, 10], [30, 20, 10, 10], [12, 14, 10, 10]] * 2)  # (b, 4)
    own = net.forward_eager(x).locations  # (b, 4, 2) its means
    at = box_centres(boxes, SIZE, SIZE)[:, None].repeat(1, 4, 1)  # (b, 4, 2) every glimpse at the digit
    at[:, : first - 1] = own[:, : first - 1]
    named = net.forward_eager(x, at=at).logits.argmax(-1)  # (b,)
    targets = named[:, None].clone()
    targets[:2] = (targets[:2] + 1) % 5  # two of six wrong there
    looked, forward = [], net.forward_eager

    def recorded(images, noise=None, at=None, **kw):  # where each call glimpsed
        out = forward(images, noise, at=at, **kw)
        looked.append(out.locations)
        return out

    net.forward_eager = recorded
    assert guided_view_error(net, x, boxes, targets, chunk=4, first=first) == pytest.approx(2 / 6)
    assert torch.allclose(torch.cat(looked[-2:] if first == 1 else looked[1::2]), at, atol=1e-6)  # the scored calls
    with pytest.raises(ValueError, match=r"first must be in 1\.\.4"):
        guided_view_error(net, x, boxes, targets, first=5)
