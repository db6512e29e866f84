"""The two-digit task: boxes inside the canvas and apart, labels of the pasted digits, the pair class
map, sums, both answer layouts, determinism, fixed eval canvases, and the image families training on it."""

import math

import pytest
import torch

from attnlab.data.canvas import apart_corners, clutter_apart
from attnlab.data.mnist import load_small_digits
from attnlab.tasks import build_task
from attnlab.tasks.digit_pairs import NUM_PAIRS, PAIRS, DigitPairsConfig, pair_class


def small(**extra):
    return build_task("digit_pairs", {"source": "small", **extra})


def apart(boxes):
    """(k, 2, 4) boxes -> (k,) True where the two boxes share no pixel."""
    (t0, l0, h0, w0), (t1, l1, h1, w1) = boxes[:, 0].unbind(-1), boxes[:, 1].unbind(-1)
    rows_apart = (t0 + h0 <= t1) | (t1 + h1 <= t0)
    cols_apart = (l0 + w0 <= l1) | (l1 + w1 <= l0)
    return rows_apart | cols_apart


def test_pair_class_map_is_a_bijection_onto_0_to_54():
    a, b = torch.meshgrid(torch.arange(10), torch.arange(10), indexing="ij")
    classes = pair_class(a.flatten(), b.flatten())  # (100,)
    assert torch.equal(classes, pair_class(b.flatten(), a.flatten()))  # unordered
    assert sorted(set(classes.tolist())) == list(range(55)) and NUM_PAIRS == 55
    for c, (x, y) in enumerate(PAIRS):  # PAIRS inverts the map, pairs listed with x <= y in order
        assert x <= y and int(pair_class(torch.tensor(x), torch.tensor(y))) == c
    assert len(set(PAIRS)) == 55


def test_apart_corners_never_overlap_and_cover_the_canvas():
    corners = apart_corners(3000, 2, 28, 60, torch.Generator().manual_seed(0))  # (k, 2, 2)
    boxes = torch.cat([corners, torch.full_like(corners, 28)], dim=-1)  # (k, 2, 4)
    assert apart(boxes).all()
    assert corners.min() == 0 and corners.max() == 60 - 28  # inside, both extremes reached
    assert torch.equal(corners, apart_corners(3000, 2, 28, 60, torch.Generator().manual_seed(0)))
    three = apart_corners(200, 3, 10, 40, torch.Generator().manual_seed(1))  # (k, 3, 2): every pair apart
    for i, j in ((0, 1), (0, 2), (1, 2)):
        gap = (three[:, i] - three[:, j]).abs()
        assert ((gap >= 10).any(-1)).all()
    with pytest.raises(ValueError, match="size must be >= 2 x 28 = 56"):
        apart_corners(1, 2, 28, 55, torch.Generator())


