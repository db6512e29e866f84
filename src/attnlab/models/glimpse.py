"""The recurrent attention models of attnlab.glimpse as task families: "ram" and "dram".

Mnih, Heess, Graves, Kavukcuoglu 2014, "Recurrent Models of Visual Attention" (arXiv:1406.6247).
A task that feeds it has image inputs and one class per image:

    inputs (b, c, y, x) floats  ->  RAM: g glimpses  ->  logits (b, 1, o)

While training with targets the family returns `(logits, aux_loss)`: aux_loss is the REINFORCE
term of the location policy with its baseline's regression (`RAM.reinforce_loss`), the reward
being 1 where the argmax of the logits equals the label (the paper's). The loop adds it to the
task's cross-entropy, which trains the classifier, the core and the glimpse network.

"dram" (Ba, Mnih, Kavukcuoglu 2015, arXiv:1412.7755) emits the task's n answers in order, one per
`glimpses_per_label` glimpses,

    inputs (b, c, y, x) floats  ->  DRAM: n * glimpses_per_label glimpses  ->  logits (b, n, o)

and its aux_loss is REINFORCE with sequential rewards (`DRAM.reinforce_loss`: answer k pays 1 when
answers 1..k are right; each location earns the rewards that follow it). With `unordered` the
answers are a set given sorted: matched to the emissions in the order they fit best while training,
and named in ascending order (attnlab.glimpse.dram.best_order, ascending). With one answer it is
RAM with a two-layer LSTM core and a context network. Composition only: every equation lives in
attnlab.glimpse.

Both families have a guided start (`guide_loss`, which the loop trains by for its first
train.guide_steps steps; attnlab.glimpse.guide): every glimpse at the batch's digit, or half at each
of two, the left one first, the policy imitating those locations. With the recipe that
`benchmarks/glimpse.py oracle` measured best: RAM's imitation also trains its core; DRAM's baseline
learns on the guided views and its guided locations are drawn around each digit with the policy's std
(each model's config: guide_baseline and guide_jitter, on for DRAM; RAM's are off by default, as at the
tour's budget they did not help, and on in its 100-epoch runs on cluttered 100x100 canvases).
"""

from __future__ import annotations

from dataclasses import replace

from torch import Tensor

from attnlab.glimpse.dram import DRAM, DRAMConfig, ascending, best_order
from attnlab.glimpse.guide import guide_loss
from attnlab.glimpse.ram import RAM, RAMConfig
from attnlab.glimpse.reinforce import episode_reward
from attnlab.models.registry import MODELS, TaskModel
from attnlab.models.vision import check_image_spec
from attnlab.spec import TaskSpec


