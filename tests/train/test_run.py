import pytest
import torch
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


def test_load_run_reads_the_best_weights_when_asked(run_dir):
    from safetensors.torch import load_file

    best = load_file(str(run_dir / "best.safetensors"))
    last = load_file(str(run_dir / "model.safetensors"))
    for weights, saved in (("best", best), ("last", last)):
        state = load_run(run_dir, weights).model.state_dict()
        assert state.keys() == saved.keys()
        assert all(torch.equal(state[k], saved[k]) for k in saved)
    with pytest.raises(ConfigError, match="weights must be one of last, best, got 'first'"):
        load_run(run_dir, "first")


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
    with pytest.raises(RunError, match=r"model\.safetensors: cannot load weights"):
        load_run(corrupt)
    mismatched = tmp_path / "mismatched"
    shutil.copytree(run_dir, mismatched)
    text = (mismatched / "config.yaml").read_text().replace("hidden_dim: ", "hidden_dim: 1")
    (mismatched / "config.yaml").write_text(text)
    with pytest.raises(RunError, match="weights do not match the config's model"):
        load_run(mismatched)
    (mismatched / "model.safetensors").unlink()
    with pytest.raises(RunError, match=r"model\.safetensors: missing"):
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


# config.yaml files as earlier versions of attnlab wrote them (every field of the model section then):
# each is still a field of the mechanism's config, with the same meaning and default.
OLD_RUNS = {
    "memn2n": """kind: attnlab-run
task: {name: babi, tasks: '1', setting: generated, memory_size: 6, generated_stories: 10}
model: {name: memn2n, embed_dim: 12, hops: 2, memory_size: 0, encoding: position, temporal: true,
        random_noise: 0.1, linear_start: true, linear_start_patience: 2, linear_start_steps: 0, tying: adjacent,
        init_std: 0.1}
train: {steps: 4}
""",
    "ntm": """kind: attnlab-run
task: {name: ntm_copy, max_length: 3}
model: {name: ntm, controller: feedforward, controller_size: 16, memory_size: 12, word_size: 6, num_reads: 1,
        num_writes: 1, shift_range: 1}
train: {steps: 4}
""",
    "ram": """kind: attnlab-run
task: {name: digits, setting: centered, source: small}
model: {name: ram, glimpse_size: 8, num_scales: 2, num_glimpses: 4, glimpse_hidden: 32, glimpse_dim: 64,
        core_size: 64, core: lstm, location_std: 0.17}
train: {steps: 4}
""",
    "transformer": """kind: attnlab-run
task: {name: copy, length: 3}
model: {name: transformer, embed_dim: 32, num_heads: 4, num_layers: 1, ff_dim: 64, dropout: 0.0,
        positions: rope, norm_first: false}
train: {steps: 4}
""",
}


@pytest.mark.parametrize("family", sorted(OLD_RUNS))
def test_config_yaml_of_earlier_runs_still_resolves(tmp_path, family):
    from attnlab.models import MODELS
    from attnlab.train import build_task_and_model, checkpoint

    (tmp_path / "config.yaml").write_text(OLD_RUNS[family])
    data = checkpoint.load_config(tmp_path)
    config = resolve(data)
    written = {k: v for k, v in data["model"].items() if k != "name"}
    assert {k: getattr(config.model_config, k) for k in written} == written
    others = {f: getattr(config.model_config, f) for f in MODELS.get(family).Config.__dataclass_fields__ if f not in written}
    assert others == {f: getattr(MODELS.build_config(family), f) for f in others}  # the rest at their defaults
    task, model = build_task_and_model(config)
    if family == "memn2n":
        assert model.memory.memory_size == 6 and model.memory.linear_start and model.memory.vocab_size == task.spec.vocab_size
    if family == "ntm":
        assert model.machine.input_size == task.spec.input_features and model.machine.controller.out_features == 16
    if family == "ram":
        assert (model.ram.num_classes, model.ram.image_channels) == (10, 1) and model.ram.config.num_scales == 2
    if family == "transformer":
        assert others["activation"] == "gelu" and others["num_kv_heads"] is None
        assert model.encoder.layers[0].sub.norm_first is False and model.config.positions == "rope"
