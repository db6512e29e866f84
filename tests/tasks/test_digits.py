"""The digits task: spec and batches per setting, fixed eval sets, determinism, splits, errors."""

import os
import re
import warnings

import numpy as np
import pytest
import torch

import attnlab.tasks.digits  # noqa: F401  (registers "digits")
from attnlab.data.mnist import FILES, load_mnist, load_small_digits, mnist_available
from attnlab.errors import ConfigError, DataError
from attnlab.tasks import build_task
from attnlab.tasks.digits import DigitsConfig

REAL = os.environ.get("ATTNLAB_DATA")
needs_mnist = pytest.mark.skipif(
    not mnist_available(REAL), reason="MNIST not found: set ATTNLAB_DATA to a folder holding mnist/"
)
SETTINGS = [("centered", 28, 0), ("translated", 40, 0), ("cluttered", 60, 4)]


def small(setting="centered", size=60, distractors=4, **extra):
    config = {"setting": setting, "size": size, "distractors": distractors, "source": "small", **extra}
    return build_task("digits", config)


@pytest.mark.parametrize(("setting", "side", "distractors"), SETTINGS)
def test_spec_and_batches(setting, side, distractors):
    task = small(setting, size=side, distractors=distractors)
    spec = task.spec
    assert spec.image == (1, side, side) and spec.num_outputs == 10
    assert spec.seq_len == 1 and spec.answer_len == 1 and not spec.tokens
    batch = task.sample(8, torch.Generator().manual_seed(0))
    assert batch.inputs.shape == (8, 1, side, side) and batch.inputs.dtype == torch.float32
    assert batch.targets.shape == (8, 1) and batch.targets.dtype == torch.long
    assert batch.inputs.min() >= 0 and batch.inputs.max() <= 1 and batch.inputs.sum() > 0
    for split in ("val", "test"):
        held = task.eval_set(16, split)
        assert held.inputs.shape == (16, 1, side, side) and held.inputs.dtype == torch.float32
        assert held.targets.shape == (16, 1) and held.targets.dtype == torch.long
        assert task.boxes(split).shape == (len(task.source_rows(split)), 4)
    assert task.source_used == "small"


def test_eval_canvas_shows_the_digit_at_its_box():
    task = small("cluttered", size=60, distractors=4)
    held = task.eval_set(50, "test")
    boxes = task.boxes("test")[:50]
    assert held.boxes is not None and torch.equal(held.boxes, boxes)  # the batch carries them
    images, labels = load_small_digits("test")
    for i in range(50):
        top, left, height, width = boxes[i].tolist()
        region = held.inputs[i, 0, top : top + height, left : left + width]
        assert (region >= torch.from_numpy(images[i].copy()).float() / 255).all()
    assert torch.equal(held.targets[:, 0], torch.from_numpy(labels[:50].copy()))


@pytest.mark.parametrize(("setting", "side", "distractors"), SETTINGS)
def test_training_boxes_are_where_each_sampled_digit_went(setting, side, distractors):
    task = small(setting, size=side, distractors=distractors)
    batch = task.sample(12, torch.Generator().manual_seed(7))
    boxes = batch.boxes
    assert boxes is not None and boxes.shape == (12, 4) and (boxes[:, 2:] == 28).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, :2] + 28 <= side).all()
    if distractors == 0:  # the canvas holds only the digit: all its ink lies inside the box
        for i in range(12):
            top, left = boxes[i, :2].tolist()
            outside = batch.inputs[i, 0].clone()
            outside[top : top + 28, left : left + 28] = 0
            assert outside.sum() == 0 < batch.inputs[i, 0].sum()


def test_eval_sets_are_fixed_across_instances_and_prefixes():
    a, b = small("cluttered"), small("cluttered")
    for split in ("val", "test"):
        first, second = a.eval_set(40, split), b.eval_set(40, split)
        assert torch.equal(first.inputs, second.inputs) and torch.equal(first.targets, second.targets)
        assert torch.equal(a.eval_set(10, split).inputs, first.inputs[:10])  # a prefix of one fixed set
        assert torch.equal(a.boxes(split), b.boxes(split))
    assert not torch.equal(a.eval_set(40, "val").inputs, a.eval_set(40, "test").inputs)
    full = a.eval_set(10**6, "test")
    assert len(full) == len(load_small_digits("test")[1])


def test_sampling_is_deterministic_and_fresh():
    task = small("translated", size=50)
    one = task.sample(16, torch.Generator().manual_seed(3))
    two = task.sample(16, torch.Generator().manual_seed(3))
    other = task.sample(16, torch.Generator().manual_seed(4))
    assert torch.equal(one.inputs, two.inputs) and torch.equal(one.targets, two.targets)
    assert not torch.equal(one.inputs, other.inputs)
    g = torch.Generator().manual_seed(5)
    assert not torch.equal(task.sample(16, g).inputs, task.sample(16, g).inputs)


