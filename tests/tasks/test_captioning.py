"""The captioning task: scenes and Flickr8k as (annotation vectors, caption) pairs, scored against every reference."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from attnlab.data.subword import EOS
from attnlab.errors import ConfigError, DataError
from attnlab.spec import PAD
from attnlab.tasks.base import Batch
from attnlab.tasks.captioning import CaptionConfig, CaptionTask

SMALL = CaptionConfig(scenes=40, max_digits=3)


@pytest.fixture(scope="module")
def scenes() -> CaptionTask:
    return CaptionTask(SMALL)


def test_scene_inputs_are_each_cells_pixels_and_its_position(scenes):
    spec = scenes.spec
    assert (spec.seq_len, spec.input_features) == (12, 64 + 12) and spec.eos_id == EOS
    batch = scenes.eval_set(5, "test")
    assert batch.inputs.shape == (5, 12, 76) and batch.ids is not None
    for row, image in enumerate(batch.ids.tolist()):
        picture = scenes.image(image)[0]  # (16, 48)
        for cell in range(12):
            r, c = divmod(cell, 6)
            patch = picture[r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8].flatten()
            torch.testing.assert_close(batch.inputs[row, cell, :64], patch)
            assert batch.inputs[row, cell, 64:].argmax() == cell and batch.inputs[row, cell, 64:].sum() == 1


def test_targets_are_the_caption_then_eos_then_pad(scenes):
    batch = scenes.eval_set(4, "val")
    for row, _image in enumerate(batch.ids.tolist()):
        words = scenes.references(batch.rows(slice(row, row + 1)))[0][0].split()
        ids = batch.targets[row].tolist()
        assert scenes.words(ids) == " ".join(words)
        assert ids[len(words)] == EOS and all(i == PAD for i in ids[len(words) + 1 :])
        assert len(ids) == scenes.spec.answer_len  # eval targets come at full length


def test_training_batches_draw_every_caption_by_generator(scenes):
    one = scenes.sample(8, torch.Generator().manual_seed(3))
    two = scenes.sample(8, torch.Generator().manual_seed(3))
    assert torch.equal(one.targets, two.targets) and torch.equal(one.ids, two.ids)
    assert one.inputs.dtype == torch.float32 and one.inputs.shape[1:] == (12, 76)


def test_metrics_score_against_every_reference_of_the_image():
    task = CaptionTask(SMALL)
    task._load()
    image = task.splits["val"].images[0]
    task.splits["val"].captions[0] = [["a", "1", "left", "of", "a", "2"], ["a", "3", "left", "of", "a", "4"]]
    batch = task.eval_set(1, "val")
    second = task._targets([["a", "3", "left", "of", "a", "4"]])  # (1, n): the second reference exactly
    logits = torch.nn.functional.one_hot(second, len(task.vocab)).float()  # (1, n, o)
    assert task.metrics(logits, batch)["bleu4"] == pytest.approx(100.0)
    alone = Batch(batch.inputs, batch.targets)  # without ids: only its own target counts
    assert task.metrics(logits, alone)["bleu4"] < 100.0
    assert int(batch.ids[0]) == image


def test_digit_hits_score_the_named_cells(scenes):
    batch = scenes.eval_set(1, "test")
    image = int(batch.ids[0])
    cells = scenes.named_cells(image)
    alphas = torch.zeros(len(cells), 12)
    for t, cell in enumerate(cells):
        alphas[t, cell if cell >= 0 else 0] = 1.0
    digits = sum(c >= 0 for c in cells)
    assert scenes.digit_hits(image, alphas) == (digits, digits)
    assert scenes.digit_hits(image, alphas.roll(1, dims=1)) == (0, digits)


def test_a_run_folder_rebuilds_the_spec_without_the_data(tmp_path, scenes):
    scenes.save_assets(tmp_path)
    again = CaptionTask(SMALL)
    again.load_assets(tmp_path)
    assert again.spec == scenes.spec and not again.splits  # nothing generated or read


def test_flickr8k_without_a_data_folder_is_one_line(tmp_path):
    task = CaptionTask(CaptionConfig(source="flickr8k", data_dir=str(tmp_path)))
    with pytest.raises(DataError, match="no flickr8k/ folder") as err:
        task.sample(2, torch.Generator())
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("field", "value"), [("source", "coco"), ("layer", "stride8"), ("max_digits", 1)])
def test_bad_config_fields_are_one_line(field, value):
    with pytest.raises(ValueError, match=f"CaptionConfig.{field}"):
        CaptionConfig(**{field: value})


@pytest.mark.skipif(
    not (Path(os.environ.get("ATTNLAB_DATA", "/nonexistent")) / "flickr8k").is_dir(),
    reason="needs $ATTNLAB_DATA/flickr8k",
)
def test_flickr8k_references_are_the_five_captions_tokenised(tmp_path):
    from attnlab.data.flickr8k import read_flickr8k

    task = CaptionTask(CaptionConfig(source="flickr8k"))  # reads captions only: features come on first batch
    splits = read_flickr8k(Path(os.environ["ATTNLAB_DATA"]) / "flickr8k")
    first = splits["test"][0]
    assert task.spec.seq_len == 49 and task.spec.input_features == 1280  # the default: stride 32, 7 x 7 x 1280
    assert 2000 < len(task.vocab) < 4000  # words seen 5 times or more in the training captions
    image = task.splits["test"].images[0]
    refs = task.references(Batch(torch.zeros(1), torch.zeros(1), torch.tensor([image])))[0]
    assert len(refs) == len(first.captions) == 5 and all(r == r.lower() for r in refs)
    assert task.features.numel() == 0  # nothing encoded yet


def test_finetune_needs_photographs_and_an_encoder():
    with pytest.raises(ValueError, match=r"CaptionConfig\.finetune"):
        CaptionConfig(finetune=True)  # scenes
    task = CaptionTask(CaptionConfig(source="flickr8k", finetune=True))
    with pytest.raises(ConfigError, match=r"--model\.encoder=efficientnet_lite0") as err:
        task.prepare_model(torch.nn.Linear(2, 2))
    assert "\n" not in str(err.value)


@pytest.mark.skipif(
    not (Path(os.environ.get("ATTNLAB_DATA", "/nonexistent")) / "flickr8k").is_dir(),
    reason="needs $ATTNLAB_DATA/flickr8k",
)
def test_finetune_starts_the_encoder_from_the_imagenet_weights():
    from attnlab.pretrained.efficientnet import default_weights_path, read_weights
    from attnlab.train import build_task_and_model, resolve

    config = resolve({"task": {"name": "caption", "source": "flickr8k", "finetune": True},
                      "model": {"name": "show_attend_tell", "encoder": "efficientnet_lite0", "hidden_dim": 16,
                                "embed_dim": 8, "attn_dim": 8}})  # fmt: skip
    task, model = build_task_and_model(config)
    assert task.spec.image == (3, 224, 224)
    weights = read_weights(default_weights_path())
    torch.testing.assert_close(model.encoder.stem.conv.weight, weights["_conv_stem.weight"])
    batch = task.sample(2, torch.Generator().manual_seed(0))
    assert batch.inputs.shape == (2, 3, 224, 224)
    logits, _ = model(batch.inputs, batch.targets)
    assert logits.shape[:2] == batch.targets.shape
