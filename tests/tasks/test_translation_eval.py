import pytest
import torch

from attnlab.data.subword import EOS
from attnlab.spec import PAD
from attnlab.tasks.translation_eval import (
    _encode_sources,
    alignment,
    alignment_errors,
    decode_ids,
    score_split,
    targets_with_eos,
    translate,
)
from attnlab.train import load_run, resolve, train


@pytest.fixture(scope="module")
def bahdanau_run(tmp_path_factory):
    """A Bahdanau model trained briefly on a small generated pair."""
    folder = tmp_path_factory.mktemp("mt") / "run"
    config = resolve({
        "task": {"name": "translate", "corpus": "toy", "toy_pairs": 400, "max_len": 24},
        "model": {"name": "bahdanau"},
        "train": {"steps": 30, "eval_every": 15, "eval_size": 16, "batch_size": 32, "lr": 3e-3, "device": "cpu"},
    })
    train(config, folder, progress=False)
    return load_run(folder)


def test_targets_with_eos_pads_after_eos():
    out = targets_with_eos([[5, 6], [7]], 4)
    assert out.tolist() == [[5, 6, EOS], [7, EOS, PAD]]
    assert targets_with_eos([[5, 6, 7, 8, 9]], 4).tolist() == [[5, 6, 7, EOS]]  # room for EOS within the limit


def test_translate_matches_decoding_the_ids(bahdanau_run):
    task, model = bahdanau_run.task, bahdanau_run.model
    sentences = [s for s, _ in task.split("test").texts[:3]]
    ids = decode_ids(model, _encode_sources(task, sentences), max_len=task.spec.answer_len)
    assert translate(task, model, sentences) == [task.vocabs[1].decode(row) for row in ids]
    assert all(EOS not in row and PAD not in row for row in ids)
    # greedy equals beam 1 through this path too
    assert translate(task, model, sentences, beam_size=1) == translate(task, model, sentences)


def test_alignment_has_a_row_per_output_token_and_sums_to_one(bahdanau_run):
    task, model = bahdanau_run.task, bahdanau_run.model
    sentence = task.split("test").texts[0][0]
    found = alignment(task, model, sentence)
    (weights,) = found.weights  # one cross-attention module
    assert weights.shape == (1, len(found.target), len(found.source))
    assert found.target[-1] == "</s>" and len(found.source) == len(sentence.split())
    assert torch.allclose(weights.sum(-1), torch.ones(1, len(found.target)), atol=1e-5)


def test_score_split_scores_the_raw_references(bahdanau_run):
    task, model = bahdanau_run.task, bahdanau_run.model
    result = score_split(task, model, "test", limit=40)
    assert result["sentences"] == 40 and 0 <= result["bleu"] <= 100 and 0 <= result["chrf"] <= 100
    assert sum(b["sentences"] for b in result["bleu_by_length"]) == 40
    assert result["examples"][0]["reference"] == task.split("test").texts[0][1]


def test_alignment_errors_per_layer_in_range(bahdanau_run):
    errors = alignment_errors(bahdanau_run.task, bahdanau_run.model)
    assert list(errors) == [0]
    assert 0.0 <= errors[0]["argmax"] <= 1.0 and 0.0 <= errors[0]["threshold"] <= 1.0


def test_alignment_errors_need_the_toy_pair(tmp_path, bahdanau_run):
    from attnlab.tasks import build_task

    path = tmp_path / "p.tsv"
    path.write_text("".join(f"a b {i}\tc d {i}\n" for i in range(30)))
    task = build_task("translate", {"corpus": "tsv", "path": str(path), "vocab_size": 40})
    with pytest.raises(ValueError, match="toy"):
        alignment_errors(task, bahdanau_run.model)
