"""Show, Attend and Tell's decoder: the decoding interface, its regularisers and its REINFORCE estimator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlab.core import capture
from attnlab.models import build_model
from attnlab.models.captioning import ShowAttendTell
from attnlab.models.decoding import beam_search, greedy
from attnlab.spec import PAD, TaskSpec

EOS = 2
SPEC = TaskSpec(seq_len=6, answer_len=7, input_features=10, num_outputs=15, eos_id=EOS)
SMALL = {"embed_dim": 8, "hidden_dim": 12, "attn_dim": 6}


def model(attention: str = "soft", spec: TaskSpec = SPEC, **fields: object) -> ShowAttendTell:
    torch.manual_seed(0)
    built = build_model("show_attend_tell", {"attention": attention, **SMALL, **fields}, spec)
    assert isinstance(built, ShowAttendTell)
    return built


def captions(b: int, n: int = 7, generator: torch.Generator | None = None) -> torch.Tensor:
    """(b, n) word ids in 3..14, each ending with EOS at a different length, then PAD."""
    gen = generator or torch.Generator().manual_seed(1)
    y = torch.randint(3, SPEC.num_outputs, (b, n), generator=gen)  # (b, n)
    for row in range(b):
        end = 2 + row % (n - 2)
        y[row, end] = EOS
        y[row, end + 1 :] = PAD
    return y


def test_teacher_forcing_equals_the_step_by_step_decoder_in_eval_mode():
    net = model(dropout=0.3).eval()
    x, y = torch.randn(3, 6, 10), captions(3)
    forced = net.teacher_force(x, y)  # (b, n, o)
    state, steps = net.start(x), []
    tokens = torch.full((3,), net.bos_id)
    for t in range(y.shape[1]):
        logits, state = net.step(tokens, state)
        steps.append(logits)
        tokens = y[:, t]
    torch.testing.assert_close(forced, torch.stack(steps, 1))


@pytest.mark.parametrize("attention", ["soft", "hard", "none"])
def test_every_variant_trains_and_decodes(attention):
    net = model(attention)
    x, y = torch.randn(4, 6, 10), captions(4)
    logits, aux = net(x, y)
    assert logits.shape == (4, 7, 15) and aux.shape == ()
    (F.cross_entropy(logits.transpose(1, 2), y, ignore_index=PAD) + aux).backward()
    moved = [name for name, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert "cell.weight_ih" in moved and "out.weight" in moved
    if attention != "none":  # the attention's own weights learn (soft by backprop, hard by REINFORCE)
        assert "attention.v" in moved
    net.eval()
    assert net(x).shape == (4, 7, 15)


def test_beam_of_one_is_greedy():
    net = model().eval()
    x = torch.randn(5, 6, 10)
    torch.testing.assert_close(beam_search(net, x, 1, 7), greedy(net, x, 7))


def test_doubly_stochastic_term_is_its_formula_over_the_traced_weights():
    net = model(doubly_stochastic=0.7, dropout=0.0).eval()
    x, y = torch.randn(3, 6, 10), captions(3)
    with capture(net) as trace:
        _, aux = net.teacher_force_with_loss(x, y)
    alphas = trace.stack("attention")[:, :, 0, 0].transpose(0, 1)  # (b, n, L) from (n, b, 1, 1, L): a record a step
    real = (y != PAD).float()  # (b, n)
    expected = 0.7 * ((1 - (alphas * real[..., None]).sum(1)) ** 2).sum() / real.sum()
    torch.testing.assert_close(aux, expected)
    torch.testing.assert_close(alphas.sum(-1), torch.ones(3, 7))


def test_hard_attention_gradient_is_unbiased_against_the_exact_expectation():
    """One word, three locations, a fixed image copied N times: the REINFORCE gradient of v averaged
    over the copies matches grad_v sum_s alpha_s(v) log p(y | s), the exact gradient of the expected
    log-likelihood, where log p(y | s) is read off the copies that sampled s."""
    spec = TaskSpec(seq_len=3, answer_len=1, input_features=4, num_outputs=5, eos_id=EOS)
    net = model("hard", spec, entropy_weight=0.0, expectation_rate=0.0, dropout=0.0, gate=False)
    n = 20000
    torch.manual_seed(3)
    image = torch.randn(1, 3, 4) * 2  # (1, L, D)
    x, y = image.expand(n, 3, 4), torch.full((n, 1), 4)  # every copy: the same image and one-word caption
    logits, alphas, picks = net._teacher_force(x, y)  # (n, 1, o), (n, 1, L), (n, 1)
    real = y != PAD  # (n, 1)
    (net._reinforce(logits, y, alphas, picks, real) / real.sum()).backward()  # the loss's aux, as training adds it
    estimate = net.attention.v.grad.clone()  # (a,); the baseline was 0, so the estimator is unbiased
    log_p = -F.cross_entropy(logits.transpose(1, 2), y, reduction="none")[:, 0]  # (n,) log p(y | s) per copy
    rewards = torch.stack([log_p[picks[:, 0] == s].mean() for s in range(3)]).detach()  # (L,) it depends on s only
    one = net._teacher_force(x[:1], y[:1])[1][0, 0]  # (L,) alpha of the image, with a fresh graph
    exact = torch.autograd.grad((one * rewards).sum(), net.attention.v)[0]  # (a,)
    torch.testing.assert_close(-estimate, exact, rtol=0.1, atol=0.02 * exact.abs().max().item())


def test_hard_attention_baseline_tracks_the_caption_log_likelihood():
    net = model("hard", baseline_decay=0.5)
    x, y = torch.randn(8, 6, 10), captions(8)
    net(x, y)
    assert net.baseline.item() < 0  # moved from 0 towards mean log p(y | s), which is negative


def test_decoder_overfits_a_few_captions():
    net = model(dropout=0.0, doubly_stochastic=0.0)
    x, y = torch.randn(4, 6, 10), captions(4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        logits, aux = net(x, y)
        loss = F.cross_entropy(logits.transpose(1, 2), y, ignore_index=PAD) + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    decoded = greedy(net, x, 7)  # (b, n'): stops once every caption has ended
    n = decoded.shape[1]
    assert torch.equal(decoded, y[:, :n]) and bool((y[:, n:] == PAD).all())


@pytest.mark.parametrize(
    ("fields", "spec", "message"),
    [
        ({"attention": "glance"}, SPEC, "ShowAttendTellConfig.attention"),
        ({"expectation_rate": 1.5}, SPEC, "ShowAttendTellConfig.expectation_rate"),
        ({}, TaskSpec(seq_len=6, answer_len=7, vocab_size=20, num_outputs=15), "annotation vectors"),
    ],
)
def test_bad_configs_and_specs_are_one_line_errors(fields, spec, message):
    with pytest.raises(ValueError, match=message) as err:
        build_model("show_attend_tell", {**SMALL, **fields}, spec)
    assert "\n" not in str(err.value)


def test_with_an_encoder_the_images_are_encoded_and_fine_tuned():
    spec = TaskSpec(seq_len=16, answer_len=7, image=(3, 64, 64), num_outputs=15, eos_id=EOS)
    net = model(spec=spec, encoder="efficientnet_lite0", encoder_layer="stride16", dropout=0.0)
    images, y = torch.randn(2, 3, 64, 64), captions(2)
    assert net.annotations(images).shape == (2, 16, 112)  # a 4 x 4 map of 112 channels
    logits, aux = net(images, y)
    (F.cross_entropy(logits.transpose(1, 2), y, ignore_index=PAD) + aux).backward()
    assert net.encoder is not None and net.encoder.stem.conv.weight.grad.abs().sum() > 0  # it trains with the decoder
    net.eval()
    state, tokens = net.start(images), torch.full((2,), net.bos_id)
    first, _ = net.step(tokens, state)
    torch.testing.assert_close(first, net.teacher_force(images, y)[:, 0])
    with pytest.raises(ValueError, match="inputs must be RGB images") as err:
        build_model("show_attend_tell", {**SMALL, "encoder": "efficientnet_lite0"}, SPEC)
    assert "\n" not in str(err.value)
