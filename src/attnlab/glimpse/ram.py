"""The recurrent attention model (RAM): classify an image from a few glimpses.

Mnih, Heess, Graves, Kavukcuoglu 2014, "Recurrent Models of Visual Attention" (arXiv:1406.6247).
The model never sees the whole image: at each of g steps it takes one glimpse (`Retina`) at a
location it chose, so its cost depends on g and the glimpse size, not on the image size.

    glimpse network f_g:  h_g = ReLU(W_g rho(x, l))        `glimpse_fc`     (b, glimpse_hidden)
                          (what_net="conv": h_g = ReLU(W_g PatchConv(rho(x, l))), `glimpse_conv`)
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
policy is trained by REINFORCE only, never by the classifier's gradient through the crop. The policy
reads h_t detached (REINFORCE trains the location network alone) unless `policy_trains_core`: then
REINFORCE's gradient also reaches the core and glimpse networks through h_t. The baseline reads h_t detached.

Paths (attnlab.core.fast). "eager" runs `forward_eager`, the loop above as written. "fast" runs
`fused_forward`, the same maths in fewer ops: the images are padded once and every glimpse is one
gather (`retina.foveate`); W_gg h_g + W_gl h_l is one matmul of [h_g; h_l], the core's W_hh h + W_hg g
one matmul of [h; g] (the first step, at h_0 = 0, skips W_hh); the policy's means inside the loop are
computed without a graph, and log pi and b_t for all g glimpses come afterwards from the stacked
states. "compiled" runs glimpses 2..g through a compiled `fused_glimpse` (one graph, compiled once per
process) while autograd records. Every path draws the policy's noise with the same calls in the same
order as the eager loop (a seeded run samples the same locations on every path). A trace runs eager.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.core import Traced
from attnlab.core.cells import lstm_update
from attnlab.core.fast import FastPath, compiled
from attnlab.glimpse.reinforce import REWARDS, gaussian_log_prob, policy_gradient_loss
from attnlab.glimpse.retina import PatchConv, Retina, check_reader, foveate, pad_images, patch_conv

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
    policy_trains_core: bool = False  # REINFORCE's gradient also reaches the core and glimpse networks via h_t
    what_net: str = "mlp"  # W_g reads the patches flattened ("mlp", the paper's) or through PatchConv ("conv")
    guide_baseline: bool = False  # a guided start (attnlab.glimpse.guide) also regresses the baseline on its views
    guide_jitter: bool = False  # a guided start draws its locations around the digit with location_std
    reward: str = "correct"  # REINFORCE's R: "correct" (1 for a right label, the paper's) or "likelihood" (log p)

    def __post_init__(self) -> None:
        for name in ("glimpse_size", "num_scales", "num_glimpses", "glimpse_hidden", "glimpse_dim", "core_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"RAMConfig.{name}: must be >= 1; got {getattr(self, name)}")
        if self.core not in ("rnn", "lstm"):
            raise ValueError(f"RAMConfig.core: must be 'rnn' or 'lstm'; got {self.core!r}")
        check_reader("RAMConfig", self.what_net, self.glimpse_size)
        if not self.location_std > 0:
            raise ValueError(f"RAMConfig.location_std: must be > 0; got {self.location_std}")
        if self.reward not in REWARDS:
            raise ValueError(f"RAMConfig.reward: must be one of {', '.join(map(repr, REWARDS))}; got {self.reward!r}")


class RAMOutput(NamedTuple):
    logits: Tensor  # (b, num_classes) from the last core state
    log_probs: Tensor  # (b, g) log pi(l_t) of each location, summed over (row, col)
    baselines: Tensor  # (b, g) b_t, the expected reward predicted before choosing l_t
    locations: Tensor  # (b, g, 2) where each glimpse looked, (row, col) in [-1, 1]


class RAMParams(NamedTuple):
    """A RAM's parameters as plain tensors: what `fused_forward` reads (and differentiates)."""

    glimpse_w: Tensor  # (glimpse_hidden, k * c * g * g) theta_g^0 (its input PatchConv's with what_net="conv")
    glimpse_b: Tensor  # (glimpse_hidden,)
    location_w: Tensor  # (glimpse_hidden, 2) theta_g^1
    location_b: Tensor  # (glimpse_hidden,)
    what_w: Tensor  # (glimpse_dim, glimpse_hidden) W_gg
    what_b: Tensor  # (glimpse_dim,)
    where_w: Tensor  # (glimpse_dim, glimpse_hidden) W_gl
    core_hh: Tensor  # (gates * core_size, core_size) W_hh (gates = 4 for the LSTM, else 1)
    core_ih: Tensor  # (gates * core_size, glimpse_dim) W_hg
    core_b: Tensor  # (gates * core_size,) the core's one bias (an LSTM's two, summed)
    locator_w: Tensor  # (2, core_size)
    locator_b: Tensor  # (2,)
    baseline_w: Tensor  # (1, core_size)
    baseline_b: Tensor  # (1,)
    classifier_w: Tensor  # (num_classes, core_size)
    classifier_b: Tensor  # (num_classes,)
    reader: tuple[Tensor, ...] = ()  # PatchConv.weights() with what_net="conv", else empty


