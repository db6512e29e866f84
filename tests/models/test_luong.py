"""Luong's fused decoder step against one step of the eager modules (a stacked nn.LSTM,
LuongAttention, W_c), in values and gradients; the whole teacher-forced loop on every path is in
test_seq2seq.py."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.core import key_mask
from attnlab.models import build_model
from attnlab.models.luong import luong_step
from attnlab.models.seq2seq import layers_first
from attnlab.spec import PAD, TaskSpec
from batches import TINY_DECODERS


@pytest.mark.parametrize("extra", [{}, {"method": "dot", "num_layers": 2, "bidirectional": True}])
def test_the_fused_step_equals_the_eager_step(extra):
    torch.manual_seed(0)
    spec = TaskSpec(seq_len=6, answer_len=6, vocab_size=12, num_outputs=12, eos_id=1)
    model = build_model("luong", {**TINY_DECODERS["luong"], **extra}, spec).double().eval()
    inputs = torch.randint(2, 12, (3, 6))  # (b, s)
    inputs[1, 3:] = PAD
    inputs[2, :4] = PAD  # left padding
    state = model.start(inputs)
    previous = torch.randn(3, 16, dtype=torch.float64)  # (b, e) E y_{t-1}
    feed = torch.randn(3, 24, dtype=torch.float64)  # (b, H) h~_{t-1}, not the zeros of the first step
    want_feed, (want_h, want_c) = model._advance(previous, feed, layers_first(state["hidden"]), state)
    w_ih, _, b_ih, b_hh = model.decoder.all_weights[0]
    x = F.linear(previous, w_ih[:, :16], b_ih + b_hh)  # (b, 4H)
    memory, mask = state["memory"], key_mask(state["mask"])
    hidden, cells = state["hidden"][0].unbind(1), state["hidden"][1].unbind(1)  # per layer (b, H)
    keys = model.attention.project_keys(memory)
    got_feed, got_h, got_c = luong_step(x, feed, hidden, cells, keys, memory, mask, model.step_weights(), ())
    torch.testing.assert_close(got_feed, want_feed, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.stack(got_h), want_h, rtol=0, atol=1e-12)  # (layers, b, H)
    torch.testing.assert_close(torch.stack(got_c), want_c, rtol=0, atol=1e-12)
    params = list(model.parameters())
    weights = torch.randn(3, 24, dtype=torch.float64)
    want = torch.autograd.grad((want_feed * weights).sum() + want_c.sum(), params, allow_unused=True, retain_graph=True)
    got = torch.autograd.grad(
        (got_feed * weights).sum() + torch.stack(got_c).sum(), params, allow_unused=True, retain_graph=True
    )
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            torch.testing.assert_close(g, w, rtol=0, atol=1e-12)
