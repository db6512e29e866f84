import os
from pathlib import Path

import pytest
import torch

from attnlab.data.subword import EOS
from attnlab.errors import DataError
from attnlab.models import build_model
from attnlab.spec import PAD
from attnlab.tasks import build_task
from attnlab.tasks.translation import TranslationTask

SMALL_TOY = {"corpus": "toy", "toy_pairs": 300}


def write_tsv(path: Path, count: int) -> Path:
    words = ["red", "green", "blue", "cat", "dog", "sees", "runs", "the"]
    lines = []
    for i in range(count):
        src = " ".join(words[(i + k) % len(words)] for k in range(3 + i % 4))
        lines.append(f"{src}\t{src.upper()}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_toy_batches_have_eos_then_pad_and_similar_lengths():
    task = build_task("translate", SMALL_TOY)
    spec = task.spec
    assert spec.eos_id == EOS and spec.answer_len == task.config.max_len + 1
    batch = task.sample(16, torch.Generator().manual_seed(0))
    inputs, targets = batch.inputs, batch.targets
    assert inputs.shape[0] == targets.shape[0] == 16
    for row in targets:
        ids = row.tolist()
        assert ids.count(EOS) == 1
        assert all(t == PAD for t in ids[ids.index(EOS) + 1 :])
    lengths = (inputs != PAD).sum(1)
    assert int(lengths.max() - lengths.min()) <= 2  # consecutive pairs in length order
    # sources are padded on the right: no PAD before a real token
    for row in inputs:
        real = (row != PAD).tolist()
        assert real == sorted(real, reverse=True)


def test_sample_is_deterministic_and_eval_set_full_length():
    task = build_task("translate", SMALL_TOY)
    a = task.sample(8, torch.Generator().manual_seed(3))
    b = task.sample(8, torch.Generator().manual_seed(3))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    val = task.eval_set(20, "val")
    assert val.targets.shape == (20, task.spec.answer_len)
    with pytest.raises(ValueError, match="split"):
        task.eval_set(4, "train")


def test_detokenize_round_trips_the_raw_text():
    task = build_task("translate", SMALL_TOY)
    data = task.split("val")
    batch = task.eval_set(5, "val")
    for k in range(5):
        assert task.detokenize(batch.targets[k]) == data.texts[k][1]
        assert task.detokenize(batch.inputs[k], "source") == data.texts[k][0]


def test_loss_ignores_pad_and_metrics_score_a_perfect_prediction():
    task = build_task("translate", SMALL_TOY)
    batch = task.eval_set(6, "val")
    o = task.spec.num_outputs
    perfect = torch.nn.functional.one_hot(batch.targets, o).float() * 50  # (b, n, o)
    scores = task.metrics(perfect, batch)
    assert scores["bleu"] == pytest.approx(100.0) and scores["token_accuracy"] == 1.0
    assert task.loss(perfect, batch).item() < 1e-6
    wrong = perfect.clone()
    wrong[:, :, PAD] = 100.0  # argmax PAD everywhere: only PAD positions would be right, and they are ignored
    assert task.metrics(wrong, batch)["token_accuracy"] == 0.0
    assert task.loss(wrong, batch).item() > 10


def test_label_smoothing_mixes_the_word_with_the_uniform_target():
    eps = 0.1
    plain, smooth = build_task("translate", SMALL_TOY), build_task("translate", {**SMALL_TOY, "label_smoothing": eps})
    batch = plain.eval_set(6, "val")
    logits = torch.randn(*batch.targets.shape, plain.spec.num_outputs, generator=torch.Generator().manual_seed(0))
    log_p = logits.log_softmax(-1)  # (b, n, o)
    real = batch.targets != PAD  # (b, n)
    word = -log_p.gather(-1, batch.targets[..., None])[..., 0]  # (b, n)
    uniform = -log_p.mean(-1)  # (b, n): cross-entropy against 1/o on every class
    expected = ((1 - eps) * word + eps * uniform)[real].mean()
    torch.testing.assert_close(smooth.loss(logits, batch), expected)
    torch.testing.assert_close(plain.loss(logits, batch), word[real].mean())
    with pytest.raises(ValueError, match="label_smoothing"):
        build_task("translate", {**SMALL_TOY, "label_smoothing": 1.0})


def test_tsv_corpus_holds_out_a_tenth_and_vocab_survives_a_run_folder(tmp_path):
    path = write_tsv(tmp_path / "pairs.tsv", 60)
    task = build_task("translate", {"corpus": "tsv", "path": str(path), "vocab_size": 60})
    raw = task.raw()
    assert len(raw["train"]) == 54 and len(raw["val"]) + len(raw["test"]) == 6
    task.save_assets(tmp_path / "run")
    again = TranslationTask(task.config)
    again._raw = {"train": [], "val": [], "test": []}  # no text: the vocabularies must come from the folder
    again.load_assets(tmp_path / "run")
    assert again.spec == task.spec
    sentence = raw["train"][0][0]
    assert again.vocabs[0].encode(sentence) == task.vocabs[0].encode(sentence)


def test_tsv_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="path"):
        build_task("translate", {"corpus": "tsv"})
    short = write_tsv(tmp_path / "short.tsv", 5)
    with pytest.raises(DataError, match="short.tsv"):
        build_task("translate", {"corpus": "tsv", "path": str(short)}).raw()


def test_every_translation_family_builds_on_the_task():
    task = build_task("translate", SMALL_TOY)
    batch = task.sample(4, torch.Generator().manual_seed(0))
    for family in ("seq2seq", "bahdanau", "luong", "encdec"):
        model = build_model(family, {}, task.spec)
        model.train()
        logits = model(batch.inputs, batch.targets)
        assert logits.shape == (*batch.targets.shape, task.spec.num_outputs)
        assert torch.isfinite(task.loss(logits, batch))


@pytest.mark.skipif(
    not (os.environ.get("ATTNLAB_DATA") and (Path(os.environ["ATTNLAB_DATA"]) / "multi30k").is_dir()),
    reason="Multi30k absent: set ATTNLAB_DATA to the folder holding multi30k/",
)
def test_multi30k_splits():
    task = build_task("translate", {"corpus": "multi30k", "source": "de", "target": "en"})
    raw = task.raw()
    assert [len(raw[s]) for s in ("train", "val", "test")] == [29000, 1014, 1000]
    assert raw["test"][0][1].startswith("A man in an orange hat")