def _core_step(z: Tensor, cell: Tensor, core: str, first: bool) -> tuple[Tensor, Tensor]:
    """The core's nonlinearity on its pre-activation z (b, gates * core_size) -> (h, cell), each (b, core_size).

    "rnn": h = ReLU(z). "lstm": z holds the gates i, f, g, o (nn.LSTMCell's order), and
    `core.cells.lstm_update` gives cell = sigma(f) cell + sigma(i) tanh(g), h = sigma(o) tanh(cell);
    at the first step cell is 0.
    """
    if core != "lstm":
        return F.relu(z), cell  # (b, core_size)
    return lstm_update(z, None if first else cell)  # (b, core_size) twice


class GlimpseWeights(NamedTuple):
    """What one fused glimpse step reads: the matrices transposed once (not at every step), the ones
    that share an input concatenated."""

    locator_w: Tensor  # (core_size, 2), detached: sampling builds no graph
    locator_b: Tensor  # (2,), detached
    glimpse_w: Tensor  # (k * c * g * g or PatchConv.output_size, glimpse_hidden)
    glimpse_b: Tensor  # (glimpse_hidden,)
    location_w: Tensor  # (2, glimpse_hidden)
    location_b: Tensor  # (glimpse_hidden,)
    what_where: Tensor  # (2 * glimpse_hidden, glimpse_dim) [W_gg, W_gl]^T, applied to [h_g; h_l]
    what_b: Tensor  # (glimpse_dim,)
    core: Tensor  # (core_size + glimpse_dim, gates * core_size) [W_hh, W_hg]^T, applied to [h; g]
    core_input: Tensor  # (glimpse_dim, gates * core_size) W_hg^T alone, for the first step (h_0 = 0)
    core_b: Tensor  # (gates * core_size,)
    reader: tuple[Tensor, ...]  # RAMParams.reader


