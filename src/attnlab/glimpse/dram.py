"""The deep recurrent attention model (DRAM): name several objects, one after another, from glimpses.

Ba, Mnih, Kavukcuoglu 2015, "Multiple Object Recognition with Visual Attention" (arXiv:1412.7755),
sec. 3. Like RAM (attnlab.glimpse.ram) it sees the image only through glimpses at locations it
chooses; unlike RAM it emits a sequence of K labels, one after every `glimpses_per_label` glimpses
(N = K * glimpses_per_label glimpses in all), and a context network gives it a coarse look at the
whole image before the first glimpse.

    glimpse network    g_n = G_image(x_n) ⊙ G_loc(l_n)                 `what`, `where`   (b, feature_dim)
                       G_image(x_n) = ReLU(W_2 ReLU(W_1 x_n)),  x_n = rho(x, l_n) the retina's patches
                       G_loc(l_n)   = ReLU(W_l l_n)
    recurrent network  r1_n = LSTM(g_n, r1_{n-1})        the classification layer   `r1`  (b, core_size)
                       r2_n = LSTM(r1_n, r2_{n-1})       the location layer         `r2`  (b, core_size)
    context network    r2_0 = tanh(W_c2 ReLU(W_c1 I_coarse)),  I_coarse the image average pooled to
                       context_size x context_size (r1_0 = 0, both cells 0)     `context`
    emission network   mu_{n+1} = tanh(E r2_n),  l_{n+1} ~ N(mu_{n+1}, sigma^2 I)  `emission`
    baseline           b_{n+1} = W_b r2_n, the expected return of l_{n+1}     `baseline`
    classification     y_k = softmax(W_y r1_n) at n = k * glimpses_per_label    `classifier`

Glimpses are counted n = 1..N and labels k = 1..K as in the paper; glimpse n serves label
ceil(n / glimpses_per_label) (the trace's `label` is that index from 0). The first location l_1
comes from r2_0: with the context network it depends on the image; with `context=False`, r2_0 = 0
and l_1 is a learned start, the same for every image (the paper's "DRAM without context network").

Where this follows the paper loosely: the paper's G_image and context network are convolutional;
here the context network is a small fully connected stack over the pooled image, and G_image is one
over the retina's patches (`what_net="mlp"`) or a small convolutional stack over its scales stacked as
channels (`what_net="conv"`, retina.PatchConv): the same roles, the same inputs. The paper also describes
a curriculum-like restriction of the labels' gradient to correctly labelled targets; here every
label's cross-entropy trains (the task's loss).

Training (sec. 3.1): the labels' cross-entropy by backpropagation through r1 and the glimpse network;
the location layer (r2, the emission and the context network) by REINFORCE with the baseline
(attnlab.glimpse.reinforce.policy_gradient_loss). The two are kept apart as RAM keeps its policy apart: the
location reaches the glimpse network detached (no cross-entropy gradient through the crop), and r2
reads r1 detached (no REINFORCE gradient into the classification path); the baseline reads r2
detached (its regression does not shape r2). The paper trains all weights on the sum of both terms.

Sequential rewards, the cumulative scheme: label k earns r_k = 1 when labels 1..k are all right,
else 0 (`sequential_rewards`), so a later label pays only while the sequence is right so far; a
location is credited with the rewards that follow it, R_n = sum_{k >= ceil(n / glimpses_per_label)} r_k
(`rewards_to_go`), and

    grad J = E[ sum_n grad log pi(l_n) (R_n - b_n) ],   b_n regressed onto R_n.

Unordered labels (`unordered`, e.g. the two digits of a pair): the model may name them in any order.
While training, each example's labels are matched to its emissions in the order of least summed
cross-entropy (`best_order`, over the K! orders): the cross-entropy and the sequential rewards are
those of that order, so the first label pays for whichever object the first glimpses found. In use,
the emissions are reordered so that their labels ascend (`ascending`), the order in which a sorted
set of labels is given. With labels given sorted and named in a fixed order instead, the first label
(the smallest) can only be known once every object has been seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.core import Traced
from attnlab.core.cells import lstm_update
from attnlab.glimpse.ram import SCALE_FACTOR
from attnlab.glimpse.reinforce import correct_reward, gaussian_log_prob, policy_gradient_loss
from attnlab.glimpse.retina import PatchConv, Retina, check_reader, foveate, pad_images


@dataclass(frozen=True)
class DRAMConfig:
    """Sizes of a deep recurrent attention model (the labels, classes and channels are the task's: DRAM's arguments)."""

    glimpse_size: int = 12  # g, patch side at the finest scale
    num_scales: int = 3  # k, patches per glimpse, each twice the previous width
    glimpses_per_label: int = 3  # glimpses before each emitted label
    glimpse_hidden: int = 128  # width of G_image's first layer
    feature_dim: int = 256  # width of g_n (G_image's and G_loc's outputs)
    core_size: int = 256  # hidden size of each LSTM layer, r1 and r2
    context: bool = True  # r2_0 from the coarse image (False: r2_0 = 0, no context network)
    context_size: int = 12  # side of the coarse image the context network reads
    context_hidden: int = 128  # width of the context network's hidden layer
    location_std: float = 0.17  # fixed std of the Gaussian location policy
    unordered: bool = False  # the labels are a set: matched in the order they fit best (`best_order`)
    what_net: str = "mlp"  # G_image: "mlp" (two fully connected layers) or "conv" (the paper's: convolutional)
    guide_baseline: bool = True  # a guided start (attnlab.glimpse.guide) also regresses the baseline on its returns
    guide_jitter: bool = True  # a guided start draws its locations around each digit with location_std

    def __post_init__(self) -> None:
        for name in (
            "glimpse_size",
            "num_scales",
            "glimpses_per_label",
            "glimpse_hidden",
            "feature_dim",
            "core_size",
            "context_size",
            "context_hidden",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"DRAMConfig.{name}: must be >= 1; got {getattr(self, name)}")
        if not self.location_std > 0:
            raise ValueError(f"DRAMConfig.location_std: must be > 0; got {self.location_std}")
        check_reader("DRAMConfig", self.what_net, self.glimpse_size)


class DRAMOutput(NamedTuple):
    logits: Tensor  # (b, K, num_classes), label k from r1 after its last glimpse
    log_probs: Tensor  # (b, N) log pi(l_n) of each location, summed over (row, col)
    baselines: Tensor  # (b, N) b_n, the return predicted before choosing l_n
    locations: Tensor  # (b, N, 2) where each glimpse looked, (row, col) in [-1, 1]


def sequential_rewards(logits: Tensor, labels: Tensor) -> Tensor:
    """The cumulative rewards: logits (b, K, o), labels (b, K) -> (b, K), r_k = 1 iff labels 1..k are right."""
    return correct_reward(logits, labels).cumprod(dim=1)  # (b, K): right so far


def best_order(logits: Tensor, labels: Tensor) -> Tensor:
    """Unordered labels: the order of each example's labels that its emissions fit best.

    Args:
        logits: (b, K, o) the K emissions.
        labels: (b, K) long, the example's labels in any order.
    Returns:
        (b, K) long `order`: labels.gather(1, order) are the labels in emission order, the permutation of
        least summed cross-entropy over the K! (ties: the first in itertools.permutations' order).
    """
    k = labels.shape[1]
    orders = torch.tensor(list(permutations(range(k))), device=labels.device)  # (P, K)
    candidates = labels[:, orders]  # (b, P, K)
    log_p = logits.log_softmax(-1)[:, None].expand(-1, len(orders), -1, -1)  # (b, P, K, o)
    cost = -log_p.gather(3, candidates[..., None])[..., 0].sum(2)  # (b, P)
    return orders[cost.argmin(1)]  # (b, K)


def ascending(logits: Tensor) -> Tensor:
    """Unordered labels named in ascending order: logits (b, K, o) with the emissions reordered so that
    their argmax labels ascend (stable) -> (b, K, o); the order sorted label sets are given in."""
    order = logits.argmax(-1).argsort(dim=1, stable=True)  # (b, K)
    return logits.gather(1, order[..., None].expand_as(logits))  # (b, K, o)


def rewards_to_go(rewards: Tensor, glimpses_per_label: int) -> Tensor:
    """Each location's return: rewards (b, K) -> (b, N), N = K * gpl; R_n = sum_{k >= n // gpl} r_k (0-based n, k)."""
    following = rewards.flip(1).cumsum(1).flip(1)  # (b, K), sum_{k' >= k} r_k'
    return following.repeat_interleave(glimpses_per_label, dim=1)  # (b, N)


class DRAM(Traced, nn.Module):
    """Deep recurrent attention model: N = K * glimpses_per_label glimpses, K labels.

    Tracing: while a trace is attached, each glimpse records kind "glimpse" with weights = the
    location (b, 2), (row, col) in [-1, 1], and extra `patches` (b, k, c, g, g), `glimpse_size`,
    `num_scales`, `scale_factor` (as RAM's) and `label`, the 0-based index of the label the glimpse serves.

    Args:
        config: the sizes (DRAMConfig).
        num_classes: classes of each label, >= 2.
        num_labels: K, labels emitted per image, >= 1.
        image_channels: c of the images.
    """

    Config = DRAMConfig

    def __init__(self, config: DRAMConfig, num_classes: int, num_labels: int = 1, image_channels: int = 1):
        super().__init__()
        for name, value, least in (
            ("num_classes", num_classes, 2),
            ("num_labels", num_labels, 1),
            ("image_channels", image_channels, 1),
        ):
            if value < least:
                raise ValueError(f"DRAM: {name} must be >= {least}; got {value}")
        self.config = config
        self.num_classes, self.num_labels, self.image_channels = num_classes, num_labels, image_channels
        self.num_glimpses = num_labels * config.glimpses_per_label
        size, feature = config.core_size, config.feature_dim
        self.retina = Retina(config.glimpse_size, config.num_scales, SCALE_FACTOR, image_channels)
        if config.what_net == "mlp":
            self.what = nn.Sequential(  # G_image: W_1, W_2
                nn.Linear(self.retina.output_size, config.glimpse_hidden),
                nn.ReLU(),
                nn.Linear(config.glimpse_hidden, feature),
                nn.ReLU(),
            )
        else:
            conv = PatchConv(config.num_scales * image_channels, config.glimpse_size, config.glimpse_hidden)
            self.what = nn.Sequential(conv, nn.Linear(conv.output_size, feature), nn.ReLU())  # G_image: PatchConv, W_2
        self.where = nn.Sequential(nn.Linear(2, feature), nn.ReLU())  # G_loc: W_l
        self.r1 = nn.Linear(feature + size, 4 * size)  # LSTM gates of r1 from [g_n; r1_{n-1}]
        self.r2 = nn.Linear(2 * size, 4 * size)  # LSTM gates of r2 from [r1_n; r2_{n-1}]
        self.context = (
            nn.Sequential(  # W_c1, W_c2
                nn.Linear(image_channels * config.context_size**2, config.context_hidden),
                nn.ReLU(),
                nn.Linear(config.context_hidden, size),
                nn.Tanh(),
            )
            if config.context
            else None
        )
        self.emission = nn.Linear(size, 2)  # E
        self.baseline = nn.Linear(size, 1)  # W_b
        self.classifier = nn.Linear(size, num_classes)  # W_y

    def coarse(self, images: Tensor) -> Tensor:
        """I_coarse: images (b, c, y, x) average pooled to (b, c, s, s), s = context_size."""
        return F.adaptive_avg_pool2d(images, self.config.context_size)  # (b, c, s, s)

    def initial_location_state(self, images: Tensor) -> Tensor:
        """r2_0 (b, core_size): the context network on the coarse image, or zeros without it."""
        if self.context is None:
            return images.new_zeros(images.shape[0], self.config.core_size)  # (b, core_size)
        return self.context(self.coarse(images).flatten(1))  # (b, core_size)

    def draw_noise(self, images: Tensor) -> Tensor | None:
        """The policy's standard normal draws of a training forward on images, (N, b, 2); None in eval mode.

        N calls of randn(b, 2), one per glimpse, in the order `forward` makes them.
        """
        if not self.training:
            return None
        b = images.shape[0]
        return torch.stack(
            [torch.randn(b, 2, dtype=images.dtype, device=images.device) for _ in range(self.num_glimpses)]
        )  # (N, b, 2)

    def forward(self, images: Tensor, noise: Tensor | None = None, at: Tensor | None = None) -> DRAMOutput:
        """Glimpse N times, emitting a label after every glimpses_per_label glimpses.

        Training mode samples each location from the Gaussian policy (clamped to [-1, 1]); eval
        mode looks at the policy's means, so it is deterministic.

        Args:
            images: (b, c, y, x) floats.
            noise: (N, b, 2) the policy's draws in training mode (default: drawn here).
            at: (b, N, 2) locations to look at instead of the policy's (e.g. each label's digit centre,
                `retina.box_centres`); the log-probabilities are then the policy's of these locations.
        Returns:
            DRAMOutput: logits (b, K, classes), log_probs (b, N), baselines (b, N), locations (b, N, 2).
        """
        self.retina.check(images)
        cfg = self.config
        b = images.shape[0]
        h1 = images.new_zeros(b, cfg.core_size)  # (b, core_size), r1_0
        c1, c2 = torch.zeros_like(h1), torch.zeros_like(h1)  # (b, core_size) the cells
        h2 = self.initial_location_state(images)  # (b, core_size), r2_0
        _, _, y, x = images.shape
        # Padded once, each glimpse one gather (retina.foveate): the retina's own indexing and masking per
        # glimpse is four times slower on a 100x100 canvas and gives the same patches.
        padded = pad_images(images, self.retina.patch_sizes[-1])  # (b, c, y + S - 1, x + S - 1)
        logits, log_probs, baselines, locations = [], [], [], []
        for n in range(self.num_glimpses):
            # (b, 2), mu_n: REINFORCE trains E, r2 and the context network; in the images' dtype under autocast
            mean = torch.tanh(self.emission(h2).to(images.dtype))
            baselines.append(self.baseline(h2.detach())[:, 0])  # (b,), regressed without shaping r2
            if at is not None:
                action = at[:, n].to(mean)  # (b, 2)
            elif self.training:
                draw = torch.randn_like(mean) if noise is None else noise[n]  # (b, 2)
                action = (mean + cfg.location_std * draw).detach()  # (b, 2)
            else:
                action = mean.detach()  # (b, 2)
            log_probs.append(gaussian_log_prob(action, mean, cfg.location_std))  # (b,)
            location = action.clamp(-1.0, 1.0)  # (b, 2), the image's edges clamp, the policy does not
            patches = foveate(padded, location, y, x, cfg.glimpse_size, cfg.num_scales, SCALE_FACTOR)  # (b, k, c, g, g)
            label = n // cfg.glimpses_per_label
            if self.tracing:
                self.record(
                    "glimpse",
                    location,
                    patches=patches.detach(),
                    glimpse_size=cfg.glimpse_size,
                    num_scales=cfg.num_scales,
                    scale_factor=SCALE_FACTOR,
                    label=label,
                )
            locations.append(location)
            seen = patches.flatten(1) if cfg.what_net == "mlp" else patches  # (b, k*c*g*g) or (b, k, c, g, g)
            g = self.what(seen) * self.where(location)  # (b, feature_dim), g_n
            h1, c1 = lstm_update(self.r1(torch.cat([g, h1], dim=1)), c1)  # (b, core_size) twice, r1_n
            # r2 reads r1 detached: the log-likelihood of the locations trains the location layer
            # (r2, E, the context network) but never pulls on r1 and the glimpse network, which the
            # labels' cross-entropy trains; as in RAM, each half has one training signal.
            h2, c2 = lstm_update(self.r2(torch.cat([h1.detach(), h2], dim=1)), c2)  # (b, core_size) twice, r2_n
            if (n + 1) % cfg.glimpses_per_label == 0:
                logits.append(self.classifier(h1))  # (b, classes), y_label
        return DRAMOutput(
            logits=torch.stack(logits, 1),  # (b, K, classes)
            log_probs=torch.stack(log_probs, 1),  # (b, N)
            baselines=torch.stack(baselines, 1),  # (b, N)
            locations=torch.stack(locations, 1),  # (b, N, 2)
        )

    def reinforce_loss(self, output: DRAMOutput, labels: Tensor) -> Tensor:
        """The location policy's loss with sequential rewards, plus the baseline's MSE.

        Args:
            output: this model's forward output (training mode, so that locations were sampled).
            labels: (b, K) long, the true labels in emission order.
        Returns:
            () the loss; add it to the labels' cross-entropy.
        """
        rewards = sequential_rewards(output.logits, labels)  # (b, K)
        returns = rewards_to_go(rewards, self.config.glimpses_per_label)  # (b, N)
        return policy_gradient_loss(output.log_probs, output.baselines, returns)
