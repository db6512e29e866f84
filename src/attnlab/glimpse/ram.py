"""The recurrent attention model (RAM): classify an image from a few glimpses.

Mnih, Heess, Graves, Kavukcuoglu 2014, "Recurrent Models of Visual Attention" (arXiv:1406.6247).
The model never sees the whole image: at each of g steps it takes one glimpse (`Retina`) at a
location it chose, so its cost depends on g and the glimpse size, not on the image size.

    glimpse network f_g:  h_g = ReLU(W_g rho(x, l))        `glimpse_fc`     (b, glimpse_hidden)
                          h_l = ReLU(W_l l)                 `location_fc`    (b, glimpse_hidden)
                          g_t = ReLU(W_gg h_g + W_gl h_l)   `what`, `where`  (b, glimpse_dim)
    core network f_h:     h_{t+1} = ReLU(W_hh h_t + W_hg g_t)   (or an LSTM cell)  (b, core_size)
    location network f_l: mu_t = tanh(W_mu h_t),  l_t ~ N(mu_t, sigma^2 I)   `locator`
    baseline:             b_t = W_b h_t                                       `baseline`
    action network f_a:   logits = W_a h_last  (the state after the last glimpse)  `classifier`

Step t glimpses at l_t, chosen from h_t (h_0 = 0), and updates h_t -> h_{t+1}. The first location
l_0 comes from the same location network at h_0 = 0: mu_0 = tanh(bias), a learned start,
sampled around it while training like every other location. So all g locations are actions of
the policy, each with its log-probability and its baseline.

Training is the paper's hybrid rule (sec. 4): cross-entropy of the classifier (backpropagation
through the glimpse and core networks) plus REINFORCE (Williams 1992) for the location policy,

    grad J = E[ sum_t grad log pi(l_t | s_{1:t}) (R - b_t) ],   R = 1 if the label is right else 0,

and the baseline b_t regressed onto R. A location reaches the glimpse network detached: the
policy is trained by REINFORCE only, never by the classifier's gradient through the crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.core import Traced
from attnlab.glimpse.retina import Retina

SCALE_FACTOR = 2  # each scale of a glimpse is twice the previous width, as in the paper


@dataclass(frozen=True)
class RAMConfig:
    """Sizes of a recurrent attention model (the classes and image channels are the task's: RAM's arguments)."""

    glimpse_size: int = 8  # g, patch side at the finest scale
    num_scales: int = 1  # k, patches per glimpse, each twice the previous width
    num_glimpses: int = 6  # glimpses per image
    glimpse_hidden: int = 128  # width of h_g and of h_l (the paper's 128/128)
    glimpse_dim: int = 256  # width of g_t
    core_size: int = 256  # hidden size of the core RNN
    core: str = "rnn"  # "rnn" (ReLU, the paper's) or "lstm"
    location_std: float = 0.17  # fixed std of the Gaussian location policy

    def __post_init__(self) -> None:
        for name in ("glimpse_size", "num_scales", "num_glimpses", "glimpse_hidden", "glimpse_dim", "core_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"RAMConfig.{name}: must be >= 1; got {getattr(self, name)}")
        if self.core not in ("rnn", "lstm"):
            raise ValueError(f"RAMConfig.core: must be 'rnn' or 'lstm'; got {self.core!r}")
        if not self.location_std > 0:
            raise ValueError(f"RAMConfig.location_std: must be > 0; got {self.location_std}")


class RAMOutput(NamedTuple):
    logits: Tensor  # (b, num_classes) from the last core state
    log_probs: Tensor  # (b, g) log pi(l_t) of each location, summed over (row, col)
    baselines: Tensor  # (b, g) b_t, the expected reward predicted before choosing l_t
    locations: Tensor  # (b, g, 2) where each glimpse looked, (row, col) in [-1, 1]


def gaussian_log_prob(action: Tensor, mean: Tensor, std: float) -> Tensor:
    """log N(action; mean, std^2 I), summed over the last dim: (..., 2), (..., 2) -> (...)."""
    z = (action - mean) / std  # (..., 2)
    return (-0.5 * z**2 - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)  # (...)


def policy_gradient_loss(log_probs: Tensor, baselines: Tensor, reward: Tensor) -> Tensor:
    """REINFORCE with a learned baseline, as one loss to minimise.

    -mean_b sum_t log pi_t (R - b_t), the advantage detached so that it only weighs the score
    function, plus the baseline's mean squared error to R (its own regression target).

    Args:
        log_probs: (b, t) log-probabilities of the actions taken.
        baselines: (b, t) predicted rewards b_t.
        reward: (b,) the episode's reward R.
    Returns:
        () the loss.
    """
    reward = reward.to(log_probs.dtype)[:, None]  # (b, 1)
    advantage = (reward - baselines).detach()  # (b, t)
    policy = -(log_probs * advantage).sum(1).mean()
    return policy + F.mse_loss(baselines, reward.expand_as(baselines))


class RAM(Traced, nn.Module):
    """Recurrent attention model: g glimpses, then a class.

    Tracing: while a trace is attached, each glimpse records kind "glimpse" with weights = the
    locations (b, 2), (row, col) in [-1, 1], and extra `patches` (b, k, c, g, g) (what the retina
    saw), `glimpse_size`, `num_scales`, `scale_factor`. The record's step is the glimpse index.

    Args:
        config: the sizes (RAMConfig).
        num_classes: classes of the classifier, >= 2.
        image_channels: c of the images.
    """

    Config = RAMConfig

    def __init__(self, config: RAMConfig, num_classes: int, image_channels: int = 1):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"RAM: num_classes must be >= 2; got {num_classes}")
        if image_channels < 1:
            raise ValueError(f"RAM: image_channels must be >= 1; got {image_channels}")
        self.config = config
        self.num_classes, self.image_channels = num_classes, image_channels
        self.retina = Retina(config.glimpse_size, config.num_scales, SCALE_FACTOR, image_channels)
        self.glimpse_fc = nn.Linear(self.retina.output_size, config.glimpse_hidden)  # theta_g^0
        self.location_fc = nn.Linear(2, config.glimpse_hidden)  # theta_g^1
        self.what = nn.Linear(config.glimpse_hidden, config.glimpse_dim)  # theta_g^2, from h_g
        self.where = nn.Linear(config.glimpse_hidden, config.glimpse_dim, bias=False)  # from h_l
        if config.core == "lstm":
            self.cell: nn.Module = nn.LSTMCell(config.glimpse_dim, config.core_size)
        else:
            self.recurrent = nn.Linear(config.core_size, config.core_size)  # W_hh
            self.input = nn.Linear(config.glimpse_dim, config.core_size, bias=False)  # W_hg
        self.locator = nn.Linear(config.core_size, 2)
        self.baseline = nn.Linear(config.core_size, 1)
        self.classifier = nn.Linear(config.core_size, num_classes)

    def glimpse_features(self, patches: Tensor, locations: Tensor) -> Tensor:
        """g_t from the retina's patches (b, k, c, g, g) and the locations (b, 2) -> (b, glimpse_dim)."""
        h_g = F.relu(self.glimpse_fc(patches.flatten(1)))  # (b, glimpse_hidden)
        h_l = F.relu(self.location_fc(locations))  # (b, glimpse_hidden)
        return F.relu(self.what(h_g) + self.where(h_l))  # (b, glimpse_dim)

    def _step(self, g_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One core update: g_t (b, glimpse_dim), state (h, cell) each (b, core_size) -> new state."""
        h, cell = state
        if self.config.core == "lstm":
            return self.cell(g_t, (h, cell))  # (b, core_size) twice
        return F.relu(self.recurrent(h) + self.input(g_t)), cell  # (b, core_size)

    def forward(self, images: Tensor) -> RAMOutput:
        """Glimpse g times, then classify.

        Training mode samples each location from the Gaussian policy (clamped to [-1, 1]);
        eval mode looks at the policy's means, so it is deterministic.

        Args:
            images: (b, c, y, x) floats.
        Returns:
            RAMOutput: logits (b, classes), log_probs (b, g), baselines (b, g), locations (b, g, 2).
        """
        cfg = self.config
        b = images.shape[0]
        h = images.new_zeros(b, cfg.core_size)  # (b, core_size), h_0
        state = (h, torch.zeros_like(h))
        log_probs, baselines, locations = [], [], []
        for _ in range(cfg.num_glimpses):
            # The policy reads a detached state: its only training signal is REINFORCE. Without the
            # detach, the log-likelihood term would push the glimpse and core networks to make the
            # sampled locations likely, a gradient that has nothing to do with classifying.
            features = state[0].detach()  # (b, core_size)
            mean = torch.tanh(self.locator(features))  # (b, 2), mu_t
            baselines.append(self.baseline(features)[:, 0])  # (b,)
            if self.training:
                action = (mean + cfg.location_std * torch.randn_like(mean)).detach()  # (b, 2)
            else:
                action = mean.detach()  # (b, 2)
            # The clamp belongs to the environment (the image's edges): the log-probability is of
            # the sampled action, which keeps the REINFORCE estimate unbiased.
            log_probs.append(gaussian_log_prob(action, mean, cfg.location_std))  # (b,)
            location = action.clamp(-1.0, 1.0)  # (b, 2), detached: no gradient through the crop
            patches = self.retina(images, location)  # (b, k, c, g, g)
            if self.tracing:
                self.record(
                    "glimpse",
                    location,
                    patches=patches.detach(),
                    glimpse_size=cfg.glimpse_size,
                    num_scales=cfg.num_scales,
                    scale_factor=SCALE_FACTOR,
                )
            locations.append(location)
            state = self._step(self.glimpse_features(patches, location), state)
        return RAMOutput(
            logits=self.classifier(state[0]),  # (b, classes)
            log_probs=torch.stack(log_probs, 1),  # (b, g)
            baselines=torch.stack(baselines, 1),  # (b, g)
            locations=torch.stack(locations, 1),  # (b, g, 2)
        )

    def reinforce_loss(self, output: RAMOutput, reward: Tensor) -> Tensor:
        """The location policy's loss: REINFORCE with the learned baseline, plus the baseline's MSE.

        Args:
            output: this model's forward output (training mode, so that locations were sampled).
            reward: (b,) R, 1 where the final classification is right, else 0 (`correct_reward`).
        Returns:
            () the loss; add it to the classifier's cross-entropy.
        """
        return policy_gradient_loss(output.log_probs, output.baselines, reward)


def correct_reward(logits: Tensor, labels: Tensor) -> Tensor:
    """The paper's reward: logits (b, classes), labels (b,) -> (b,) 1.0 where argmax is right, else 0."""
    return (logits.argmax(-1) == labels).to(logits.dtype)  # (b,)
