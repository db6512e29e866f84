import csv
import importlib.util
import logging
import math
import os
import random
import subprocess
from pathlib import Path

import pytest

from attnlab.tasks import caption_metrics
from attnlab.tasks.caption_metrics import (
    bleu,
    caption_scores,
    cider,
    cider_per_image,
    meteor,
    start_meteor,
    tokenize,
    why_no_meteor,
)

# one worker runs this file, so one METEOR process serves all its tests
pytestmark = pytest.mark.xdist_group("caption_metrics")

NO_METEOR = why_no_meteor()
VOCABULARY = [
    "a",
    "the",
    "dog",
    "dogs",
    "man",
    "woman",
    "runs",
    "running",
    "ran",
    "on",
    "grass",
    "in",
    "red",
    "ball",
    "two",
    "is",
    "jumping",
    "jumps",
    "water",
]


def random_corpus(
    seed: int, images: int, max_refs: int = 5, words: int = len(VOCABULARY)
) -> tuple[list[str], list[list[str]]]:
    """Random captions of 1-12 words from the first `words` of VOCABULARY, 1..max_refs references per image."""
    rng = random.Random(seed)
    caption = lambda: " ".join(rng.choice(VOCABULARY[:words]) for _ in range(rng.randint(1, 12)))
    hypotheses = [caption() for _ in range(images)]
    references = [[caption() for _ in range(rng.randint(1, max_refs))] for _ in range(images)]
    return hypotheses, references


@pytest.fixture(scope="module", autouse=True)
def meteor_loading() -> None:
    # the jar loads while the tests before the METEOR ones run
    start_meteor(paraphrases=False)


# ---- tokenising ----------------------------------------------------------------------------------


def test_tokenize_follows_the_penn_treebank_and_drops_punctuation():
    assert tokenize("A man's dog doesn't like the black-and-white T-shirt .") == (
        ["a", "man", "'s", "dog", "does", "n't", "like", "the", "black-and-white", "t-shirt"]
    )
    assert tokenize('Two dogs\' toys (red) are on the grass, and "cannot" be found ... it!') == (
        ["two", "dogs", "toys", "red", "are", "on", "the", "grass", "and", "can", "not", "be", "found", "it"]
    )
    assert tokenize("The U.S. flag at St. Mary's, 3.5 feet -- 1,000 people : yes") == (
        ["the", "u.s.", "flag", "at", "st.", "mary", "'s", "3.5", "feet", "1,000", "people", "yes"]
    )
    assert tokenize("A girl can't swim; I'm sure they're wet.") == (
        ["a", "girl", "ca", "n't", "swim", "i", "'m", "sure", "they", "'re", "wet"]
    )
    assert tokenize("") == [] and tokenize(" . , !") == []


