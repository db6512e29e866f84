"""Show, Attend and Tell: an LSTM that writes a caption word by word, looking at an image's regions.

Xu, Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel, Bengio 2015, "Show, Attend and Tell: Neural
Image Caption Generation with Visual Attention" (arXiv:1502.03044). The inputs are L annotation
vectors a_i (b, L, D), one per location of a convolutional feature map, computed by the task.

    h_0, c_0   = tanh(W_init,h mean_i a_i), tanh(W_init,c mean_i a_i)   `init_h`, `init_c` (sec. 3.1.2)
    e_ti       = f_att(a_i, h_{t-1}) = v^T tanh(W_a h_{t-1} + U_a a_i)  `attention` (AdditiveAttention)
    alpha_t    = softmax_i(e_ti)                                         core.attend
    beta_t     = sigmoid(f_beta(h_{t-1}))                                `gate` (sec. 4.2.1), a scalar
    z_t        = beta_t sum_i alpha_ti a_i              soft: the expectation (sec. 4.2)
               = beta_t a_{s_t}, s_t ~ Multinoulli(alpha_t)   hard (sec. 4.1)
    h_t, c_t   = LSTM([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))              `cell`
    p(y_t)     = softmax(L_o (E y_{t-1} + L_h h_t + L_z z_t))            deep output, eq. 7: `out_*`

With `encoder` "efficientnet_lite0" the inputs are images and the family holds the encoder
(attnlab.models.efficientnet), which then trains with the decoder (fine-tuning; the caption task
with `finetune` loads its ImageNet weights into it first).

`attention` selects the variant: "soft" (deterministic), "hard" (stochastic) or "none", the
mean annotation as z_t at every step (a decoder that sees the image but cannot look anywhere in
particular, as "Show and Tell" does).

Training adds to the task's cross-entropy (the returned auxiliary loss, scaled by the same token
count as that mean, so the sum is the papers' objective per token):

    soft: lambda sum_i (1 - sum_t alpha_ti)^2 per caption, t over its tokens (doubly stochastic
          regularisation, eq. 14: every location gets attention at some word)
    hard: the REINFORCE estimator of eq. 12, -[lambda_r (log p(y | s) - b) sum_t log p(s_t)
          + lambda_e sum_t H(alpha_t)], with b the moving average of log p(y | s) over batches
          (b <- 0.9 b + 0.1 mean log p(y | s)); and, per image with probability 1/2
          (`expectation_rate`), z_t from the expectation instead of a sample (the paper's variance
          reduction), which backpropagates like soft attention.

At test time (eval mode) hard attention also reads the expectation, which is what its training
rule optimises half of the time. A trace records alpha_t as kind "cross", (b, 1, 1, L) a step,
with extra `sampled` True for hard attention (its words look at a location drawn from alpha_t).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.additive import AdditiveAttention
from attnlab.models.baselines import check_at_least, check_dropout
from attnlab.models.decoding import greedy_logits
from attnlab.models.efficientnet import FEATURE_LAYERS, EfficientNetLite
from attnlab.models.registry import MODELS, TaskModel
from attnlab.spec import PAD, TaskSpec

ATTENTIONS = ("soft", "hard", "none")
ENCODERS = ("none", "efficientnet_lite0")


@dataclass(frozen=True)
class ShowAttendTellConfig:
    attention: str = "soft"  # "soft" (deterministic), "hard" (sampled, REINFORCE) or "none" (the mean annotation)
    embed_dim: int = 256  # m, word embeddings and the deep output's width
    hidden_dim: int = 512  # n, the LSTM's state
    attn_dim: int = 256  # hidden width of f_att
    dropout: float = 0.5  # on the deep output's input (and the word embeddings)
    gate: bool = True  # beta_t, the gating scalar of sec. 4.2.1
    doubly_stochastic: float = 1.0  # lambda of eq. 14 (soft attention only)
    reinforce_weight: float = 1.0  # lambda_r of eq. 12 (hard attention)
    entropy_weight: float = 0.01  # lambda_e of eq. 12 (hard attention)
    baseline_decay: float = 0.9  # b <- decay b + (1 - decay) mean log p(y | s) (hard attention)
    expectation_rate: float = 0.5  # hard attention: the chance that an image reads the expectation while training
    encoder: str = (
        "none"  # "none": inputs are annotation vectors; "efficientnet_lite0": images, encoded (and fine-tuned) here
    )
    encoder_layer: str = (
        "stride32"  # with an encoder: its map that gives the annotation vectors ("stride32" or "stride16")
    )

    def __post_init__(self) -> None:
        if self.attention not in ATTENTIONS:
            raise ValueError(
                f"ShowAttendTellConfig.attention: must be one of {', '.join(ATTENTIONS)}; got {self.attention!r}"
            )
        for name in ("embed_dim", "hidden_dim", "attn_dim"):
            check_at_least(self, name, 1)
        check_dropout(self)
        for name in ("doubly_stochastic", "reinforce_weight", "entropy_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"ShowAttendTellConfig.{name}: must be >= 0; got {getattr(self, name)}")
        if self.encoder not in ENCODERS:
            raise ValueError(
                f"ShowAttendTellConfig.encoder: must be one of {', '.join(ENCODERS)}; got {self.encoder!r}"
            )
        if self.encoder_layer not in FEATURE_LAYERS:
            raise ValueError(
                f"ShowAttendTellConfig.encoder_layer: must be one of {', '.join(FEATURE_LAYERS)}; got {self.encoder_layer!r}"
            )
        if not 0.0 <= self.expectation_rate <= 1.0:
            raise ValueError(f"ShowAttendTellConfig.expectation_rate: must be in [0, 1]; got {self.expectation_rate}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"ShowAttendTellConfig.baseline_decay: must be in [0, 1); got {self.baseline_decay}")


def check_caption_spec(spec: TaskSpec, encoder: str = "none") -> None:
    """One-line ValueErrors unless inputs are annotation vectors (b, L, D) (or, with an encoder, RGB
    images (b, 3, y, x)) and answers are words."""
    if encoder != "none" and (len(spec.image) != 3 or spec.image[0] != 3):
        raise ValueError(
            f"show_attend_tell: with encoder {encoder!r} inputs must be RGB images: TaskSpec.image (3, y, x); "
            f"got image={spec.image} (the caption task gives images with task.finetune=true)"
        )
    if encoder == "none" and (spec.input_features < 1 or spec.image):
        raise ValueError(
            "show_attend_tell: inputs must be annotation vectors (b, L, D): TaskSpec.input_features >= 1, "
            f"no image; got input_features={spec.input_features}, image={spec.image}"
        )
    if spec.num_outputs < 2:
        raise ValueError(f"show_attend_tell: answers must be words, TaskSpec.num_outputs >= 2; got {spec.num_outputs}")


@MODELS.register("show_attend_tell")
class ShowAttendTell(TaskModel):
    """The captioning decoder of Xu et al. 2015 over annotation vectors (precomputed, or with `encoder`
    the map of an encoder it holds and trains).

    Decoding interface (attnlab.models.decoding): `start`, `step`, `teacher_force`; bos_id is
    num_outputs (never an answer).
    """

    Config = ShowAttendTellConfig
    seq2seq: ClassVar[bool] = True
    baseline: Tensor  # () b of eq. 12, a buffer

    def __init__(self, config: ShowAttendTellConfig, spec: TaskSpec):
        super().__init__(config, spec)
        check_caption_spec(spec, config.encoder)
        # with an encoder the annotation vectors are its map's, computed (and fine-tuned) in `annotations`
        self.encoder = EfficientNetLite() if config.encoder == "efficientnet_lite0" else None
        width = spec.input_features if self.encoder is None else self.encoder.feature_width(config.encoder_layer)
        d, e, h, o = width, config.embed_dim, config.hidden_dim, spec.num_outputs
        self.bos_id = o
        self.embed = nn.Embedding(o + 1, e)  # E, with the start symbol as the last row
        self.init_h, self.init_c = nn.Linear(d, h), nn.Linear(d, h)
        self.attention = AdditiveAttention(h, d, config.attn_dim)
        self.gate = nn.Linear(h, 1) if config.gate else None  # f_beta
        self.cell = nn.LSTMCell(e + d, h)
        self.out_h = nn.Linear(h, e)  # L_h
        self.out_z = nn.Linear(d, e, bias=False)  # L_z
        self.out = nn.Linear(e, o)  # L_o
        self.drop = nn.Dropout(config.dropout)
        self.register_buffer("baseline", torch.zeros(()))  # b of eq. 12, a moving average (hard attention)

    # ---- decoding interface -------------------------------------------------------------------

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """inputs (b, L, D) (images (b, 3, y, x) with an encoder), targets (b, n) (read only while training)
        -> logits (b, n, o); in training with targets, (logits, the auxiliary loss ())."""
        if self.training and targets is not None:
            return self.teacher_force_with_loss(inputs, targets)
        return greedy_logits(self, inputs, self.spec.answer_len)  # (b, n, o)

    def annotations(self, inputs: Tensor) -> Tensor:
        """The annotation vectors a_i (b, L, D): the inputs themselves, or the encoder's map of the images
        (b, 3, y, x), flattened row-major."""
        if self.encoder is None:
            if inputs.dim() != 3 or inputs.shape[-1] != self.spec.input_features:
                raise ValueError(
                    f"show_attend_tell: inputs must be (b, L, D={self.spec.input_features}); got shape {tuple(inputs.shape)}"
                )
            return inputs
        layer = self.config.encoder_layer
        grid = self.encoder.feature_maps(inputs, upto=layer)[layer]  # (b, D, y', x')
        return grid.flatten(2).transpose(1, 2)  # (b, L, D)

    def start(self, inputs: Tensor) -> dict:
        """The state before the first word: (h_0, c_0) from the mean annotation, U_a a_i projected once."""
        inputs = self.annotations(inputs)  # (b, L, D)
        mean = inputs.mean(1)  # (b, D)
        return {
            "h": torch.tanh(self.init_h(mean)),  # (b, n)
            "c": torch.tanh(self.init_c(mean)),  # (b, n)
            "annotations": inputs,  # (b, L, D)
            "keys": self.attention.project_keys(inputs),  # (b, L, attn_dim)
            "mean": mean,
        }

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        """tokens (b,) y_{t-1} -> (logits (b, o), the next state); z_t is the expectation (soft and hard)."""
        y = self.drop(self.embed(tokens))  # (b, e)
        z, _, _ = self._context(state, state["h"])  # (b, D)
        h, c = self.cell(torch.cat([y, z], -1), (state["h"], state["c"]))  # (b, n) each
        logits = self.out(self.drop(y + self.out_h(h) + self.out_z(z)))  # (b, o)
        return logits, {**state, "h": h, "c": c}

    def teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """inputs (b, L, D), targets (b, n) -> logits (b, n, o), each step fed the previous target."""
        return self._teacher_force(inputs, targets)[0]

    # ---- training -----------------------------------------------------------------------------

    def teacher_force_with_loss(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (b, n, o) and the auxiliary loss () of the chosen attention (see the module docstring)."""
        logits, alphas, picked = self._teacher_force(inputs, targets)
        real = targets != PAD  # (b, n): the caption's words and its end
        tokens = real.sum().clamp(min=1)
        aux = logits.new_zeros(())
        if self.config.attention == "soft" and self.config.doubly_stochastic > 0:
            coverage = (alphas * real[..., None]).sum(1)  # (b, L) sum_t alpha_ti
            aux = aux + self.config.doubly_stochastic * (1 - coverage).pow(2).sum() / tokens
        if self.config.attention == "hard" and picked is not None:
            aux = aux + self._reinforce(logits, targets, alphas, picked, real) / tokens
        return logits, aux

    def _reinforce(self, logits: Tensor, targets: Tensor, alphas: Tensor, picked: Tensor, real: Tensor) -> Tensor:
        """The surrogate whose gradient is minus the bracket of eq. 12 (summed over the batch).

        Args:
            logits: (b, n, o); targets: (b, n); alphas: (b, n, L); real: (b, n) the caption's tokens.
            picked: (b, n) the sampled location of each step, -1 where the row used the expectation.
        """
        log_p_words = -F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD, reduction="none")  # (b, n)
        log_p_caption = (log_p_words * real).sum(1).detach()  # (b,) log p(y | s)
        sampled = picked[:, 0] >= 0  # (b,) rows that sampled their locations
        log_alphas = alphas.clamp(min=1e-12).log()  # (b, n, L)
        log_p_locations = (log_alphas.gather(2, picked.clamp(min=0)[..., None])[..., 0] * real).sum(1)  # (b,)
        entropy = -(alphas * log_alphas).sum(-1)  # (b, n) H(alpha_t)
        advantage = log_p_caption - self.baseline  # (b,)
        if sampled.any():
            decay = self.config.baseline_decay
            self.baseline.mul_(decay).add_((1 - decay) * log_p_caption[sampled].mean())
        policy = (self.config.reinforce_weight * advantage * log_p_locations * sampled).sum()
        return -(policy + self.config.entropy_weight * (entropy * real).sum())

    def _teacher_force(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """The loop over words: logits (b, n, o), alphas (b, n, L) (zeros for "none"), and the sampled
        locations (b, n), -1 on rows that read the expectation (None unless hard attention trains)."""
        state = self.start(inputs)
        b = targets.shape[0]
        bos = targets.new_full((b, 1), self.bos_id)  # (b, 1)
        words = self.drop(self.embed(torch.cat([bos, targets[:, :-1]], 1)))  # (b, n, e) y_{t-1}
        sample = self.config.attention == "hard" and self.training
        # the paper's variance reduction: half of the images read the expectation for the whole caption
        expect = torch.rand(b, device=inputs.device) < self.config.expectation_rate if sample else None  # (b,)
        hs, zs, alphas, picks = [], [], [], []
        h, c = state["h"], state["c"]
        for y in words.unbind(1):
            z, alpha, pick = self._context(state, h, expect)  # (b, D), (b, L), (b,) or None
            if pick is not None:
                picks.append(pick)
            h, c = self.cell(torch.cat([y, z], -1), (h, c))  # (b, n) each
            hs.append(h)
            zs.append(z)
            alphas.append(alpha)
        hidden, context = torch.stack(hs, 1), torch.stack(zs, 1)  # (b, n, n_h), (b, n, D)
        logits = self.out(self.drop(words + self.out_h(hidden) + self.out_z(context)))  # (b, n, o)
        picked = torch.stack(picks, 1) if picks else None  # (b, n)
        return logits, torch.stack(alphas, 1), picked  # (b, n, L)

    def _context(self, state: dict, h: Tensor, expect: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """z_t (b, D), alpha_t (b, L) and the sampled locations (b,) (-1: the expectation; None: no sampling)
        from h_{t-1} (b, n); `expect` (b,) bool, given only while hard attention trains, says which rows
        read the expectation instead of a sample."""
        annotations = state["annotations"]  # (b, L, D)
        if self.config.attention == "none":
            z, alpha = state["mean"], annotations.new_zeros(annotations.shape[:2])  # (b, D), (b, L)
        else:
            sampled = self.config.attention == "hard"  # a trace's reader draws where the word looked from alpha
            z, alpha = self.attention.step_with_weights(
                h, annotations, state["keys"], sampled=sampled
            )  # (b, D), (b, L)
        pick = None
        if expect is not None:
            pick = torch.multinomial(alpha.detach(), 1)[:, 0]  # (b,) s_t ~ Multinoulli(alpha_t)
            hard = annotations[torch.arange(annotations.shape[0]), pick]  # (b, D) a_{s_t}
            z = torch.where(expect[:, None], z, hard)  # (b, D)
            pick = torch.where(expect, torch.full_like(pick, -1), pick)  # (b,)
        if self.gate is not None:
            z = torch.sigmoid(self.gate(h)) * z  # (b, D): beta_t z_t
        return z, alpha, pick
