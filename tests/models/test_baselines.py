"""Baselines and the shared input/output layers: shapes, overfitting one batch, what each can see."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.models import AnswerHead, InputEmbedding, build_model
from attnlab.models.baselines import CNNConfig, MLPConfig, RecurrentConfig
from attnlab.spec import PAD, TaskSpec
from batches import copy_batch, fit, left_padded

TINY = {
    "mlp": {"embed_dim": 8, "hidden_dim": 32, "num_layers": 1},
    "cnn": {"channels": 16, "kernel_size": 3, "num_layers": 2},
    "rnn": {"embed_dim": 16, "hidden_dim": 32, "num_layers": 1},
    "gru": {"embed_dim": 16, "hidden_dim": 32, "num_layers": 1},
    "lstm": {"embed_dim": 16, "hidden_dim": 32, "num_layers": 1},
    "bilstm": {"embed_dim": 16, "hidden_dim": 16, "num_layers": 1},
}
UNIDIRECTIONAL = ["rnn", "gru", "lstm"]



def token_spec(t=8, n=3, vocab=10):
    return TaskSpec(seq_len=t, answer_len=n, vocab_size=vocab, num_outputs=vocab)


def float_spec(t=8, n=3, features=4):
    return TaskSpec(seq_len=t, answer_len=n, input_features=features, num_outputs=1)


def tiny(name, spec, **extra):
    torch.manual_seed(0)
    return build_model(name, {**TINY[name], **extra}, spec).eval()


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("n", [1, 3])
def test_shapes_tokens_and_floats(name, n):
    spec = token_spec(n=n)
    inputs = left_padded(spec, 5, seed=1, min_len=n)
    assert (inputs == PAD).any()
    assert tiny(name, spec)(inputs).shape == (5, n, 10)
    fspec = float_spec(n=n)
    assert tiny(name, fspec)(torch.randn(5, 8, 4)).shape == (5, n, 1)


@pytest.mark.parametrize("name", list(TINY))
def test_overfits_one_batch(name):
    spec = token_spec(t=8, n=3, vocab=10)
    inputs, targets = copy_batch(spec)
    model = tiny(name, spec).train()
    loss = fit(lambda: F.cross_entropy(model(inputs, targets).flatten(0, 1), targets.flatten()),
               model.parameters(), steps=300, lr=1e-2, stop=0.05)
    assert loss < 0.05
    model.eval()
    assert torch.equal(model(inputs).argmax(-1), targets)


def embedding_grad(model, inputs, answer, column=0):
    """d logits[:, answer, column] / d (the input embeddings), by autograd: (b, t, d)."""
    kept = []
    handle = model.embed.register_forward_hook(lambda mod, args, out: kept.append(out) or out.retain_grad())
    try:
        model(inputs)[:, answer, column].sum().backward()
    finally:
        handle.remove()
    return kept[0].grad


@pytest.mark.parametrize("kernel_size, num_layers", [(3, 2), (5, 1), (3, 3)])
def test_cnn_receptive_field_by_autograd(kernel_size, num_layers):
    spec = token_spec(t=20, n=10)
    model = tiny("cnn", spec, kernel_size=kernel_size, num_layers=num_layers)
    assert model.receptive_field == 1 + num_layers * (kernel_size - 1)
    reach = (model.receptive_field - 1) // 2
    inputs = torch.randint(1, 10, (2, 20))
    for answer in (3, 9):  # positions 13 (both sides inside the window) and 19 (the last)
        position = 10 + answer
        grad = embedding_grad(model, inputs, answer)
        seen = (grad != 0).any(-1).any(0)  # (t,) positions whose embedding moves the logit
        want = (torch.arange(20) - position).abs() <= reach
        assert torch.equal(seen, want)
    assert int(want.sum()) == reach + 1  # at the last position only the left half of the field exists
    grad_mid = embedding_grad(model, inputs, 3)
    assert int((grad_mid != 0).any(-1).any(0).sum()) == model.receptive_field


@pytest.mark.parametrize("name", UNIDIRECTIONAL)
def test_recurrent_is_causal(name):
    spec = token_spec(t=8, n=3)
    model = tiny(name, spec)
    inputs = torch.randint(1, 10, (4, 8))
    base = model(inputs)
    first = inputs.clone()
    first[:, 0] = first[:, 0] % 9 + 1  # another real token
    assert not torch.allclose(model(first), base)  # the first token reaches every answer
    last = inputs.clone()
    last[:, -1] = last[:, -1] % 9 + 1
    changed = model(last)
    assert torch.equal(changed[:, :-1], base[:, :-1])  # answers before the last position cannot see it
    assert not torch.allclose(changed[:, -1], base[:, -1])


def test_bilstm_sees_both_directions():
    spec = token_spec(t=8, n=3)
    model = tiny("bilstm", spec)
    inputs = torch.randint(1, 10, (4, 8))
    base = model(inputs)
    for position in (0, 7):
        changed = inputs.clone()
        changed[:, position] = changed[:, position] % 9 + 1
        out = model(changed)
        for answer in range(3):
            assert not torch.allclose(out[:, answer], base[:, answer])  # the future reaches earlier answers too


def test_mlp_shares_no_weights_between_positions():
    spec = float_spec(t=8, n=2)
    mlp = tiny("mlp", spec)
    assert mlp.hidden[0].in_features == 8 * TINY["mlp"]["embed_dim"]  # one weight per (position, feature)
    x = torch.randn(3, 8, 4)
    perm = torch.tensor([5, 2, 0, 4, 1, 3, 6, 7])  # moves the context, keeps the answer positions
    assert not torch.allclose(mlp(x[:, perm]), mlp(x), atol=1e-4)
    # Control: attention without positions shares weights across positions, and is unmoved.
    torch.manual_seed(0)
    bag = build_model("transformer", {"embed_dim": 8, "num_heads": 2, "num_layers": 1, "ff_dim": 16, "positions": "none"}, spec)
    bag.eval()
    torch.testing.assert_close(bag(x[:, perm]), bag(x))


def test_mlp_needs_its_window_length():
    model = tiny("mlp", token_spec(t=8, n=3))
    with pytest.raises(ValueError, match="built for seq_len 8"):
        model(torch.randint(1, 10, (2, 9)))


def test_input_embedding_pad_is_zero_and_stays_zero():
    spec = token_spec()
    embed = InputEmbedding(spec, 6)
    inputs = left_padded(spec, 4, seed=2)
    out = embed(inputs)
    assert out.shape == (4, 8, 6)
    assert torch.equal(out[inputs == PAD], torch.zeros(int((inputs == PAD).sum()), 6))
    out.pow(2).sum().backward()
    assert torch.equal(embed.proj.weight.grad[PAD], torch.zeros(6))
    assert embed.proj.weight.grad[1:].abs().sum() > 0


def test_input_embedding_floats_and_wrong_inputs():
    embed = InputEmbedding(float_spec(features=4), 6)
    assert embed(torch.randn(2, 8, 4)).shape == (2, 8, 6)
    with pytest.raises(ValueError, match=r"f=4"):
        embed(torch.randn(2, 8, 3))
    with pytest.raises(ValueError, match="integer ids"):
        InputEmbedding(token_spec(), 6)(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"TaskSpec.vocab_size"):
        InputEmbedding(TaskSpec(seq_len=4, answer_len=1, vocab_size=1, num_outputs=1), 6)


def test_answer_head_reads_only_the_last_n_positions():
    head = AnswerHead(token_spec(t=8, n=3), 5)
    features = torch.randn(2, 8, 5, requires_grad=True)
    head(features).sum().backward()
    used = (features.grad != 0).any(-1).any(0)  # (t,)
    assert torch.equal(used, torch.arange(8) >= 5)
    with pytest.raises(ValueError, match=r"TaskSpec.answer_len"):
        AnswerHead(TaskSpec(seq_len=4, answer_len=5, vocab_size=10, num_outputs=10), 5)


@pytest.mark.parametrize(
    "config, field",
    [
        (lambda: MLPConfig(hidden_dim=0), "MLPConfig.hidden_dim"),
        (lambda: MLPConfig(dropout=1.0), "MLPConfig.dropout"),
        (lambda: CNNConfig(kernel_size=4), "CNNConfig.kernel_size"),
        (lambda: CNNConfig(num_layers=0), "CNNConfig.num_layers"),
        (lambda: RecurrentConfig(embed_dim=0), "RecurrentConfig.embed_dim"),
    ],
)
def test_configs_reject_bad_values_naming_the_field(config, field):
    with pytest.raises(ValueError, match=field) as err:
        config()
    assert "\n" not in str(err.value)