def _ptb_tokens(captions: list[str], tmp_path: Path) -> list[list[str]]:
    """coco-caption's preprocessing: Stanford's PTBTokenizer (-lowerCase), then its punctuation dropped."""
    spec = importlib.util.find_spec("pycocoevalcap")
    assert spec is not None and spec.submodule_search_locations
    jar = Path(next(iter(spec.submodule_search_locations))) / "tokenizer" / "stanford-corenlp-3.4.1.jar"
    source = tmp_path / "captions.txt"
    source.write_text("".join(c.replace("\n", " ") + "\n" for c in captions))
    command = ["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase"]
    lines = subprocess.run([*command, str(source)], capture_output=True, text=True, check=True).stdout.splitlines()
    # the toolkit's list; brackets come out as -lrb-/-rrb- (lowercased), which it does not catch
    dropped = {"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";", "-lrb-", "-rrb-", "-lcb-", "-rcb-"}
    return [[t for t in line.split() if t not in dropped] for line in lines]


@pytest.mark.skipif(NO_METEOR is not None, reason=f"no Java or pycocoevalcap: {NO_METEOR}")
def test_tokenize_agrees_with_the_toolkits_tokenizer(tmp_path):
    captions = [
        "A man's dog doesn't like the black-and-white T-shirt .",
        'Two dogs\' toys (red) are on the "grass", and ... it!',
        "The U.S. flag at St. Mary's , 3.5 feet -- 1,000 people : yes",
        "A girl can't swim; I'm sure they're wet and we'll see, I'd say, you've seen 'em.",
        "A brown dog is running through the grass .",
    ]
    data = os.environ.get("ATTNLAB_DATA")
    flickr = Path(data) / "flickr8k" / "captions.txt" if data else None
    if flickr is not None and flickr.is_file():
        with flickr.open() as lines:
            rows = [row["caption"] for row in csv.DictReader(lines)]
        captions += rows[::40]  # about 1,000 real captions
    expected = _ptb_tokens(captions, tmp_path)
    assert len(expected) == len(captions)
    assert [tokenize(c) for c in captions[:5]] == expected[:5]
    # a few oddities differ (at&t, slip 'n' slide): at most one caption in a thousand
    differ = sum(tokenize(c) != e for c, e in zip(captions, expected))
    assert differ <= len(captions) / 1000


# ---- BLEU ----------------------------------------------------------------------------------------


def test_bleu_by_hand_with_clipping_several_references_and_the_brevity_penalty():
    hypotheses = ["a cat sat on mat", "the the the the"]
    references = [["the cat is on the mat", "there is a cat on the red mat"], ["the cat on the mat"]]
    # 1: c = 5, closest r = 6; unigrams a, cat, on, mat match (4/5); bigram "a cat" (1/4)
    # 2: c = 4, r = 5; "the" clipped at its count in the reference, 2 (2/4); "the the" never (0/3)
    p1, p2 = (4 + 2) / (5 + 4), (1 + 0) / (4 + 3)
    bp = math.exp(1 - (6 + 5) / (5 + 4))
    scores = bleu(hypotheses, references)
    assert scores["bleu1"] == pytest.approx(100 * p1 * bp)
    assert scores["bleu2"] == pytest.approx(100 * math.sqrt(p1 * p2) * bp)
    assert scores["bleu3"] == 0.0 and scores["bleu4"] == 0.0  # no trigram matches, no smoothing


def test_bleu_brevity_uses_the_closest_reference_length_ties_to_the_shorter():
    # c = 5 lies between references of 4 and 6 words: r = 4, so no penalty
    assert bleu(["a dog runs on grass"], [["a dog runs fast", "the dog is on the grass"]])["bleu1"] == pytest.approx(
        100.0
    )
    # with only the longer reference: r = 6, BP = exp(1 - 6/5)
    assert bleu(["a dog runs on grass"], [["a dog runs on the grass"]])["bleu1"] == pytest.approx(
        100 * math.exp(1 - 6 / 5)
    )


def test_bleu_ignores_case_and_punctuation_and_checks_its_input():
    references = [["A dog runs on the grass.", "The dog is running"], ["Two men, smiling."]]
    plain = bleu(["a dog runs on grass", "two men smile"], references)
    assert bleu(["A Dog runs, on grass!", "Two MEN smile ."], references) == plain
    assert 0 < plain["bleu4"] < plain["bleu3"] < plain["bleu2"] < plain["bleu1"] < 100
    assert bleu(["a dog runs on the grass"], [["A dog runs on the grass ."]])["bleu4"] == pytest.approx(100.0)
    assert bleu([], []) == {"bleu1": 0.0, "bleu2": 0.0, "bleu3": 0.0, "bleu4": 0.0}
    with pytest.raises(ValueError, match="differ in number"):
        bleu(["a"], [])
    with pytest.raises(TypeError, match="one list"):
        bleu(["a"], ["a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one reference"):
        bleu(["a"], [[]])


def test_bleu_equals_the_coco_caption_scorer():
    coco = pytest.importorskip("pycocoevalcap.bleu.bleu")
    for seed in range(2):
        hypotheses, references = random_corpus(seed, 200, words=6)
        expected, _ = coco.Bleu(4).compute_score(
            dict(enumerate(references)), {k: [h] for k, h in enumerate(hypotheses)}, verbose=0
        )
        scores = bleu(hypotheses, references)
        assert scores["bleu4"] > 0.01  # every order has matches: the toolkit's 1e-15 does not matter
        for n in range(1, 5):
            assert scores[f"bleu{n}"] == pytest.approx(100 * expected[n - 1], rel=1e-9)


# ---- CIDEr-D -------------------------------------------------------------------------------------


def test_cider_of_identical_and_disjoint_captions():
    references = [["a brown dog runs on the grass"], ["two men play chess in a park"]]
    # equal to its only reference: every cosine is 1, no length penalty: 10/4 * 4
    assert cider_per_image([r[0] for r in references], references) == pytest.approx([10.0, 10.0])
    # three words have no 4-gram: that order adds 0
    assert cider_per_image(["red ball bounces", "two men play chess in a park"], [["red ball bounces"], references[1]])[
        0
    ] == pytest.approx(7.5)
    assert cider(["xyz qqq www", "kkk"], references) == 0.0
    assert cider([], []) == 0.0
    # a single image: every n-gram is in all (one) reference sets, idf = log 1 = 0
    assert cider(["a dog"], [["a dog"]]) == 0.0


def test_cider_by_hand_with_the_length_penalty_and_clipping():
    # two images with disjoint words: every reference n-gram has df = 1, idf = log 2 = w,
    # and so does "c", found in no reference
    hypotheses = ["a b c", "p p p q"]
    references = [["a b"], ["p q"]]
    scores = cider_per_image(hypotheses, references)
    # image 1, unigrams: (w, w, w)·(w, w, 0) / (√3 w · √2 w); bigrams: (ab, bc)·(ab) / (√2 · 1); one word longer
    first = 10 / 4 * (2 / math.sqrt(6) + 1 / math.sqrt(2)) * math.exp(-(1**2) / (2 * 6.0**2))
    # image 2, unigrams: p's weight 3w clipped at the reference's w: (w·w + w·w) / (√10 w · √2 w);
    # bigrams "p p" x2 and "p q": (1) / (√5 · 1); two words longer
    second = 10 / 4 * (2 / math.sqrt(20) + 1 / math.sqrt(5)) * math.exp(-(2**2) / (2 * 6.0**2))
    assert scores == pytest.approx([first, second])
    assert cider(hypotheses, references) == pytest.approx((first + second) / 2)


def test_cider_idf_comes_from_the_evaluated_references():
    # "dog" is in every image's references: idf 0, so a caption of only "dog" scores nothing
    references = [["a dog"], ["the dog"], ["one dog"]]
    assert cider_per_image(["dog", "the dog", "dog"], references)[0] == 0.0
    assert cider_per_image(["dog", "the dog", "dog"], references)[1] > 0


def test_cider_equals_the_coco_caption_scorer():
    coco = pytest.importorskip("pycocoevalcap.cider.cider")
    for seed in range(2):
        hypotheses, references = random_corpus(100 + seed, 200)
        expected, per_image = coco.Cider().compute_score(
            dict(enumerate(references)), {k: [h] for k, h in enumerate(hypotheses)}
        )
        assert cider(hypotheses, references) == pytest.approx(expected, rel=1e-9)
        assert cider_per_image(hypotheses, references) == pytest.approx(list(per_image), rel=1e-9, abs=1e-12)


# ---- METEOR --------------------------------------------------------------------------------------


def test_without_java_meteor_says_why(monkeypatch, caplog):
    monkeypatch.setattr(caption_metrics.shutil, "which", lambda name: None)
    monkeypatch.setattr(caption_metrics, "_METEOR", {})
    monkeypatch.setattr(caption_metrics, "_WARNED", [])
    reason = why_no_meteor()
    assert reason is not None and "java" in reason and "\n" not in reason
    assert meteor(["a dog"], [["a dog"]]) is None
    with caplog.at_level(logging.WARNING):
        scores = caption_scores(["a dog runs"], [["a dog runs"]])
        caption_scores(["a dog runs"], [["a dog runs"]])
    assert "meteor" not in scores and set(scores) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider"}
    assert [r.getMessage() for r in caplog.records] == [f"METEOR left out: {reason}"]  # logged once


@pytest.mark.skipif(NO_METEOR is not None, reason=f"METEOR cannot run: {NO_METEOR}")
def test_meteor_equals_the_jars_own_corpus_score(tmp_path):
    hypotheses, references = random_corpus(7, 60, max_refs=3)
    references = [(refs * 3)[:3] for refs in references]  # the jar's file mode wants 3 for every image
    score = meteor(hypotheses, references, paraphrases=False)
    assert score is not None
    # the jar's own file mode on the same tokens: its "Final score" from the summed statistics
    jar = caption_metrics._meteor_files()
    assert isinstance(jar, tuple)
    (tmp_path / "hyp.txt").write_text("".join(" ".join(tokenize(h)) + "\n" for h in hypotheses))
    (tmp_path / "ref.txt").write_text("".join(" ".join(tokenize(r)) + "\n" for refs in references for r in refs))
    command = ["java", "-Xmx2G", "-jar", str(jar[0]), str(tmp_path / "hyp.txt"), str(tmp_path / "ref.txt")]
    options = ["-r", "3", "-l", "en", "-norm", "-m", "exact stem synonym"]
    out = subprocess.run([*command, *options], capture_output=True, text=True, check=True, cwd=jar[0].parent)
    final = next(line for line in out.stdout.splitlines() if line.startswith("Final score:"))
    assert score == pytest.approx(100 * float(final.split(":")[1]), abs=1e-9)


@pytest.mark.skipif(NO_METEOR is not None, reason=f"METEOR cannot run: {NO_METEOR}")
def test_meteor_matches_stems_and_synonyms_and_scores_a_corpus():
    exact = meteor(["a dog is running on the grass"], [["a dog is running on the grass"]], paraphrases=False)
    assert exact == pytest.approx(100.0)  # a copy: all words matched in one chunk, no penalty
    stem = meteor(["a dog runs on the grass"], [["a dog running on the grass"]], paraphrases=False)
    other = meteor(["a dog xyzzy on the grass"], [["a dog running on the grass"]], paraphrases=False)
    synonym = meteor(["a man rides a bike"], [["a man rides a bicycle"]], paraphrases=False)
    unrelated = meteor(["a man rides a xyzzy"], [["a man rides a bicycle"]], paraphrases=False)
    assert stem is not None and other is not None and stem > other
    assert synonym is not None and unrelated is not None and synonym > unrelated
    # all references count: the best-matching one decides; case and punctuation do not matter
    two = meteor(["a dog runs"], [["a cat sleeps", "a dog runs"]], paraphrases=False)
    assert two == meteor(["A dog runs."], [["a dog runs"]], paraphrases=False)
    assert meteor([], [], paraphrases=False) == 0.0
    assert meteor(["a ||| b"], [["a b"]], paraphrases=False) == meteor(["a b"], [["a b"]], paraphrases=False)


@pytest.mark.skipif(
    os.environ.get("ATTNLAB_FULL_METEOR") != "1" or NO_METEOR is not None,
    reason="the paraphrase table takes 10-30 s to load: set ATTNLAB_FULL_METEOR=1",
)
def test_meteor_with_paraphrases_equals_the_coco_caption_wrapper():
    from pycocoevalcap.meteor.meteor import Meteor

    hypotheses, references = random_corpus(11, 40)
    hypotheses[0], references[0] = "a boy jumps into the pool", ["a child leaps into a swimming pool"]
    score = meteor(hypotheses, references)
    tokens = lambda caption: " ".join(tokenize(caption))
    expected, _ = Meteor().compute_score(
        {k: [tokens(r) for r in refs] for k, refs in enumerate(references)},
        {k: [tokens(h)] for k, h in enumerate(hypotheses)},
    )
    assert score == pytest.approx(100 * expected, abs=1e-9)
    assert score is not None and score >= meteor(hypotheses, references, paraphrases=False)  # type: ignore[operator]


@pytest.mark.skipif(NO_METEOR is not None, reason=f"METEOR cannot run: {NO_METEOR}")
def test_caption_scores_gathers_every_metric(monkeypatch):
    hypotheses, references = random_corpus(3, 20)
    # the full METEOR loads its paraphrase table for seconds; its parts are tested above
    monkeypatch.setattr(caption_metrics, "meteor", lambda h, r: meteor(h, r, paraphrases=False))
    scores = caption_scores(hypotheses, references)
    assert scores == {
        **bleu(hypotheses, references),
        "meteor": meteor(hypotheses, references, paraphrases=False),
        "cider": cider(hypotheses, references),
    }
