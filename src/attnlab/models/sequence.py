"""Transformer families (Vaswani et al. 2017, "Attention Is All You Need"), composed from
attnlab.models.transformer: no new maths here.

    "transformer"  a bidirectional encoder (section 3.1, the encoder half) that tags: the answers
                   are read at the last n positions, like BERT's token classifiers (Devlin et al. 2019)
    "encdec"       the full encoder-decoder: the decoder writes the n answers after a BOS token,
                   p(y_k | y_<k, x), teacher-forced while training and greedy (with a KV cache) in eval;
                   it implements the start / step interface of attnlab.models.decoding (beam search)
    "lm"           a decoder-only language model (Radford et al. 2018, GPT) over `inputs ++ answers`:
                   p(y_k | x, y_<k) read at positions t - 1 .. t + n - 2

The tagging family uses the shared InputEmbedding and AnswerHead of attnlab.models.baselines;
encdec uses the shared InputEmbedding for its source; the LM keeps DecoderLM's embedding, which
is tied to its output head over the one vocabulary of inputs and answers.

Every attention module is a MultiHeadAttention, so `attnlab.core.capture(model)` records them all.
On the "compiled" path (attnlab.core.fast) each family's forward (training and evaluation) runs
through torch.compile: the whole forward of "transformer", the teacher-forced forward of "encdec"
and "lm", and their single-token decoding steps (StaticKVCache, see attnlab.models.transformer_decoding).
A trace attached, or the "eager" and "fast" paths, run the code as written.
All three take TransformerConfig; the registry entries' defaults size them for about 1e5 parameters
on a small task, like the baselines (embed_dim 64, ff_dim 256, no dropout; encdec has one encoder
and one decoder layer). num_decoder_layers is read by encdec only, tie_embeddings by encdec and lm.

Positions stay TransformerConfig's "sinusoidal" (absolute) in all three, measured against the
alternatives (docs/families.md, "Associative recall"; benchmarks/recall.py):

- tasks that place answers by position (reverse, copy, sort) need absolute positions: the tagger
  reverses 10 symbols at 100% within 100 steps with "sinusoidal", 94% after 300 with "rope",
  41% with "t5" and 31% with "learned" (lr 3e-3, one seed);
- associative recall needs a head that moves each key into its neighbour's position, which a
  learned bias per relative offset gives at once: with `--model.positions=t5 --train.lr=3e-3`
  the tagger reaches 99% at 8 pairs in 3,400-4,800 steps (3 seeds), while "sinusoidal", "rope",
  "alibi" and "learned" end 5,000 steps at 24-26%, and t5 at lr 1e-3 at 34%. No single scheme does both, so recall runs name
  t5 on their command line and the default keeps the positional tasks (and every earlier run's
  defaults) as they were;
- the "lm" is no reason to move either: with each of the five schemes (lr 3e-3) it ends
  5,000 steps at 16-24% at 8 pairs (t5: 25.8% after 10,000), the "a value from the context" level. Under causal
  attention a key cannot see its value, so recall needs the slower induction circuit (the value
  copies its key, the query matches the copy).

What lets both recall is `short_conv` (a ShortConv of width 3 before each attention, as
in Zoology's attention baseline): each position then holds its neighbours, and the lm reaches
100% at 8 pairs in 200 steps; encdec's encoder takes it too (99.6% at 4 pairs in 1,400 steps,
where without it encdec ends 5,000 steps at 31%). It too stays off by default, so that every
earlier run's model is unchanged; benchmarks/recall.py asks for it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from attnlab.attention.positions import build_positions
from attnlab.core import key_mask
from attnlab.core.fast import FastPath
from attnlab.models.baselines import AnswerHead, InputEmbedding, check_answers
from attnlab.models.decoding import greedy_logits
from attnlab.models.registry import MODELS, TaskModel
from attnlab.models.transformer import DecoderLM, Encoder, EncoderDecoder, TransformerConfig
from attnlab.models.transformer_decoding import lazy_compiled, tracing
from attnlab.spec import PAD, TaskSpec

# About 1e5 parameters, like the baselines. Positions are left at "sinusoidal" on purpose: the only
# scheme of attnlab.attention.POSITIONS that learns recall quickly ("t5") cannot place answers by
# absolute position (see the module docstring); recall runs pass --model.positions=t5.
STACK_DEFAULTS: dict[str, Any] = {"embed_dim": 64, "ff_dim": 256, "dropout": 0.0}


def require_token_answers(model: str, spec: TaskSpec, same_vocab: bool) -> None:
    """One-line ValueErrors for a task a decoding family cannot read or write."""
    prefix = f"model {model!r} needs token inputs and answers; this task has"
    if not spec.tokens:
        raise ValueError(f"{prefix} float inputs")
    if spec.regression:
        raise ValueError(f"{prefix} regression answers")
    if same_vocab and spec.num_outputs != spec.vocab_size:
        raise ValueError(
            f"{prefix} {spec.num_outputs} answer classes but {spec.vocab_size} input ids (they must be one vocabulary)"
        )
    if spec.vocab_size < 2:
        raise ValueError(f"TaskSpec.vocab_size: token inputs need >= 2 ids (PAD, one); got {spec.vocab_size}")
    check_answers(spec)


@MODELS.register("transformer", defaults=STACK_DEFAULTS)
class TransformerModel(FastPath, TaskModel):
    """Transformer encoder (bidirectional, PAD keys masked), answers read at the last n positions."""

    Config = TransformerConfig
    fast_step_name = "forward"

    def __init__(self, config: TransformerConfig, spec: TaskSpec):
        super().__init__(config, spec)
        check_answers(spec)  # before the positions, which would only say that max_len is 0
        self.embed = InputEmbedding(spec, config.embed_dim)
        self.positions = build_positions(
            config.positions, embed_dim=config.embed_dim, num_heads=config.num_heads, max_len=spec.seq_len
        )
        self.drop = nn.Dropout(config.dropout)
        self.encoder = Encoder(config)
        self.head = AnswerHead(spec, config.embed_dim)

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, t) ids or (b, t, f) floats -> logits (b, n, o)."""
        if self.path == "compiled" and not tracing(self):
            return lazy_compiled(self, "_compiled_forward", self.logits, "transformer forward")(inputs)
        return self.logits(inputs)

    def logits(self, inputs: Tensor) -> Tensor:
        """The forward as written: inputs (b, t) ids or (b, t, f) floats -> logits (b, n, o)."""
        mask = key_mask(inputs != PAD) if self.spec.tokens else None  # (b, 1, 1, t)
        x = self.drop(self.positions.embed(self.embed(inputs)))  # (b, t, d)
        x = self.encoder(x, mask=mask, positions=self.positions)  # (b, t, d)
        return self.head(x)  # (b, n, o)