def test_val_is_held_out_of_training():
    task = small(val_size=5000)
    train, val = task.source_rows("train"), task.source_rows("val")
    total = len(load_small_digits("train")[1])
    assert len(val) == int(0.2 * total)  # capped at 20% of the small training set
    assert len(set(train.tolist()) & set(val.tolist())) == 0
    assert sorted(train.tolist() + val.tolist()) == list(range(total))
    assert len(small(val_size=30).source_rows("val")) == 30


def test_sample_draws_only_training_rows():
    task = small()
    images = torch.from_numpy(load_small_digits("train")[0].copy())
    train_rows = task.source_rows("train")
    g = torch.Generator().manual_seed(7)
    batch = task.sample(32, g)
    drawn = torch.randint(0, len(train_rows), (32,), generator=torch.Generator().manual_seed(7))
    expected = images[train_rows[drawn]].float() / 255  # the draw the task makes, replayed
    torch.testing.assert_close(batch.inputs[:, 0], expected, rtol=0, atol=0)


def test_metrics_and_render():
    task = small()
    batch = task.eval_set(4, "test")
    logits = torch.full((4, 1, 10), -5.0)
    logits[:2, 0] = torch.nn.functional.one_hot(batch.targets[:2, 0], 10) * 10.0  # two right
    logits[2:, 0, (batch.targets[2:, 0] + 1) % 10] = 10.0  # two wrong
    metrics = task.metrics(logits, batch)
    assert metrics["accuracy"] == 0.5 and metrics["error"] == 0.5
    assert task.metric == "accuracy" and task.maximize
    text = task.render(batch, 2, logits)
    label = int(batch.targets[2, 0])
    side = task.config.side
    assert text.splitlines() == [f"input: {side}x{side} image", f"answer: {label}",
                                 f"predicted: {(label + 1) % 10}"]
    assert "predicted" not in task.render(batch, 0)
    assert task.token_names() == []


def test_describe():
    assert small("cluttered", size=100, distractors=8).describe().endswith("100x100 cluttered, 8 distractors of 8x8")
    assert small("centered").describe().endswith("28x28 centered")


def test_config_errors():
    for bad, field in (
        ({"setting": "rotated"}, "setting"),
        ({"source": "emnist"}, "source"),
        ({"setting": "translated", "size": 20}, "size"),
        ({"distractors": -1}, "distractors"),
        ({"val_size": 0}, "val_size"),
    ):
        with pytest.raises((ValueError, ConfigError), match=field):
            build_task("digits", bad)
    with pytest.raises(ValueError, match="split"):
        small().eval_set(4, "train")
    with pytest.raises(ValueError, match="split"):
        small().boxes("train")


def test_mnist_source_without_data(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTNLAB_DATA", raising=False)
    task = build_task("digits", {"source": "mnist"})
    with pytest.raises(ConfigError, match="no data folder"):
        task.sample(2, torch.Generator().manual_seed(0))
    task = build_task("digits", {"source": "mnist", "data_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "mnist"))):
        task.eval_set(2)
    auto = build_task("digits", {"source": "auto", "data_dir": str(tmp_path)})
    with pytest.warns(UserWarning, match=re.escape(f"no MNIST in {tmp_path / 'mnist'}")):
        assert auto.source_used == "small"
    assert auto.describe().startswith("scikit-learn")
    quiet = build_task("digits", {"source": "auto"})  # no folder named: the small set, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert quiet.source_used == "small"


def test_broken_mnist_is_not_silently_replaced(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in (name for pair in FILES.values() for name in pair):
        (folder / name).write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01")  # says 5 values, holds 1
    task = build_task("digits", {"source": "auto", "data_dir": str(tmp_path)})
    assert task.source_used == "mnist"
    with pytest.raises(DataError, match="train-images-idx3-ubyte: magic number 2049"):
        task.sample(2, torch.Generator().manual_seed(0))


@needs_mnist
def test_mnist_splits():
    task = build_task("digits", {"setting": "translated", "size": 60, "source": "auto", "data_dir": REAL})
    assert task.source_used == "mnist" and task.describe() == "MNIST 60x60 translated"
    train, val, test = (task.source_rows(s) for s in ("train", "val", "test"))
    assert len(val) == 5000 and len(train) == 55000 and len(test) == 10000
    assert len(np.intersect1d(train.numpy(), val.numpy())) == 0
    assert sorted(np.concatenate([train.numpy(), val.numpy()]).tolist()) == list(range(60000))
    assert torch.equal(test, torch.arange(10000))  # test canvases come from the test file only
    train_images, train_labels = load_mnist("train", REAL)
    held = task.eval_set(100, "val")
    boxes = task.boxes("val")
    for i in range(0, 100, 7):
        top, left = boxes[i, :2].tolist()
        digit = torch.from_numpy(train_images[int(val[i])].copy()).float() / 255
        torch.testing.assert_close(held.inputs[i, 0, top : top + 28, left : left + 28], digit, rtol=0, atol=0)
        assert int(held.targets[i, 0]) == int(train_labels[int(val[i])])
    assert build_task("digits", {"source": "mnist", "data_dir": REAL}).spec.image == (1, 28, 28)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        DigitsConfig().size = 3
