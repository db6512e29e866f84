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
    assert model.config == cls.Config(**MODELS.defaults(name)) == MODELS.build_config(name) and model.spec == SPEC
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
        ("transformer", {"embed_dim": 30, "num_heads": 4}, "TransformerConfig.embed_dim"),
        ("lm", {"positions": "nope"}, "TransformerConfig.positions"),
        ("encdec", {"dropout": 1.5}, "TransformerConfig.dropout"),
        ("encdec", {"num_layers": 0}, "TransformerConfig.num_layers"),
        ("transformer", {"num_heads": 0}, "TransformerConfig.num_heads"),
        ("rnn", {"hidden_dim": 2.5}, "model.hidden_dim"),
    ],
)
def test_bad_values_name_the_field(name, values, field):
    with pytest.raises(ConfigError, match=field) as err:
        build_model(name, values, SPEC)
    assert "\n" not in str(err.value)


STACK = {"embed_dim": 64, "num_heads": 4, "num_kv_heads": None, "num_layers": 2, "num_decoder_layers": None,
         "ff_dim": 256, "dropout": 0.0, "activation": "gelu", "norm_first": True, "positions": "sinusoidal",
         "bias": True, "layer_norm_eps": 1e-5, "tie_embeddings": True, "ff_dropout": None,
         "short_conv": 0}

# Every family's config with nothing set: the contract that keeps old runs and seeds reproducing.
DEFAULTS = {
    "mlp": {"embed_dim": 32, "hidden_dim": 128, "num_layers": 2, "dropout": 0.0},
    "cnn": {"channels": 64, "kernel_size": 5, "num_layers": 5, "dropout": 0.0},
    "rnn": {"embed_dim": 64, "hidden_dim": 160, "num_layers": 2, "dropout": 0.0},
    "gru": {"embed_dim": 64, "hidden_dim": 96, "num_layers": 2, "dropout": 0.0},
    "lstm": {"embed_dim": 64, "hidden_dim": 80, "num_layers": 2, "dropout": 0.0},
    "bilstm": {"embed_dim": 64, "hidden_dim": 48, "num_layers": 2, "dropout": 0.0},
    "transformer": STACK,
    "encdec": {**STACK, "num_layers": 1},
    "lm": STACK,
    "seq2seq": {"embed_dim": 64, "hidden_dim": 80, "num_layers": 1, "dropout": 0.0, "output_dim": 0, "cell": "gru"},
    "bahdanau": {"embed_dim": 64, "hidden_dim": 56, "num_layers": 1, "dropout": 0.0, "output_dim": 0, "attn_dim": 56},
    "luong": {"embed_dim": 64, "hidden_dim": 64, "num_layers": 1, "dropout": 0.0, "output_dim": 0, "method": "general",
              "bidirectional": False},
    "ntm": {"controller": "lstm", "controller_size": 100, "memory_size": 128, "word_size": 20, "num_reads": 1,
            "num_writes": 1, "shift_range": 1},
    "dnc": {"controller_size": 64, "memory_size": 64, "word_size": 16, "num_reads": 4, "num_writes": 1},
    "memn2n": {"embed_dim": 20, "hops": 3, "memory_size": 0, "encoding": "position", "temporal": True,
               "random_noise": 0.0, "linear_start": False, "linear_start_patience": 1, "linear_start_steps": 0,
               "tying": "adjacent", "init_std": 0.1, "empty_slots": "mask", "noise_scheme": "sentence",
               "time_in_tables": False, "nil_gradient": False},
    "kvmemnn": {"embed_dim": 20, "hops": 2, "memory_size": 0, "encoding": "position", "values": "sentence",
                "init_std": 0.1},
    "ram": {"glimpse_size": 8, "num_scales": 1, "num_glimpses": 6, "glimpse_hidden": 128, "glimpse_dim": 256,
            "core_size": 256, "core": "rnn", "location_std": 0.17, "policy_trains_core": False, "what_net": "mlp",
            "guide_baseline": False, "guide_jitter": False, "reward": "correct"},
    "dram": {"glimpse_size": 12, "num_scales": 3, "glimpses_per_label": 3, "glimpse_hidden": 128, "feature_dim": 256,
             "core_size": 256, "context": True, "context_size": 12, "context_hidden": 128, "location_std": 0.17,
             "unordered": False, "what_net": "mlp", "guide_baseline": True, "guide_jitter": True},
    "image_mlp": {"hidden_dim": 256, "num_layers": 2, "dropout": 0.0},
    "image_cnn": {"channels": [32, 64], "kernel_size": 5, "pooling": "avg", "hidden_dim": 256, "num_layers": 1,
                  "dropout": 0.0},
    "soft_attention": {"channels": [32, 64], "kernel_size": 5, "embed_dim": 64, "num_heads": 4, "hidden_dim": 256,
                       "num_layers": 1, "dropout": 0.0},
    "show_attend_tell": {"attention": "soft", "embed_dim": 256, "hidden_dim": 512, "attn_dim": 256, "dropout": 0.5,
                         "gate": True, "doubly_stochastic": 1.0, "reinforce_weight": 1.0, "entropy_weight": 0.01,
                         "baseline_decay": 0.9, "expectation_rate": 0.5, "encoder": "none",
                         "encoder_layer": "stride32"},
}


def test_every_registered_family_has_its_pinned_defaults():
    assert sorted(DEFAULTS) == MODELS.names()
    for name, values in DEFAULTS.items():
        assert to_dict(MODELS.build_config(name)) == values, name


def test_families_sharing_a_config_differ_by_their_registry_defaults():
    from attnlab.models.baselines import RecurrentConfig
    from attnlab.models.transformer import TransformerConfig

    assert {MODELS.get(n).Config for n in ("rnn", "gru", "lstm", "bilstm")} == {RecurrentConfig}
    assert {MODELS.get(n).Config for n in ("transformer", "encdec", "lm")} == {TransformerConfig}
    assert MODELS.defaults("rnn") == {"hidden_dim": 160} and MODELS.defaults("mlp") == {}
    assert MODELS.defaults("encdec") == {"embed_dim": 64, "ff_dim": 256, "dropout": 0.0, "num_layers": 1}
    assert MODELS.build_config("lstm", {"hidden_dim": "12"}).hidden_dim == 12  # a value over the entry's default
    assert build_model("gru", None, SPEC).rnn.hidden_size == 96


def test_every_transformer_field_is_a_model_override():
    from attnlab.train import resolve

    values = {"num_kv_heads": "2", "activation": "relu", "bias": "false", "tie_embeddings": "false", "num_layers": "1"}
    config = resolve({"task": {"name": "copy"}, "model": {"name": "encdec"}}, {"model": values}).model_config
    assert (config.num_kv_heads, config.activation, config.bias, config.tie_embeddings) == (2, "relu", False, False)
    assert config.embed_dim == 64 and config.ff_dim == 256  # the entry's defaults stay under the overrides
    model = build_model("encdec", to_dict(config), SPEC)
    layer = model.net.encoder.layers[0]
    assert layer.attn.num_kv_heads == 2 and layer.ff.linear1.bias is None
    assert model.net.head.weight is not model.net.tgt_embed.weight
    for key in ("vocab_size", "tgt_vocab_size", "max_len", "pad_id"):  # the task's sizes, not config fields
        with pytest.raises(ConfigError, match=f"unknown key model.{key}"):
            build_model("lm", {key: 4}, SPEC)