@MODELS.register("encdec", defaults={**STACK_DEFAULTS, "num_layers": 1})
class EncoderDecoderModel(FastPath, TaskModel):
    """Transformer encoder-decoder: decodes the n answers after BOS (greedy, KV-cached, in eval).

    Implements the incremental interface of attnlab.models.decoding (start / step / teacher_force).
    """

    Config = TransformerConfig
    seq2seq: ClassVar[bool] = True
    fast_step_name = "teacher-forced forward"

    def __init__(self, config: TransformerConfig, spec: TaskSpec):
        super().__init__(config, spec)
        require_token_answers("encdec", spec, same_vocab=False)
        self.bos_id = spec.num_outputs  # one id past the answers: never an answer itself
        self.net = EncoderDecoder(
            config, spec.vocab_size, spec.num_outputs + 1, max_len=max(spec.seq_len, spec.answer_len), pad_id=PAD
        )
        # The shared input layer in place of the net's own: same size, and the PAD row stays zero.
        self.net.src_embed = InputEmbedding(spec, config.embed_dim)

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, t) ids, targets (b, n) ids (read only while training) -> logits (b, n, o)."""
        if self.training and targets is not None:
            return self.teacher_force(inputs, targets)
        return greedy_logits(self, inputs, self.spec.answer_len)  # (b, n, o)

    def teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """All n steps at once, each fed the previous target: inputs (b, t), targets (b, n) -> (b, n, o)."""
        if self.path == "compiled" and not tracing(self):
            return lazy_compiled(self, "_compiled_forward", self._teacher_force, "encdec teacher forcing")(
                inputs, targets
            )
        return self._teacher_force(inputs, targets)

    def _teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        bos = targets.new_full((targets.shape[0], 1), self.bos_id)  # (b, 1)
        logits, _ = self.net(inputs, torch.cat([bos, targets[:, :-1]], dim=1))  # (b, n, o + 1)
        return logits[..., : self.spec.num_outputs]  # (b, n, o)

    def start(self, inputs: Tensor) -> dict:
        """Encode once: the memory, its PAD mask and a DecoderCache per layer (cross keys static).

        The self-attention caches grow per step on the net's "eager" path (or while traced) and are
        StaticKVCaches for max_len steps otherwise.
        """
        memory, mask = self.net.encode(inputs)  # (b, t, d), (b, 1, 1, t)
        eager = self.net.path == "eager" or tracing(self)
        caches = self.net.new_caches() if eager else self.net.static_caches(memory)
        return {"memory": memory, "mask": mask, "caches": caches}

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        """One decoding step: tokens (b,) -> logits (b, o); the state's caches grow in place."""
        step = self.net.token_step()
        logits = step(tokens[:, None], state["memory"], state["mask"], state["caches"])  # (b, o + 1)
        return logits[:, : self.spec.num_outputs], state  # (b, o)


