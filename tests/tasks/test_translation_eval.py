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


def test_user_sentences_are_checked_never_cut_silently(bahdanau_run):
    from attnlab.errors import ConfigError
    from attnlab.tasks.translation_eval import check_sources

    task, model = bahdanau_run.task, bahdanau_run.model
    words = task.vocabs[0].words[4:]  # known source words, the specials left out
    long = " ".join(words[k % len(words)] for k in range(30))  # 30 tokens; this run's max_len is 24
    cut = " ".join(long.split()[:24])
    assert check_sources(task, ["a b", cut]) == []
    assert check_sources(task, [cut, long], truncate=True) == ["sentence 2 of 2 cut from 30 to 24 tokens (the run's task.max_len)"]
    for call in (lambda: translate(task, model, [cut, long]), lambda: alignment(task, model, long)):
        with pytest.raises(ConfigError, match=r"^sentence (2 of 2|1 of 1) has 30 tokens, more than the run's task.max_len of 24"):
            call()
    for empty in ("", "   "):
        with pytest.raises(ConfigError, match="sentence 2 of 2 is empty"):
            translate(task, model, ["a b", empty], truncate=True)
    assert translate(task, model, [long], truncate=True) == translate(task, model, [cut])
    assert alignment(task, model, long, truncate=True).source == alignment(task, model, cut).source


def test_score_split_still_cuts_the_eval_sources_to_max_len(bahdanau_run):
    import dataclasses

    task, model = bahdanau_run.task, bahdanau_run.model
    sources = [s for s, _ in task.split("test").texts[:4]]
    kept = task.config
    task.config = dataclasses.replace(kept, max_len=3)  # shorter than every test source
    try:
        assert min(len(task.vocabs[0].encode(s)) for s in sources) > 3
        result = score_split(task, model, "test", limit=4)
        assert result["sentences"] == 4 and [e["translation"] for e in result["examples"][:4]] == translate(
            task, model, [" ".join(s.split()[:3]) for s in sources]
        )
    finally:
        task.config = kept
