"""Bahdanau's fused decoder step against one step of the eager modules (AdditiveAttention, nn.GRUCell),
in values and gradients; the whole teacher-forced loop on every path is in test_seq2seq.py."""

import torch
import torch.nn.functional as F

from attnlab.core import key_mask
from attnlab.models import build_model
from attnlab.models.bahdanau import bahdanau_step
from attnlab.spec import PAD, TaskSpec
from batches import TINY_DECODERS


def test_the_fused_step_equals_the_eager_step():
    torch.manual_seed(0)
    spec = TaskSpec(seq_len=6, answer_len=6, vocab_size=12, num_outputs=12, eos_id=1)
    model = build_model("bahdanau", TINY_DECODERS["bahdanau"], spec).double().eval()
    inputs = torch.randint(2, 12, (3, 6))  # (b, s)
    inputs[1, 3:] = PAD
    inputs[2, :4] = PAD  # left padding
    state = model.start(inputs)
    previous = torch.randn(3, 16, dtype=torch.float64)  # (b, e) E y_{i-1}
    s, c = model._advance(previous, state)  # (b, H), (b, 2H)
    x = F.linear(previous, model.cell.weight_ih[:, :16], model.cell.bias_ih)  # (b, 3H)
    keys, annotations, mask = state["keys"], state["annotations"], key_mask(state["mask"])
    fused = bahdanau_step(state["s"], x, keys, annotations, mask, model.step_weights())
    torch.testing.assert_close(fused, (s, c), rtol=0, atol=1e-12)
    params = list(model.parameters())
    weights = torch.randn(3, 24, dtype=torch.float64), torch.randn(3, 48, dtype=torch.float64)
    want = torch.autograd.grad(
        (s * weights[0]).sum() + (c * weights[1]).sum(), params, allow_unused=True, retain_graph=True
    )
    got = torch.autograd.grad(
        (fused[0] * weights[0]).sum() + (fused[1] * weights[1]).sum(), params, allow_unused=True, retain_graph=True
    )
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            torch.testing.assert_close(g, w, rtol=0, atol=1e-12)