@MODELS.register("lm", defaults=STACK_DEFAULTS)
class LanguageModel(FastPath, TaskModel):
    """Decoder-only transformer over inputs ++ answers, PAD masked (greedy, KV-cached, in eval)."""

    Config = TransformerConfig
    seq2seq: ClassVar[bool] = True
    fast_step_name = "teacher-forced forward"

    def __init__(self, config: TransformerConfig, spec: TaskSpec):
        super().__init__(config, spec)
        require_token_answers("lm", spec, same_vocab=True)
        self.net = DecoderLM(config, spec.vocab_size, max_len=spec.seq_len + spec.answer_len, pad_id=PAD)

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, t) ids, targets (b, n) ids (read only while training) -> logits (b, n, vocab).

        Left padding is never attended: the prompt's PAD keys are masked, in training and decoding.
        """
        if self.training and targets is not None:
            if self.path == "compiled" and not tracing(self):
                return lazy_compiled(self, "_compiled_forward", self._teacher_force, "lm teacher forcing")(
                    inputs, targets
                )
            return self._teacher_force(inputs, targets)
        if self.config.short_conv:  # the KV caches keep no convolution window: each step reads it all again
            return self._greedy_uncached(inputs)
        if self.net.path == "eager" or tracing(self):
            return self._greedy_eager(inputs)
        return self._greedy_static(inputs)

    def _greedy_uncached(self, inputs: Tensor) -> Tensor:
        """Greedy decoding that runs the whole sequence at every step (no cache): inputs (b, t) -> (b, n, V)."""
        seq, keep, steps = inputs, inputs != PAD, []  # (b, t), (b, t)
        for _ in range(self.spec.answer_len):
            logits = self.net(seq, mask=key_mask(keep))[0][:, -1]  # (b, V)
            steps.append(logits)
            token = logits.argmax(-1, keepdim=True)  # (b, 1)
            seq, keep = torch.cat([seq, token], dim=1), torch.cat([keep, torch.ones_like(token, dtype=torch.bool)], 1)
        return torch.stack(steps, dim=1)  # (b, n, V)

    def _teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        t = inputs.shape[1]
        seq = torch.cat([inputs, targets[:, :-1]], dim=1)  # (b, t + n - 1)
        keep = torch.cat([inputs != PAD, torch.ones_like(targets[:, :-1], dtype=torch.bool)], dim=1)  # (b, t + n - 1)
        logits, _ = self.net(seq, mask=key_mask(keep))  # (b, t + n - 1, V)
        return logits[:, t - 1 :]  # (b, n, V)

    def _greedy_eager(self, inputs: Tensor) -> Tensor:
        real = inputs != PAD  # (b, t)
        caches = self.net.new_caches()
        logits = self.net(inputs, caches=caches, mask=key_mask(real))[0][:, -1]  # (b, V)
        steps = [logits]
        for _ in range(self.spec.answer_len - 1):
            token = logits.argmax(-1, keepdim=True)  # (b, 1)
            real = torch.cat([real, torch.ones_like(token, dtype=torch.bool)], dim=1)  # (b, j + 1)
            logits = self.net(token, caches=caches, mask=key_mask(real))[0][:, -1]  # (b, V)
            steps.append(logits)
        return torch.stack(steps, dim=1)  # (b, n, V)

    def _greedy_static(self, inputs: Tensor) -> Tensor:
        """_greedy_eager with StaticKVCaches and the key mask preallocated (net's step compiled on "compiled")."""
        (b, t), n = inputs.shape, self.spec.answer_len
        keep = torch.ones(b, t + n - 1, dtype=torch.bool, device=inputs.device)  # (b, t + n - 1)
        keep[:, :t] = inputs != PAD
        caches, head_t = self.net.static_caches(b, t + n - 1), self.net.head_transposed()
        step = self.net.token_step()
        logits = self.net.decode_step(inputs, caches, key_mask(keep[:, :t]), head_t)  # (b, V)
        steps = [logits]
        for j in range(t + 1, t + n):
            logits = step(logits.argmax(-1, keepdim=True), caches, key_mask(keep[:, :j]), head_t)  # (b, V)
            steps.append(logits)
        return torch.stack(steps, dim=1)  # (b, n, V)