def fused_glimpse(
    h: Tensor,
    cell: Tensor,
    noise: Tensor,
    padded: Tensor,
    w: GlimpseWeights,
    cfg: RAMConfig,
    height: int,
    width: int,
    first: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """One glimpse and core update, in few ops: the loop body of RAM.forward_eager.

    Args:
        h: (b, core_size) h_t.
        cell: (b, core_size) the LSTM core's cell (unused by the ReLU core).
        noise: (b, 2) the policy's standard normal draw, zeros to look at the mean.
        padded: (b, c, y + S - 1, x + S - 1) the images through retina.pad_images.
        w: the step's weights (fused_forward builds them).
        cfg: the sizes.
        height: y of the images.
        width: x of the images.
        first: h = 0 (t = 0): skip the W_hh term.
    Returns:
        h_{t+1} (b, core_size), the cell (b, core_size), the action l_t before clamping (b, 2), no graph.
    """
    mean = torch.tanh(torch.addmm(w.locator_b, h.detach(), w.locator_w))  # (b, 2), mu_t, no graph
    action = mean + cfg.location_std * noise  # (b, 2)
    location = action.clamp(-1.0, 1.0)  # (b, 2)
    patches = foveate(
        padded, location, height, width, cfg.glimpse_size, cfg.num_scales, SCALE_FACTOR
    )  # (b, k, c, g, g)
    read = patch_conv(patches, *w.reader) if w.reader else patches.flatten(1)  # (b, glimpse_w's rows)
    h_g = F.relu(torch.addmm(w.glimpse_b, read, w.glimpse_w))  # (b, glimpse_hidden)
    h_l = F.relu(torch.addmm(w.location_b, location, w.location_w))  # (b, glimpse_hidden)
    g_t = F.relu(torch.addmm(w.what_b, torch.cat([h_g, h_l], dim=1), w.what_where))  # (b, glimpse_dim)
    if first:
        z = torch.addmm(w.core_b, g_t, w.core_input)  # (b, gates * core_size)
    else:
        z = torch.addmm(w.core_b, torch.cat([h, g_t], dim=1), w.core)  # (b, gates * core_size)
    h, cell = _core_step(z, cell, cfg.core, first)  # (b, core_size) twice
    return h, cell, action


GlimpseStep = Callable[..., tuple[Tensor, Tensor, Tensor]]


def fused_forward(
    images: Tensor, noise: Tensor, p: RAMParams, cfg: RAMConfig, step: GlimpseStep = fused_glimpse
) -> RAMOutput:
    """RAM's forward in few, large ops; the same maths as RAM.forward_eager.

    Args:
        images: (b, c, y, x) floats.
        noise: (g, b, 2) the policy's standard normal draws, zeros to look at the means (eval).
        p: the parameters (RAM.params()).
        cfg: the sizes.
        step: runs glimpses 2..g (the first, at h_0 = 0, always runs fused_glimpse): fused_glimpse or
            a compiled fused_glimpse.
    Returns:
        RAMOutput: logits (b, classes), log_probs (b, g), baselines (b, g), locations (b, g, 2).
    """
    b, _, y, x = images.shape
    padded = pad_images(images, cfg.glimpse_size * SCALE_FACTOR ** (cfg.num_scales - 1))  # (b, c, y + S - 1, x + S - 1)
    w = GlimpseWeights(
        p.locator_w.detach().t(),  # sampling only: log pi is built below, for all glimpses at once
        p.locator_b.detach(),
        p.glimpse_w.t(),
        p.glimpse_b,
        p.location_w.t(),
        p.location_b,
        torch.cat([p.what_w, p.where_w], dim=1).t(),  # (2 * glimpse_hidden, glimpse_dim)
        p.what_b,
        torch.cat([p.core_hh, p.core_ih], dim=1).t(),  # (core_size + glimpse_dim, gates * core_size)
        p.core_ih.t(),  # (glimpse_dim, gates * core_size)
        p.core_b,
        p.reader,
    )
    h = images.new_zeros(b, cfg.core_size)  # (b, core_size), h_0
    cell = torch.zeros_like(h)  # (b, core_size)
    states, actions = [], []
    for t in range(cfg.num_glimpses):
        states.append(h)
        h, cell, action = (fused_glimpse if t == 0 else step)(h, cell, noise[t], padded, w, cfg, y, x, t == 0)
        actions.append(action)
    stacked = torch.stack(states, dim=1)  # (b, g, core_size), h_0 .. h_{g-1}
    policy_reads = stacked if cfg.policy_trains_core else stacked.detach()  # (b, g, core_size)
    taken = torch.stack(actions, dim=1)  # (b, g, 2)
    means = torch.tanh(F.linear(policy_reads, p.locator_w, p.locator_b))  # (b, g, 2)
    return RAMOutput(
        logits=F.linear(h, p.classifier_w, p.classifier_b),  # (b, classes)
        log_probs=gaussian_log_prob(taken, means, cfg.location_std),  # (b, g)
        baselines=F.linear(stacked.detach(), p.baseline_w, p.baseline_b)[..., 0],  # (b, g)
        locations=taken.clamp(-1.0, 1.0),  # (b, g, 2)
    )


_compiled_step: list[GlimpseStep] = []  # fused_glimpse through torch.compile, made on first use


def _compiled_glimpse() -> GlimpseStep:
    """fused_glimpse compiled once per process (one graph: every call has first=False)."""
    if not _compiled_step:
        _compiled_step.append(compiled(fused_glimpse, "ram.fused_glimpse"))
    return _compiled_step[0]


class RAM(FastPath, Traced, nn.Module):
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
    fast_step_name = "fused glimpse loop"

    def __init__(self, config: RAMConfig, num_classes: int, image_channels: int = 1):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"RAM: num_classes must be >= 2; got {num_classes}")
        if image_channels < 1:
            raise ValueError(f"RAM: image_channels must be >= 1; got {image_channels}")
        self.config = config
        self.num_classes, self.image_channels = num_classes, image_channels
        self.retina = Retina(config.glimpse_size, config.num_scales, SCALE_FACTOR, image_channels)
        self.glimpse_conv = (
            PatchConv(config.num_scales * image_channels, config.glimpse_size, config.glimpse_hidden)
            if config.what_net == "conv"
            else None
        )
        read = self.retina.output_size if self.glimpse_conv is None else self.glimpse_conv.output_size
        self.glimpse_fc = nn.Linear(read, config.glimpse_hidden)  # theta_g^0
        self.location_fc = nn.Linear(2, config.glimpse_hidden)  # theta_g^1
        self.what = nn.Linear(config.glimpse_hidden, config.glimpse_dim)  # theta_g^2, from h_g
        self.where = nn.Linear(config.glimpse_hidden, config.glimpse_dim, bias=False)  # from h_l
        if config.core == "lstm":
            self.cell = nn.LSTMCell(config.glimpse_dim, config.core_size)
        else:
            self.recurrent = nn.Linear(config.core_size, config.core_size)  # W_hh
            self.input = nn.Linear(config.glimpse_dim, config.core_size, bias=False)  # W_hg
        self.locator = nn.Linear(config.core_size, 2)
        self.baseline = nn.Linear(config.core_size, 1)
        self.classifier = nn.Linear(config.core_size, num_classes)

    def glimpse_features(self, patches: Tensor, locations: Tensor) -> Tensor:
        """g_t from the retina's patches (b, k, c, g, g) and the locations (b, 2) -> (b, glimpse_dim)."""
        read = patches.flatten(1) if self.glimpse_conv is None else self.glimpse_conv(patches)  # (b, W_g's input)
        h_g = F.relu(self.glimpse_fc(read))  # (b, glimpse_hidden)
        h_l = F.relu(self.location_fc(locations))  # (b, glimpse_hidden)
        return F.relu(self.what(h_g) + self.where(h_l))  # (b, glimpse_dim)

    def _step(self, g_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One core update: g_t (b, glimpse_dim), state (h, cell) each (b, core_size) -> new state."""
        h, cell = state
        if self.config.core == "lstm":
            return self.cell(g_t, (h, cell))  # (b, core_size) twice
        return F.relu(self.recurrent(h) + self.input(g_t)), cell  # (b, core_size)

    def params(self) -> RAMParams:
        """The parameters as fused_forward reads them."""
        if self.config.core == "lstm":
            hh, ih, bias = self.cell.weight_hh, self.cell.weight_ih, self.cell.bias_ih + self.cell.bias_hh
        else:
            hh, ih, bias = self.recurrent.weight, self.input.weight, self.recurrent.bias
        return RAMParams(
            self.glimpse_fc.weight,
            self.glimpse_fc.bias,
            self.location_fc.weight,
            self.location_fc.bias,
            self.what.weight,
            self.what.bias,
            self.where.weight,
            hh,
            ih,
            bias,
            self.locator.weight,
            self.locator.bias,
            self.baseline.weight,
            self.baseline.bias,
            self.classifier.weight,
            self.classifier.bias,
            () if self.glimpse_conv is None else self.glimpse_conv.weights(),
        )

    def draw_noise(self, images: Tensor) -> Tensor | None:
        """The policy's standard normal draws of a training forward on images, (g, b, 2); None in eval mode.

        g calls of randn(b, 2), one per glimpse: the calls and the order of the eager loop, so a
        forward given these draws samples what a forward drawing them itself would.
        """
        return self._draws(images) if self.training else None

    def _draws(self, images: Tensor) -> Tensor:
        b, g = images.shape[0], self.config.num_glimpses
        return torch.stack([torch.randn(b, 2, dtype=images.dtype, device=images.device) for _ in range(g)])  # (g, b, 2)

    def forward(self, images: Tensor, noise: Tensor | None = None) -> RAMOutput:
        """Glimpse g times, then classify.

        Training mode samples each location from the Gaussian policy (clamped to [-1, 1]);
        eval mode looks at the policy's means, so it is deterministic. Runs the step `path` names
        (the eager loop while a trace is attached).

        Args:
            images: (b, c, y, x) floats.
            noise: (g, b, 2) the policy's draws in training mode (default: `draw_noise(images)`).
        Returns:
            RAMOutput: logits (b, classes), log_probs (b, g), baselines (b, g), locations (b, g, 2).
        """
        if self.path == "eager" or self.tracing:
            return self.forward_eager(images, noise)
        self.retina.check(images)
        cfg = self.config
        b = images.shape[0]
        if not self.training:
            noise = images.new_zeros(cfg.num_glimpses, b, 2)  # (g, b, 2): the means themselves
        elif noise is None:
            noise = self._draws(images)  # (g, b, 2)
        # Compiled for training steps only: an evaluation would compile graphs of its own for a few calls.
        training = self.path == "compiled" and torch.is_grad_enabled()
        step = _compiled_glimpse() if training else fused_glimpse
        return fused_forward(images, noise, self.params(), cfg, step)

    def forward_eager(
        self, images: Tensor, noise: Tensor | None = None, at: Tensor | None = None, policy_trains_core: bool = False
    ) -> RAMOutput:
        """The readable loop (the oracle of the other paths): images (b, c, y, x), noise as `forward`'s -> RAMOutput.

        at: (b, g, 2) or (b, 2) locations to look at instead of the policy's (e.g. the digits' centres,
        `retina.box_centres`); the log-probabilities are then the policy's of these locations.
        policy_trains_core: the policy reads the core's state undetached in this call, whatever the config
        says (a guided start's imitation, attnlab.glimpse.guide)."""
        cfg = self.config
        trains_core = cfg.policy_trains_core or policy_trains_core
        b = images.shape[0]
        h = images.new_zeros(b, cfg.core_size)  # (b, core_size), h_0
        state = (h, torch.zeros_like(h))
        log_probs, baselines, locations = [], [], []
        for t in range(cfg.num_glimpses):
            # By default the policy reads a detached state, so REINFORCE trains the location network
            # alone and the core and glimpse networks learn from the classifier only.
            features = state[0].detach()  # (b, core_size)
            mean = torch.tanh(self.locator(state[0] if trains_core else features))  # (b, 2), mu_t
            baselines.append(self.baseline(features)[:, 0])  # (b,)
            if at is not None:
                action = (at if at.dim() == 2 else at[:, t]).to(mean)  # (b, 2)
            elif self.training:
                draw = torch.randn_like(mean) if noise is None else noise[t]  # (b, 2)
                action = (mean + cfg.location_std * draw).detach()  # (b, 2)
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
            reward: (b,) R, by config.reward (`reinforce.episode_reward`): 1 where the final classification
                is right, else 0; or log p of the right label.
        Returns:
            () the loss; add it to the classifier's cross-entropy.
        """
        return policy_gradient_loss(output.log_probs, output.baselines, reward)