@MODELS.register("ram")
class RAMFamily(TaskModel):
    """The recurrent attention model behind the TaskModel interface: images in, (b, 1, o) logits out."""

    Config = RAMConfig
    guided = True

    def __init__(self, config: RAMConfig, spec: TaskSpec):
        super().__init__(config, spec)
        check_image_spec(spec, "ram")
        self.ram = RAM(config, num_classes=spec.num_outputs, image_channels=spec.image[0])

    def draw_noise(self, inputs: Tensor) -> Tensor | None:
        """The random draws a training forward on inputs makes, drawn now ((g, b, 2)); None in eval mode.

        forward(inputs, targets, noise=draw_noise(inputs)) is forward(inputs, targets) with torch's
        generator in the same state, so K seeds trained as one model (attnlab.train.vectorised)
        draw what K runs would.
        """
        return self.ram.draw_noise(inputs)

    def forward(
        self, inputs: Tensor, targets: Tensor | None = None, noise: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Classify images from a few glimpses.

        Args:
            inputs: (b, c, y, x) floats, (c, y, x) == spec.image.
            targets: (b, 1) long labels, or None.
            noise: (g, b, 2) the location policy's draws while training (default: drawn here).
        Returns:
            logits (b, 1, o); in training mode with targets, (logits, aux_loss) with aux_loss () the
            REINFORCE loss of the locations.
        """
        if inputs.dim() != 4 or tuple(inputs.shape[1:]) != tuple(self.spec.image):
            raise ValueError(
                f"ram: inputs must be (b, {', '.join(map(str, self.spec.image))}); got {tuple(inputs.shape)}"
            )
        out = self.ram(inputs, noise)
        logits = out.logits[:, None]  # (b, 1, o)
        if not (self.training and targets is not None):
            return logits
        reward = episode_reward(self.ram.config.reward, out.logits, targets[:, 0])  # (b,)
        return logits, self.ram.reinforce_loss(out, reward)

    def guide_loss(self, inputs: Tensor, targets: Tensor, boxes: Tensor) -> Tensor:
        """A guided step's loss (attnlab.glimpse.guide): inputs (b, c, y, x), targets (b, 1), boxes (b, 4) or
        (b, 2, 4) -> (); every glimpse but the first at the digit (half at each of two, the left one first),
        the policy imitating them, its gradient reaching the core; with config.guide_baseline the baseline
        learns the guided views' reward, with config.guide_jitter the locations are drawn around the digit."""
        cfg = self.ram.config
        return guide_loss(self.ram, inputs, boxes, targets, order="position", trains_core=True,
                          baseline=cfg.guide_baseline, jitter=cfg.guide_jitter)  # fmt: skip


@MODELS.register("dram")
class DRAMFamily(TaskModel):
    """The deep recurrent attention model: images in, one label per answer position out, (b, n, o)."""

    Config = DRAMConfig
    guided = True

    def __init__(self, config: DRAMConfig, spec: TaskSpec):
        super().__init__(config, spec)
        check_image_spec(replace(spec, answer_len=1), "dram")  # an image task; any number of answers
        if spec.answer_len < 1:
            raise ValueError(f"dram: TaskSpec.answer_len must be >= 1; got {spec.answer_len}")
        self.dram = DRAM(config, num_classes=spec.num_outputs, num_labels=spec.answer_len, image_channels=spec.image[0])

    def draw_noise(self, inputs: Tensor) -> Tensor | None:
        """The random draws a training forward on inputs makes, drawn now ((N, b, 2)); None in eval mode.

        forward(inputs, targets, noise=draw_noise(inputs)) is forward(inputs, targets) with torch's
        generator in the same state (as "ram"'s).
        """
        return self.dram.draw_noise(inputs)

    def forward(
        self, inputs: Tensor, targets: Tensor | None = None, noise: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Name the answers in order from glimpses.

        Args:
            inputs: (b, c, y, x) floats, (c, y, x) == spec.image.
            targets: (b, n) long labels in emission order (with config.unordered: in ascending order,
                matched to the emissions by `best_order`), or None.
            noise: (N, b, 2) the location policy's draws while training (default: drawn here).
        Returns:
            logits (b, n, o) (with config.unordered: reordered so that their labels ascend); in training
            mode with targets, (logits, aux_loss) with aux_loss () the REINFORCE loss of the locations
            with sequential rewards (with config.unordered: logits in the targets' order as matched,
            and the rewards those of the matched labels).
        """
        if inputs.dim() != 4 or tuple(inputs.shape[1:]) != tuple(self.spec.image):
            raise ValueError(
                f"dram: inputs must be (b, {', '.join(map(str, self.spec.image))}); got {tuple(inputs.shape)}"
            )
        out = self.dram(inputs, noise)
        unordered = self.dram.config.unordered
        if not (self.training and targets is not None):
            return ascending(out.logits) if unordered else out.logits  # (b, n, o)
        if not unordered:
            return out.logits, self.dram.reinforce_loss(out, targets)
        order = best_order(out.logits.detach(), targets)  # (b, n): targets.gather(1, order) in emission order
        emitted = targets.gather(1, order)  # (b, n) the label each emission is matched to
        logits = out.logits.gather(1, order.argsort(1)[..., None].expand_as(out.logits))  # (b, n, o) as targets
        return logits, self.dram.reinforce_loss(out, emitted)

    def guide_loss(self, inputs: Tensor, targets: Tensor, boxes: Tensor) -> Tensor:
        """A guided step's loss (attnlab.glimpse.guide): inputs (b, c, y, x), targets (b, n), boxes (b, 4) or
        (b, 2, 4) -> (); each answer's glimpses at its digit, drawn around its centre with the policy's std
        (config.guide_jitter), the policy imitating them and the baseline learning their returns
        (config.guide_baseline). Two digits named in either order
        (unordered), or read for one answer, are visited left one first (an order the context network can
        see); named in a fixed order (the smaller first), in that order."""
        cfg = self.dram.config
        order = "value" if not cfg.unordered and self.spec.answer_len > 1 else "position"
        return guide_loss(self.dram, inputs, boxes, targets, order=order, baseline=cfg.guide_baseline,
                          jitter=cfg.guide_jitter)  # fmt: skip
