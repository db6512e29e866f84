"""The model registry: every family by name, its Config from plain values, errors that name the fix."""

import dataclasses

import pytest
import torch

from attnlab.config import to_dict
from attnlab.errors import ConfigError
from attnlab.models import MODELS, TaskModel, build_model
from attnlab.spec import PAD, TaskSpec

FAMILIES = {"mlp", "cnn", "rnn", "gru", "lstm", "bilstm", "transformer", "encdec", "lm"}
SPEC = TaskSpec(seq_len=21, answer_len=10, vocab_size=12, num_outputs=12)



def test_task_spec_properties():
    assert SPEC.tokens and not SPEC.regression
    floats = TaskSpec(seq_len=4, answer_len=1, input_features=2, num_outputs=1)
    assert not floats.tokens and floats.regression
    assert PAD == 0


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_builds_from_defaults(name):
    assert name in MODELS.names()
    cls = MODELS.get(name)
    assert issubclass(cls, TaskModel)
    summary = MODELS.summary(name)
    assert summary and "\n" not in summary
    assert dataclasses.is_dataclass(cls.Config) and cls.Config.__dataclass_params__.frozen
    torch.manual_seed(0)
    model = build_model(name, None, SPEC).eval()
    assert model.config == cls.Config() and model.spec == SPEC
    inputs = torch.randint(1, 12, (2, 21))
    inputs[0, :5] = PAD
    assert model(inputs).shape == (2, 10, 12)
    assert build_model(name, to_dict(model.config), SPEC).config == model.config  # the round trip of a run


def test_unknown_model_names_the_closest():
    with pytest.raises(ConfigError, match='unknown model \'lstn\' \\(did you mean "lstm"\\?\\)'):
        build_model("lstn", None, SPEC)


@pytest.mark.parametrize(
    "name, key, closest",
    [("lstm", "hiden_dim", "hidden_dim"), ("cnn", "kernel", "kernel_size"), ("transformer", "num_head", "num_heads")],
)
def test_unknown_config_key_names_the_closest(name, key, closest):
    with pytest.raises(ConfigError, match=f'unknown key model.{key} \\(did you mean "{closest}"\\?\\)'):
        build_model(name, {key: 1}, SPEC)


def test_build_model_from_plain_values():
    model = build_model("gru", {"hidden_dim": "24", "num_layers": "1", "dropout": "0.25"}, SPEC)
    assert (model.config.hidden_dim, model.config.num_layers, model.config.dropout) == (24, 1, 0.25)
    assert model.rnn.hidden_size == 24
    model = build_model("transformer", {"embed_dim": 32, "positions": "rope", "norm_first": "false"}, SPEC)
    assert model.config.positions == "rope" and model.config.norm_first is False
    assert model.encoder.layers[0].sub.norm_first is False


@pytest.mark.parametrize(
    "name, values, field",
    [
        ("cnn", {"kernel_size": 4}, "CNNConfig.kernel_size"),
        ("mlp", {"num_layers": -1}, "MLPConfig.num_layers"),
        ("transformer", {"embed_dim": 30, "num_heads": 4}, "TransformerModelConfig.embed_dim"),
        ("lm", {"positions": "nope"}, "LMConfig.positions"),
        ("encdec", {"dropout": 1.5}, "EncDecConfig.dropout"),
        ("rnn", {"hidden_dim": 2.5}, "model.hidden_dim"),
    ],
)
def test_bad_values_name_the_field(name, values, field):
    with pytest.raises(ConfigError, match=field) as err:
        build_model(name, values, SPEC)
    assert "\n" not in str(err.value)
