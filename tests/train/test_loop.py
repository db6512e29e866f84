import json
import math

import pytest
import torch

from attnlab.train import TrainConfig, load_run, lr_at, resolve, train
from attnlab.train.loop import make_optimizer


def tiny(model="transformer", steps=30, **train_values):
    model_values = {"name": model, "dropout": 0.1} if model in ("transformer", "lstm") else {"name": model}
    return resolve(
        {"task": {"name": "copy", "length": 4, "symbols": 5}, "model": model_values},
        {
            "train": {
                "steps": steps,
                "eval_every": 10,
                "eval_size": 32,
                "batch_size": 16,
                "warmup_steps": 5,
                "device": "cpu",
                **train_values,
            }
        },
    )


def weights(folder):
    return load_run(folder).model.state_dict()


def test_lr_schedule_warms_up_linearly_then_follows_the_cosine():
    cfg = TrainConfig(steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert [lr_at(s, cfg) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(110, cfg) == pytest.approx(0.1)
    assert lr_at(0, TrainConfig(warmup_steps=0, lr=2.0, steps=10)) == pytest.approx(2.0)


def test_weight_decay_only_on_matrices():
    config = tiny()
    from attnlab.train import build_task_and_model

    _, model = build_task_and_model(config)
    decay, rest = make_optimizer(model, config.train).param_groups
    assert decay["weight_decay"] == config.train.weight_decay and rest["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in rest["params"])


def test_same_config_same_weights_and_a_learning_signal(tmp_path):
    config = tiny(steps=40, lr=3e-3)
    first = train(config, tmp_path / "a", progress=False)
    train(config, tmp_path / "b", progress=False)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30, 40, 40] and records[-1]["split"] == "test"
    assert records[-1]["loss"] < math.log(config.task_config.symbols + 3)  # below a uniform guess
    assert first["parameters"] == sum(p.numel() for p in load_run(tmp_path / "a").model.parameters())


@pytest.mark.parametrize("model", ["transformer", "lstm"])
def test_killed_and_resumed_run_ends_bit_for_bit_like_an_uninterrupted_one(tmp_path, model):
    config = tiny(model)
    train(config, tmp_path / "whole", progress=False)
    assert train(config, tmp_path / "killed", progress=False, stop_after=17) == {"step": 17, "interrupted": True}
    # steps 11..17 ran after the checkpoint at 10; the resume redoes them from the saved state
    train(config, tmp_path / "killed", progress=False, resume=True)
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda folder: [
        {k: v for k, v in json.loads(line).items() if k != "seconds"}
        for line in (folder / "metrics.jsonl").read_text().splitlines()
    ]
    assert strip(tmp_path / "whole") == strip(tmp_path / "killed")


def test_resume_may_extend_steps_but_not_change_the_model(tmp_path):
    config = tiny(steps=10)
    train(config, tmp_path / "r", progress=False)
    longer = config.replace("train", steps=20)
    summary = train(longer, tmp_path / "r", progress=False, resume=True)
    assert summary["step"] == 20
    assert load_run(tmp_path / "r").config.train.steps == 20
    from attnlab.errors import RunError

    with pytest.raises(RunError, match="only train"):
        train(config.replace("model", num_layers=1), tmp_path / "r", progress=False, resume=True)


def test_early_stop_at_the_target(tmp_path):
    summary = train(tiny(model="mlp", steps=200, target=0.0), tmp_path / "e", progress=False)
    assert summary["stopped_early"] and summary["step"] == 10


def test_a_run_stopped_early_resumes_when_the_target_is_lifted(tmp_path):
    config = tiny(model="mlp", steps=30, target=0.0)
    train(config, tmp_path / "e", progress=False)
    same = train(config, tmp_path / "e", progress=False, resume=True)
    assert same["stopped_early"] and same["step"] == 10  # the same target: still reached, no step taken
    lifted = train(config.replace("train", target=None), tmp_path / "e", progress=False, resume=True)
    assert not lifted["stopped_early"] and lifted["step"] == 30


def test_a_new_run_never_writes_into_an_existing_one(tmp_path):
    from attnlab.errors import RunError

    train(tiny(steps=10), tmp_path / "r", progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    with pytest.raises(RunError, match="holds a run"):
        train(tiny(steps=10), tmp_path / "r", progress=False)
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}


def _poison_steps(monkeypatch, steps):
    """Make the copy task's training loss nan at these optimizer steps (1-based); eval untouched."""
    from attnlab.tasks import TASKS

    task_type = TASKS.get("copy")
    real, count = task_type.loss, [0]

    def loss(self, logits, batch):
        value = real(self, logits, batch)
        if not torch.is_grad_enabled():
            return value
        count[0] += 1
        return value * float("nan") if count[0] in steps else value

    monkeypatch.setattr(task_type, "loss", loss)


def test_a_non_finite_step_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from attnlab.errors import DivergenceError

    _poison_steps(monkeypatch, {14})
    with pytest.raises(DivergenceError, match=r"step 14: the loss \(nan\) went non-finite.*step 10 is kept") as err:
        train(tiny(), tmp_path / "r", progress=False)
    assert "\n" not in str(err.value)
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10]
    assert all(torch.isfinite(t).all() for t in weights(tmp_path / "r").values() if t.is_floating_point())


def test_skipped_steps_are_counted_and_change_nothing(tmp_path, monkeypatch):
    _poison_steps(monkeypatch, {3, 4, 12})
    summary = train(tiny(nonfinite="skip"), tmp_path / "r", progress=False)
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("skipped_steps") for r in records if r["split"] == "val"] == [2, 3, 3]
    assert summary["step"] == 30 and math.isfinite(summary["loss"])


