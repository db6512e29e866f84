"""A guided start for the glimpse models: the first training steps look where the objects are.

Early in training a glimpse model's policy looks at random places, so its classifier learns from
views of clutter, and REINFORCE, rewarded only by right answers, has little to go on. A guided step
puts every glimpse at an object's centre (the task's boxes, `retina.box_centres`) and trains

    loss = cross-entropy of the answers from those views  -  mean_n log pi(l*_n)

so the classifier learns on views of the objects while the policy imitates the guide's locations
l*_n (without `imitate`, the guide is an oracle: views only, no imitation). After the guided steps the
model trains as usual (its own sampled glimpses, REINFORCE); a guided start is a curriculum, never
used at test time.

Where the guide looks: with one object, every glimpse at it; RAM imitating starts its first glimpse
at the canvas's centre instead (where its policy starts, as its h_0 = 0 sees nothing). With two
objects, half the glimpses at each (DRAM: each label's glimpses at its object), in one of two orders:
"value", the smaller digit first (the boxes' order), or "position", by 4 x column + row (the left
object first unless the two nearly share a column, then the upper one): an order a coarse view of the
canvas can see (DRAM's context network), where which digit is smaller cannot be seen.

Options of a guided step (`guide_loss`):
    trains_core  RAM: the imitation's gradient also reaches the core (the policy reads h_t undetached),
                 so the core learns where the object is from what its first glimpse saw.
    baseline     the baseline also learns, regressed onto the returns of the guided views (DRAM's
                 sequential returns; RAM's reward, 1 where its answer is right, at every glimpse). It reads
                 r2 (DRAM) or h_t (RAM) detached, so without this it does not train while guided, and
                 REINFORCE starts at the hand-over with a baseline that predicts nothing.
    jitter       each guided location is drawn around its object's centre with the policy's std, so the
                 classifier also learns from views like those the policy will sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.glimpse.dram import DRAM, DRAMOutput, ascending, rewards_to_go, sequential_rewards
from attnlab.glimpse.ram import RAM, RAMOutput
from attnlab.glimpse.reinforce import baseline_loss, episode_reward
from attnlab.glimpse.retina import box_centres

ORDERS = ("value", "position")  # two digits: the smaller one's glimpses first, or the left (upper) one's


def check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"guide order must be one of {', '.join(ORDERS)}; got {order!r}")


def guide_locations(
    network: RAM | DRAM, inputs: Tensor, boxes: Tensor, targets: Tensor, order: str = "value"
) -> tuple[Tensor, Tensor]:
    """Where the guide looks, and the targets in its order.

    Args:
        network: the RAM or DRAM (its number of glimpses).
        inputs: (b, c, y, x) the canvases.
        boxes: (b, 4) one object's box, or (b, 2, 4) two, the smaller digit's first (long: top, left, height, width).
        targets: (b, 1) the answer (a digit, a pair's class, a sum), or (b, 2) DRAM's two digits, smaller first.
        order: two objects: "value" (as given: the smaller digit first) or "position" (`ORDERS`).
    Returns:
        at (b, glimpses, 2) (row, col) in [-1, 1], and targets (b, 1) or (b, 2) in the guide's order.
    """
    check_order(order)
    centres = box_centres(boxes, *inputs.shape[-2:])  # (b, 2) one object, (b, 2, 2) two
    if centres.dim() == 3 and order == "position":
        ranks = (centres[..., 1] * 4 + centres[..., 0]).argsort(dim=1)  # (b, 2) by column, then row
        centres = centres.gather(1, ranks[:, :, None].expand(-1, -1, 2))  # (b, 2, 2)
        targets = targets.gather(1, ranks) if targets.shape[1] == 2 else targets  # the digits in that order
    glimpses = network.num_glimpses if isinstance(network, DRAM) else network.config.num_glimpses
    if centres.dim() == 3:  # half the glimpses at each: DRAM's labels in turn, or one answer of both
        return centres.repeat_interleave(glimpses // 2, dim=1), targets  # (b, glimpses, 2)
    return centres[:, None].repeat(1, glimpses, 1), targets  # (b, glimpses, 2)


def guide_loss(
    network: RAM | DRAM,
    inputs: Tensor,
    boxes: Tensor,
    targets: Tensor,
    *,
    imitate: bool = True,
    order: str = "value",
    trains_core: bool = False,
    baseline: bool = False,
    jitter: bool = False,
) -> Tensor:
    """One guided step's loss: the answers' cross-entropy from glimpses at the guide's locations
    (`guide_locations`), minus the policy's mean log-likelihood of them when imitating.

    Args:
        network: a RAM or DRAM in training mode.
        inputs, boxes, targets: as `guide_locations`'s (a task's batch: its inputs, boxes and targets).
        imitate: the policy learns to go where the guide looks (RAM's first glimpse then starts at the
            canvas's centre); else the guide is an oracle (views only).
        order, trains_core, baseline, jitter: see the module's docstring; trains_core is RAM's.
    Returns:
        () the loss.
    """
    at, targets = guide_locations(network, inputs, boxes, targets, order)  # (b, glimpses, 2)
    if isinstance(network, RAM) and imitate:
        at[:, 0] = 0  # where RAM's policy starts
    if jitter:
        at = at + network.config.location_std * torch.randn_like(at)  # (b, glimpses, 2)
    out: DRAMOutput | RAMOutput
    if isinstance(network, DRAM):
        if trains_core:
            raise ValueError("guide_loss: trains_core is RAM's (DRAM's location layer reads its own context)")
        out = network(inputs, at=at)
        loss = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten())  # logits (b, K, o), targets (b, K)
        if baseline:  # b_n onto R_n of the guided views: the baseline reads r2 detached, so it trains alone
            returns = rewards_to_go(sequential_rewards(out.logits, targets), network.config.glimpses_per_label)
            loss = loss + baseline_loss(out.baselines, returns)  # baselines, returns (b, N)
    else:
        out = network.forward_eager(inputs, at=at, policy_trains_core=trains_core)
        loss = F.cross_entropy(out.logits, targets[:, 0])  # logits (b, o)
        if baseline:  # b_t onto the guided views' reward (RAMConfig.reward), the same at every glimpse as in REINFORCE
            reward = episode_reward(network.config.reward, out.logits, targets[:, 0])  # (b,)
            loss = loss + baseline_loss(out.baselines, reward)  # (b, t), (b,)
    return loss - out.log_probs.mean() if imitate else loss


@torch.no_grad()
def guided_view_error(
    network: RAM | DRAM,
    inputs: Tensor,
    boxes: Tensor,
    targets: Tensor,
    order: str = "value",
    chunk: int = 1000,
    first: int = 1,
) -> float:
    """The error of a trained model glimpsing where its guide looks, its own policy out of the way: beside
    the error at its policy's means, it splits what is missed between policy and classifier.

    Every answer of an example must be right; DRAM's answers are compared as it names them in use
    (ascending, when unordered), against targets (b, n) as the task gives them. inputs, boxes, targets
    and order as `guide_locations`'s (a task's test set: `Task.eval_set`, whose batch holds the boxes).
    first: glimpses first.. (counted from 1) where the guide looks, the earlier ones where the policy's
    means go (which the later ones cannot change): what the drift of the later glimpses costs.
    """
    glimpses = network.num_glimpses if isinstance(network, DRAM) else network.config.num_glimpses
    if not 1 <= first <= glimpses:
        raise ValueError(f"guided_view_error: first must be in 1..{glimpses} (the glimpses); got {first}")
    network.eval()
    right = 0
    for i in range(0, len(inputs), chunk):
        rows = slice(i, i + chunk)
        at, _ = guide_locations(network, inputs[rows], boxes[rows], targets[rows], order)  # (c, glimpses, 2)
        if first > 1:  # the policy's own means before glimpse `first`
            own = network(inputs[rows]) if isinstance(network, DRAM) else network.forward_eager(inputs[rows])
            at[:, : first - 1] = own.locations[:, : first - 1]  # (c, glimpses, 2)
        if isinstance(network, DRAM):
            logits = network(inputs[rows], at=at).logits  # (c, K, o)
            logits = ascending(logits) if network.config.unordered else logits
        else:
            logits = network.forward_eager(inputs[rows], at=at).logits[:, None]  # (c, 1, o)
        right += int((logits.argmax(-1) == targets[rows]).all(-1).sum())
    return 1 - right / len(inputs)
