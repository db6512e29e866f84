import pytest
import yaml

from attnlab.errors import ConfigError, RunError
from attnlab.train import load_run, resolve, train
from attnlab.train.run import TrainConfig


def test_resolve_applies_yaml_then_overrides_and_round_trips():
    data = {"task": {"name": "long_range", "distance": 16}, "model": {"name": "lstm"}, "train": {"steps": 5}}
    config = resolve(data, {"task": {"distance": "24"}, "train": {"lr": "3e-4"}})
    assert config.task_config.distance == 24 and config.train.steps == 5 and config.train.lr == 3e-4
    assert resolve(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config


@pytest.mark.parametrize(
    "data, overrides, message",
    [
        ({"task": {"name": "copi"}, "model": {"name": "lstm"}}, {}, "unknown task 'copi' (did you mean \"copy\"?)"),
        ({"task": {"name": "copy"}, "model": {"name": "lstn"}}, {}, "unknown model 'lstn' (did you mean \"lstm\"?)"),
        ({"task": {"name": "copy"}, "model": {"name": "lstm"}}, {"modle": {"x": 1}},
         "unknown section 'modle' (did you mean \"model\"?)"),
        ({"task": {"name": "copy"}, "model": {"name": "lstm"}}, {"train": {"step": "3"}},
         'unknown key train.step (did you mean "steps"?)'),
        ({"task": {"name": "copy"}, "model": {"name": "lstm"}}, {"model": {"num_layer": "3"}},
         'unknown key model.num_layer (did you mean "num_layers"?)'),
        ({"model": {"name": "lstm"}}, {}, "task.name is missing"),
        ({"task": "copy", "model": {"name": "lstm"}}, {}, "task: expected a mapping of keys to values, got 'copy'"),
    ],
)
def test_resolve_errors_are_one_line_and_name_the_key(data, overrides, message):
    with pytest.raises(ConfigError) as err:
        resolve(data, overrides)
    assert str(err.value) == message


def test_a_family_that_cannot_do_the_task_is_a_config_error():
    from attnlab.train import build_task_and_model

    with pytest.raises(ConfigError, match="model 'lm' on task 'adding'"):
        build_task_and_model(resolve({"task": {"name": "adding"}, "model": {"name": "lm"}}))


def test_train_config_validates_fields():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        TrainConfig(min_lr_ratio=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "mlp"
    config = resolve({"task": {"name": "copy", "length": 3}, "model": {"name": "mlp"}},
                     {"train": {"steps": 4, "eval_every": 2, "eval_size": 8, "device": "cpu"}})
    train(config, folder, progress=False)
    return folder


def test_load_run_rebuilds_the_model_from_its_config(run_dir):
    run = load_run(run_dir)
    assert run.config.model == "mlp" and not run.model.training
    assert [r["split"] for r in run.metrics] == ["val", "val", "test"]


def test_load_run_errors(tmp_path, run_dir):
    with pytest.raises(RunError, match="no such run folder"):
        load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match=r"not an attnlab run \(no config.yaml\)"):
        load_run(tmp_path / "empty")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.yaml").write_text("model: resnet\n")
    with pytest.raises(RunError, match="not an attnlab run config"):
        load_run(foreign)
    import shutil

    corrupt = tmp_path / "corrupt"
    shutil.copytree(run_dir, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(RunError, match="model.safetensors: cannot load weights"):
        load_run(corrupt)
    mismatched = tmp_path / "mismatched"
    shutil.copytree(run_dir, mismatched)
    text = (mismatched / "config.yaml").read_text().replace("hidden_dim: ", "hidden_dim: 1")
    (mismatched / "config.yaml").write_text(text)
    with pytest.raises(RunError, match="weights do not match the config's model"):
        load_run(mismatched)
    (mismatched / "model.safetensors").unlink()
    with pytest.raises(RunError, match="model.safetensors: missing"):
        load_run(mismatched)


def _copy_run(folder, model: dict):
    config = resolve({"task": {"name": "ntm_copy", "max_length": 4}, "model": model,
                      "train": {"steps": 2, "eval_every": 2, "eval_size": 8, "batch_size": 4}})
    train(config, folder, progress=False)
    return load_run(folder)


def test_retarget_runs_the_trained_weights_on_longer_sequences(tmp_path):
    import torch

    from attnlab.train import evaluate, retarget

    run = _copy_run(tmp_path / "lstm", {"name": "lstm", "hidden_dim": 8, "num_layers": 1, "embed_dim": 8})
    longer = retarget(run, min_length=9, max_length=9)
    assert longer.task.spec.seq_len == 20 and longer.task.spec.answer_len == 9
    for name, tensor in run.model.state_dict().items():
        assert torch.equal(longer.model.state_dict()[name], tensor)
    batch = longer.task.eval_set(3, "test")
    assert longer.model(batch.inputs).shape == (3, 9, 8)
    assert set(evaluate(longer.model, longer.task, batch)) >= {"bit_errors", "bits", "accuracy"}
    assert run.task.spec.seq_len == 10  # the run itself is untouched


def test_retarget_says_when_the_weights_depend_on_the_length(tmp_path):
    from attnlab.train import retarget

    run = _copy_run(tmp_path / "tf", {"name": "transformer", "embed_dim": 8, "num_heads": 2, "num_layers": 1,
                                      "ff_dim": 8, "positions": "learned"})
    with pytest.raises(RunError, match="do not fit ntm_copy"):
        retarget(run, min_length=9, max_length=9)