def test_a_run_whose_every_step_is_skipped_still_stops(tmp_path, monkeypatch):
    from attnlab.errors import DivergenceError

    _poison_steps(monkeypatch, set(range(11, 31)))
    with pytest.raises(DivergenceError, match="step 20: every step since step 10 went non-finite"):
        train(tiny(nonfinite="skip"), tmp_path / "r", progress=False)


def test_a_resume_that_diverges_leaves_the_run_as_it_was(tmp_path):
    from attnlab.errors import DivergenceError

    train(tiny(steps=20), tmp_path / "r", progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    with pytest.raises(DivergenceError, match="the checkpoint of step 20 is kept"):
        train(tiny(steps=40, lr=1e6), tmp_path / "r", resume=True, progress=False)
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}  # config and records too


def test_best_weights_are_those_of_the_best_validation_metric(tmp_path):
    from safetensors.torch import load_file

    train(tiny(steps=30), tmp_path / "r", progress=False)
    val = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    best = max((r for r in val if r["split"] == "val"), key=lambda r: r["accuracy"])  # the first of the best
    train(tiny(steps=30), tmp_path / "b", progress=False, stop_after=best["step"])  # the same run, cut there
    mine, theirs = load_file(tmp_path / "r" / "best.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_a_failed_start_leaves_no_folder_and_a_killed_one_restarts_on_resume(tmp_path, monkeypatch):
    _poison_steps(monkeypatch, {2})
    with pytest.raises(ValueError):
        train(tiny(), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    monkeypatch.undo()
    train(tiny(), tmp_path / "k", progress=False, stop_after=5)  # as if killed before step 10's checkpoint
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["config.yaml"]
    train(tiny(), tmp_path / "k", resume=True, progress=False)
    train(tiny(), tmp_path / "straight", progress=False)
    assert all(
        torch.equal(a, b) for a, b in zip(weights(tmp_path / "k").values(), weights(tmp_path / "straight").values())
    )


def test_non_finite_settings_and_absent_devices_are_refused():
    from attnlab.errors import ConfigError

    for key, value in (("lr", "nan"), ("lr", "inf"), ("weight_decay", "nan"), ("clip_norm", "-inf"), ("steps", "inf")):
        with pytest.raises(ConfigError, match=f"train.{key}: expected"):
            tiny(**{key: value})
    with pytest.raises(ConfigError, match="device must be"):
        tiny(device="tpu")
    with pytest.raises(ValueError, match="lr must be a finite number"):
        TrainConfig(lr=float("nan"))
    if not torch.cuda.is_available():
        from attnlab.train.distributed import resolve_device

        for name in ("cuda", "cuda:1"):
            with pytest.raises(ConfigError, match="no CUDA device"):
                resolve_device(name)


def test_step_schedule_and_sgd():
    from attnlab.train.loop import make_optimizer

    cfg = TrainConfig(steps=100, lr=0.4, warmup_steps=4, schedule="step", decay_every=30, decay_factor=0.5)
    assert [lr_at(s, cfg) for s in (0, 3, 4, 29, 30, 59, 60, 99)] == [0.1, 0.4, 0.4, 0.4, 0.2, 0.2, 0.1, 0.05]
    with pytest.raises(ValueError, match="decay_every must be >= 1"):
        TrainConfig(schedule="step")
    held = TrainConfig(steps=100, lr=0.4, warmup_steps=0, schedule="step", decay_every=20, decay_start=30)
    assert [lr_at(s, held) for s in (0, 29, 30, 49, 50, 70, 99)] == [0.4, 0.4, 0.4, 0.4, 0.2, 0.1, 0.05]
    with pytest.raises(ValueError, match="decay_start must be >= 0"):
        TrainConfig(decay_start=-1)
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(model, TrainConfig(optimizer="sgd", weight_decay=0.0))
    assert type(opt) is torch.optim.SGD and opt.defaults["momentum"] == 0


def guided(steps=20, guide_steps=8, **train_values):
    ram = {"name": "ram", "glimpse_size": 6, "num_scales": 2, "num_glimpses": 3, "glimpse_hidden": 16,
           "glimpse_dim": 16, "core_size": 16}  # fmt: skip
    task = {"name": "digits", "setting": "translated", "size": 40, "source": "small"}
    values = {"steps": steps, "eval_every": 5, "eval_size": 32, "batch_size": 8, "warmup_steps": 2, "device": "cpu"}
    return resolve({"task": task, "model": ram}, {"train": {**values, "guide_steps": guide_steps, **train_values}})


def test_a_guided_start_trains_by_the_familys_guide_loss_then_its_own_and_resumes_exactly(tmp_path, monkeypatch):
    from attnlab.models.glimpse import RAMFamily

    calls: list[str] = []  # each training step's kind, in order
    guide_loss, forward = RAMFamily.guide_loss, RAMFamily.forward

    def counted_guide(self, inputs, targets, boxes):
        calls.append("guided")
        assert boxes.shape == (len(inputs), 4)  # the batch's boxes
        return guide_loss(self, inputs, targets, boxes)

    def counted_forward(self, inputs, targets=None, noise=None):
        if self.training and targets is not None:
            calls.append("own")
        return forward(self, inputs, targets, noise)

    monkeypatch.setattr(RAMFamily, "guide_loss", counted_guide)
    monkeypatch.setattr(RAMFamily, "forward", counted_forward)
    config = guided()
    train(config, tmp_path / "whole", progress=False)
    assert calls == ["guided"] * 8 + ["own"] * 12
    calls.clear()
    train(config, tmp_path / "killed", progress=False, stop_after=7)  # killed inside the guided steps
    train(config, tmp_path / "killed", progress=False, resume=True)  # from the checkpoint at 5: 3 guided, 12 own
    assert calls == ["guided"] * 7 + ["guided"] * 3 + ["own"] * 12
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    calls.clear()
    train(guided(guide_steps=0), tmp_path / "own", progress=False)
    assert calls == ["own"] * 20
    calls.clear()
    train(guided(guide_every=4), tmp_path / "every", progress=False)  # after the 8, steps 12, 16 and 20 too
    assert calls == ["guided"] * 8 + (["own"] * 3 + ["guided"]) * 3
    calls.clear()
    train(guided(guide_steps=0, guide_every=5), tmp_path / "every-only", progress=False)
    assert calls == (["own"] * 4 + ["guided"]) * 4
    assert not torch.equal(weights(tmp_path / "own")["ram.locator.weight"], a["ram.locator.weight"])


def test_a_guided_start_needs_a_family_that_has_one_and_one_process(tmp_path):
    from attnlab.errors import ConfigError
    from attnlab.train.vectorised import why_not_vectorised

    with pytest.raises(ConfigError, match="train.guide_steps: model transformer has no guided start"):
        train(tiny(guide_steps=5), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything is written
    with pytest.raises(ConfigError, match="train.guide_steps: expected"):
        tiny(guide_steps="some")
    with pytest.raises(ValueError, match="guide_steps must be >= 0"):
        TrainConfig(guide_steps=-1)
    with pytest.raises(ValueError, match="guide_every must be >= 0"):
        TrainConfig(guide_every=-2)
    with pytest.raises(ConfigError, match="train.guide_every: model transformer has no guided start"):
        train(tiny(guide_every=3), tmp_path / "every", progress=False)
    seeds = [guided(seed=s) for s in (0, 1)]
    assert why_not_vectorised(seeds, ["a", "b"]) == "train.guide_steps: a guided start trains one model at a time"
    every = [guided(guide_steps=0, guide_every=3, seed=s) for s in (0, 1)]
    assert why_not_vectorised(every, ["a", "b"]) == "train.guide_every: a guided start trains one model at a time"


def test_bfloat16_precision_trains_under_autocast_and_evaluates_in_float32(tmp_path, monkeypatch):
    from attnlab.errors import ConfigError
    from attnlab.models.sequence import TransformerModel
    from attnlab.train.vectorised import why_not_vectorised

    seen = []  # (training, autocast on) of each forward
    forward = TransformerModel.forward

    def noted(self, inputs, targets=None):
        seen.append((self.training, torch.is_autocast_enabled("cpu")))
        return forward(self, inputs, targets)

    monkeypatch.setattr(TransformerModel, "forward", noted)
    low = train(tiny(steps=20, precision="bfloat16"), tmp_path / "low", progress=False)
    assert {on for training, on in seen if training} == {True} and {on for training, on in seen if not training} == {False}
    seen.clear()
    full = train(tiny(steps=20), tmp_path / "full", progress=False)
    assert {on for _, on in seen} == {False}
    a, b = weights(tmp_path / "low"), weights(tmp_path / "full")
    assert all(a[k].dtype == torch.float32 for k in a)  # the weights stay float32
    assert not all(torch.equal(a[k], b[k]) for k in a)  # rounded steps, other weights
    assert abs(low["loss"] - full["loss"]) < 0.1 * full["loss"]  # and about as far along
    with pytest.raises(ConfigError, match="precision must be one of float32, bfloat16"):
        tiny(precision="float16")
    reason = why_not_vectorised([tiny(precision="bfloat16", seed=s) for s in (0, 1)], ["a", "b"])
    assert reason == "train.precision=bfloat16: the stacked step runs in float32"