def test_clutter_apart_pastes_both_digits_at_their_boxes():
    gen = torch.Generator().manual_seed(0)
    digits = torch.randint(1, 256, (20, 2, 28, 28), generator=gen, dtype=torch.uint8)
    canvas, boxes = clutter_apart(digits, digits[:, 0], 80, 0, generator=torch.Generator().manual_seed(1))
    assert canvas.shape == (20, 80, 80) and boxes.shape == (20, 2, 4) and (boxes[..., 2:] == 28).all()
    for i in range(20):
        blank = canvas[i].clone()
        for j in range(2):
            top, left, h, w = boxes[i, j].tolist()
            torch.testing.assert_close(canvas[i, top : top + h, left : left + w], digits[i, j].float() / 255)
            blank[top : top + h, left : left + w] = 0
        assert blank.sum() == 0  # no distractors: nothing else on the canvas
    cluttered, same = clutter_apart(digits, digits[:, 0], 80, 6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(same, boxes) and (cluttered >= canvas).all() and (cluttered > canvas).any()


@pytest.mark.parametrize(
    ("extra", "answers", "classes"),
    [({}, 1, 55), ({"answer": "digits"}, 2, 10), ({"target": "sum"}, 1, 19)],
)
def test_spec_and_batches(extra, answers, classes):
    task = small(size=64, distractors=2, **extra)
    spec = task.spec
    assert spec.image == (1, 64, 64) and (spec.answer_len, spec.num_outputs) == (answers, classes)
    batch = task.sample(8, torch.Generator().manual_seed(0))
    assert batch.inputs.shape == (8, 1, 64, 64) and batch.inputs.dtype == torch.float32
    assert batch.targets.shape == (8, answers) and batch.targets.dtype == torch.long
    assert batch.targets.min() >= 0 and batch.targets.max() < classes
    held = task.eval_set(16, "test")
    assert held.inputs.shape == (16, 1, 64, 64) and held.targets.shape == (16, answers)


def test_eval_canvases_show_the_labelled_digits_at_their_boxes():
    task = small(size=70, distractors=3)
    held = task.eval_set(60, "test")
    boxes, digits = task.boxes("test")[:60], task.digits_of("test")[:60]  # (r, 2, 4), (r, 2)
    assert boxes.shape == (60, 2, 4) and apart(boxes).all()
    swapped = digits[:, 0] > digits[:, 1]  # (r,) the batch carries them smaller digit first, as `sample`
    assert held.boxes is not None and swapped.any() and not swapped.all()
    assert torch.equal(held.boxes, torch.where(swapped[:, None, None], boxes.flip(1), boxes))
    assert (boxes[..., :2] >= 0).all() and (boxes[..., :2] + boxes[..., 2:] <= 70).all()
    images, labels = load_small_digits("test")
    images, labels = torch.from_numpy(images.copy()), torch.from_numpy(labels.copy())
    assert torch.equal(digits[:, 0], labels[:60])  # image i of the split comes first
    for i in range(60):
        partner = None
        for j in range(2):
            top, left, h, w = boxes[i, j].tolist()
            region = held.inputs[i, 0, top : top + h, left : left + w]  # (28, 28)
            if j == 0:
                assert (region >= images[i].float() / 255).all()  # the digit, maybe with clutter on it
            else:  # the partner: some test image with the recorded label lies under its box
                under = (region[None] >= images.float() / 255).all(-1).all(-1)  # (m,)
                partner = under.nonzero()[:, 0]
                assert len(partner) and (labels[partner] == digits[i, 1]).any()
        assert int(held.targets[i, 0]) == int(pair_class(digits[i, 0], digits[i, 1]))


def test_training_boxes_are_the_smaller_digits_first():
    task = small(size=70, distractors=0, answer="digits")
    batch = task.sample(16, torch.Generator().manual_seed(3))
    boxes = batch.boxes
    assert boxes is not None and boxes.shape == (16, 2, 4) and apart(boxes).all() and (boxes[..., 2:] == 28).all()
    images, labels = load_small_digits("train")
    images, labels = torch.from_numpy(images.copy()).float() / 255, torch.from_numpy(labels.copy())
    assert (batch.targets[:, 0] <= batch.targets[:, 1]).all()  # DRAM's layout: the digits sorted
    for i in range(16):
        for k in range(2):  # box k holds a training image of the k-th smallest digit
            top, left, h, w = boxes[i, k].tolist()
            region = batch.inputs[i, 0, top : top + h, left : left + w]  # (28, 28)
            under = (region[None] >= images - 1e-6).all(-1).all(-1)  # (m,)
            assert (labels[under] == batch.targets[i, k]).any()


def test_targets_of_each_layout_and_the_sum():
    digits = torch.tensor([[7, 2], [0, 0], [9, 4]])
    assert small().targets(digits).tolist() == [[PAIRS.index((2, 7))], [PAIRS.index((0, 0))], [PAIRS.index((4, 9))]]
    assert small(answer="digits").targets(digits).tolist() == [[2, 7], [0, 0], [4, 9]]
    assert small(target="sum").targets(digits).tolist() == [[9], [0], [13]]
    pairs, sums = small(answer="digits"), small(target="sum")
    fixed = pairs.digits_of("val")
    assert torch.equal(sums.eval_set(50, "val").targets[:, 0], fixed[:50].sum(1))
    assert torch.equal(pairs.eval_set(50, "val").targets, fixed[:50].sort(1).values)


def test_sampling_is_deterministic_and_eval_sets_are_fixed():
    a, b = small(size=60), small(size=60)
    x, y = a.sample(6, torch.Generator().manual_seed(3)), b.sample(6, torch.Generator().manual_seed(3))
    assert torch.equal(x.inputs, y.inputs) and torch.equal(x.targets, y.targets)
    z = a.sample(6, torch.Generator().manual_seed(4))
    assert not torch.equal(x.inputs, z.inputs)
    for split in ("val", "test"):
        full, prefix = a.eval_set(40, split), b.eval_set(10, split)
        assert torch.equal(full.inputs[:10], prefix.inputs) and torch.equal(full.targets[:10], prefix.targets)
        assert torch.equal(a.boxes(split), b.boxes(split))
    assert not torch.equal(a.eval_set(10, "val").inputs, a.eval_set(10, "test").inputs)
    with pytest.raises(ValueError, match="split must be 'val' or 'test'"):
        a.boxes("train")


def test_val_digits_are_held_out_of_training():
    task = small()
    val_rows = set(task.digits.source_rows("val").tolist())
    train_rows = set(task.digits.source_rows("train").tolist())
    assert val_rows and not val_rows & train_rows


def test_metrics_render_and_describe():
    task = small(answer="digits")
    batch = task.eval_set(4, "test")
    logits = torch.nn.functional.one_hot(batch.targets, 10).float()  # (4, 2, 10), all right
    logits[0, 1] = torch.nn.functional.one_hot((batch.targets[0, 1] + 1) % 10, 10).float()  # one digit wrong
    metrics = task.metrics(logits, batch)
    assert metrics["accuracy"] == pytest.approx(7 / 8) and metrics["sequence_accuracy"] == pytest.approx(3 / 4)
    assert metrics["error"] == pytest.approx(1 / 4) and task.metric == "sequence_accuracy"
    a, b = batch.targets[1].tolist()
    assert task.render(batch, 1, logits) == f"input: 100x100 image\nanswer: {a}+{b}\npredicted: {a}+{b}"
    assert "unordered pair" in task.describe() and "100x100" in task.describe()
    assert "19 classes" in small(target="sum").describe()


def test_answer_text_names_a_pair_class_two_digits_or_a_sum():
    three, seven = torch.tensor([3]), torch.tensor([7])
    assert small().answer_text(pair_class(three, seven)) == "3+7"
    assert small().answer_text(pair_class(seven, three)) == "3+7"  # unordered: one class
    assert small(answer="digits").answer_text(torch.tensor([2, 9])) == "2+9"
    assert small(target="sum").answer_text(torch.tensor([12])) == "12"


def test_config_errors():
    from attnlab.errors import ConfigError

    for bad, match in (
        ({"target": "product"}, "target must be one of pair, sum"),
        ({"answer": "words"}, "answer must be one of class, digits"),
        ({"target": "sum", "answer": "digits"}, "answer 'digits' needs target 'pair'"),
        ({"size": 50}, "size must be >= 56"),
        ({"distractors": -1}, "distractors must be >= 0"),
    ):
        with pytest.raises(ConfigError, match=match):
            small(**bad)
    with pytest.raises(ValueError):
        DigitPairsConfig(val_size=0)


@pytest.mark.parametrize("model", ["image_cnn", "image_mlp", "soft_attention", "ram", "dram"])
def test_image_families_train_on_the_55_way_answer(model, tmp_path):
    from attnlab.train import load_run, resolve, train

    sizes = {
        "image_cnn": {"channels": [4], "hidden_dim": 8},
        "image_mlp": {"hidden_dim": 8, "num_layers": 1},
        "soft_attention": {"channels": [4], "embed_dim": 8, "num_heads": 2, "hidden_dim": 8},
        "ram": {"num_glimpses": 2, "glimpse_hidden": 8, "glimpse_dim": 8, "core_size": 8},
        "dram": {"glimpses_per_label": 2, "glimpse_hidden": 8, "feature_dim": 8, "core_size": 8, "context_hidden": 8},
    }
    config = resolve({
        "task": {"name": "digit_pairs", "source": "small", "size": 56, "distractors": 2},
        "model": {"name": model, **sizes[model]},
        "train": {"steps": 2, "eval_every": 2, "eval_size": 8, "batch_size": 4},
    })
    result = train(config, tmp_path / "run", progress=False)
    assert result["step"] == 2 and math.isfinite(result["loss"])
    run = load_run(tmp_path / "run")
    assert run.model.eval()(run.task.eval_set(3, "test").inputs).shape == (3, 1, NUM_PAIRS)  # one of 55
