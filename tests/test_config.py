from dataclasses import dataclass
from typing import Literal

import pytest

from attnlab.config import Registry, build, closest, field_comments, parse_overrides, read_yaml, to_dict
from attnlab.errors import ConfigError


@dataclass(frozen=True)
class Example:
    num_layers: int = 2
    lr: float = 1e-3
    norm_first: bool = True
    positions: str = "rope"
    target: float | None = None
    act: Literal["relu", "gelu"] = "gelu"
    sizes: tuple[int, ...] = (1, 2)

    def __post_init__(self):
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")


def test_build_converts_command_line_strings_by_field_type():
    cfg = build(Example, {"num_layers": "3", "lr": "3e-4", "norm_first": "false", "target": "none",
                          "act": "relu", "sizes": "4,5,6"})
    assert cfg == Example(num_layers=3, lr=3e-4, norm_first=False, target=None, act="relu", sizes=(4, 5, 6))
    assert build(Example, {"target": "0.5"}).target == 0.5
    assert build(Example, {"num_layers": 4.0}).num_layers == 4


@pytest.mark.parametrize(
    "values, message",
    [
        ({"num_layer": 3}, 'unknown key model.num_layer (did you mean "num_layers"?)'),
        ({"num_layers": "two"}, "model.num_layers: expected int, got 'two'"),
        ({"num_layers": "2.5"}, "model.num_layers: expected an integer, got '2.5'"),
        ({"norm_first": "maybe"}, "model.norm_first: expected true or false, got 'maybe'"),
        ({"act": "tanh"}, "model.act: 'tanh' is not one of 'relu', 'gelu'"),
        ({"num_layers": 0}, "model: num_layers must be >= 1, got 0"),
    ],
)
def test_build_errors_name_the_key(values, message):
    with pytest.raises(ConfigError) as err:
        build(Example, values, where="model")
    assert str(err.value) == message


def test_closest_suggests_or_lists():
    assert closest("lstn", ["lstm", "gru"]) == ' (did you mean "lstm"?)'
    assert closest("zzz", ["lstm", "gru"]) == " (valid: gru, lstm)"


def test_registry_names_summary_and_unknown_name():
    reg = Registry("model")

    @reg.register("tiny")
    class Tiny:
        """A tiny thing.

        More text."""

    assert reg.names() == ["tiny"] and "tiny" in reg and reg.summary("tiny") == "A tiny thing."
    with pytest.raises(ConfigError) as err:
        reg.get("tinx")
    assert str(err.value) == "unknown model 'tinx' (did you mean \"tiny\"?)"
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("tiny")(Tiny)


def test_parse_overrides_forms():
    assert parse_overrides(["--model.num_layers=2", "--train.lr", "3e-4", "--model.positions=rope"]) == {
        "model": {"num_layers": "2", "positions": "rope"},
        "train": {"lr": "3e-4"},
    }
    with pytest.raises(ConfigError, match="expected an override like"):
        parse_overrides(["--verbose"])
    with pytest.raises(ConfigError, match="has no value"):
        parse_overrides(["--train.lr"])


def test_read_yaml_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task:\n  name: copy\n  length: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: malformed YAML at line \d+"):
        read_yaml(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections, got int"):
        read_yaml(scalar)
    with pytest.raises(ConfigError, match="no such file"):
        read_yaml(tmp_path / "missing.yaml")


def test_to_dict_is_plain_data():
    assert to_dict(Example()) == {"num_layers": 2, "lr": 1e-3, "norm_first": True, "positions": "rope",
                                  "target": None, "act": "gelu", "sizes": [1, 2]}


@dataclass(frozen=True)
class Commented:
    width: int = 8  # w, the width of a slot
    depth: int = 2
    name: str = (
        "x"
    )  # a value over several lines


@dataclass(frozen=True)
class MoreCommented(Commented):
    depth: int = 3  # layers, a comment of the subclass
    extra: bool = False  # one more field


def test_registry_defaults_are_applied_by_build_config():
    reg = Registry("model")

    @reg.register("plain")
    class Plain:
        Config = Example

    @reg.register("deep", defaults={"num_layers": 6, "sizes": (3,)})
    class Deep:
        Config = Example

    assert reg.defaults("plain") == {} and reg.defaults("deep") == {"num_layers": 6, "sizes": (3,)}
    assert reg.build_config("plain") == Example()
    assert reg.build_config("deep") == Example(num_layers=6, sizes=(3,))
    assert reg.build_config("deep", {"num_layers": "2", "lr": "0.5"}) == Example(num_layers=2, lr=0.5, sizes=(3,))
    reg.defaults("deep")["num_layers"] = 1  # a copy: the entry keeps its own
    assert reg.build_config("deep").num_layers == 6
    with pytest.raises(ConfigError, match=r'^unknown key model.num_layer \(did you mean "num_layers"\?\)$'):
        reg.build_config("deep", {"num_layer": 3}, where="model")
    with pytest.raises(ConfigError, match=r"^unknown model 'deap'"):
        reg.defaults("deap")
    with pytest.raises(ValueError, match="model 'bad': default 'num_layer' is not a field of its Config"):
        reg.register("bad", defaults={"num_layer": 3})(Deep)
    assert "bad" not in reg


def test_field_comments_are_read_from_the_source():
    assert field_comments(Commented) == {"width": "w, the width of a slot", "name": "a value over several lines"}
    assert field_comments(MoreCommented) == {"width": "w, the width of a slot", "name": "a value over several lines",
                                             "depth": "layers, a comment of the subclass", "extra": "one more field"}
    assert field_comments(Example) == {}
