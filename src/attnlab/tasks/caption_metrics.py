"""Scores of generated captions against several references each: BLEU-1..4, CIDEr-D, METEOR.

Computed the way published captioning tables are (the coco-caption toolkit, Chen et al. 2015,
"Microsoft COCO Captions: Data Collection and Evaluation Server", which Xu et al. 2015 used for
Flickr8k): every caption is lowercased and tokenised as the Penn Treebank tokeniser does, and
punctuation tokens are dropped (`tokenize`); every hypothesis is scored against all of its image's
references, however many there are.

    bleu     corpus BLEU-n, n = 1..4 (Papineni et al. 2002), by sacrebleu on those tokens: clipped
             n-gram precisions p_n summed over the corpus, BLEU-n = BP · exp(Σ_{k≤n} log p_k / n),
             BP = min(1, exp(1 - r / c)) with r the sum of each hypothesis's closest reference
             length (ties to the shorter) and c the hypothesis length; no smoothing. 0-100.
    cider    CIDEr-D (Vedantam, Zitnick & Parikh 2015, "CIDEr: Consensus-based Image Description
             Evaluation", the coco-caption variant), with g^n the TF-IDF vector of a caption's
             n-grams, idf(ω) = log(|I| / max(1, df(ω))), df(ω) the number of images whose
             references contain ω, |I| the number of images scored:

                 CIDEr-D_n(c, S) = 10/m Σ_j exp(-(l(c) - l(s_j))² / 2σ²)
                                   · Σ_ω min(g^n_ω(c), g^n_ω(s_j)) g^n_ω(s_j) / (‖g^n(c)‖ ‖g^n(s_j)‖)
                 CIDEr-D(c, S)   = 1/4 Σ_{n=1..4} CIDEr-D_n(c, S),   σ = 6

             over the m references s_j of the image, l the length in words (the toolkit counts
             bigrams: the same difference unless a caption is empty); the corpus score is
             the mean over images (the toolkit's scale, 0-10; tables often quote it x100).
    meteor   METEOR 1.5 (Denkowski & Lavie 2014) as coco-caption runs it: the jar that the
             `pycocoevalcap` package ships, with its bundled WordNet synonyms and English
             paraphrase table, `-l en -norm`, scored over the corpus; needs Java. 0-100.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import math
import re
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import sacrebleu

log = logging.getLogger(__name__)

Ngram = tuple[str, ...]

MAX_ORDER = 4  # BLEU-1..4 and CIDEr-D's n = 1..4
SIGMA = 6.0  # σ of CIDEr-D's Gaussian length penalty

# Penn Treebank splits these off the word before them ("man's" -> "man 's", "don't" -> "do n't").
_CLITIC = re.compile(r"(?<=\w)('s|'re|'ve|'ll|'m|'d|n't)\b")
_SPLIT_WORDS = re.compile(r"\b(can)(not)\b|\b(gon|wan)(na)\b")
_CLITICS = frozenset({"'s", "'re", "'ve", "'ll", "'m", "'d", "n't", "'em"})
# Characters of the punctuation tokens coco-caption drops after tokenising (. , ? ! : ; - -- ...
# quotes and brackets); a token made only of these is dropped.
_PUNCTUATION = ".,!?;:'\"`()[]{}-"
# Words that keep their full stop in the Penn Treebank tokeniser ("st. bernard").
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "jr.", "sr.", "mt.", "vs.", "etc."})
_INITIALS = re.compile(r"^(?:[a-z]\.)+$")  # "u.s.", "p.m."


def tokenize(caption: str) -> list[str]:
    """Lowercased Penn Treebank tokens of a caption, punctuation tokens dropped.

    Follows coco-caption's preprocessing (Stanford's PTBTokenizer with -lowerCase, then its
    punctuation list removed): clitics split off ("dog's" -> "dog 's", "can't" -> "ca n't",
    "cannot" -> "can not"), words keep inner hyphens, slashes and decimal points ("t-shirt",
    "3.5", "statefarm.com"), abbreviations keep their full stop. Brackets are dropped too (the toolkit keeps them
    as "-lrb-"/"-rrb-" tokens, which only happens to pass its punctuation filter).

    Args:
        caption: one caption as written.
    Returns:
        Its tokens, in order.
    """
    text = _SPLIT_WORDS.sub(lambda m: " ".join(g for g in m.groups() if g), caption.lower())
    text = _CLITIC.sub(r" \1", text)
    tokens: list[str] = []
    for chunk in text.split():
        # leading quotes and brackets, trailing punctuation other than a full stop
        body = chunk.lstrip(_PUNCTUATION.replace("'", "")).rstrip(_PUNCTUATION.replace(".", ""))
        if body in _ABBREVIATIONS or _INITIALS.match(body):
            tokens.append(body)
            continue
        body = body.rstrip(_PUNCTUATION)
        if body in _CLITICS:
            tokens.append(body)
            continue
        word = body.strip(_PUNCTUATION)
        if word:
            tokens.append(word)
    return tokens


def _normalise(caption: str) -> str:
    return " ".join(tokenize(caption))


def _check(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"hypotheses and references differ in number: {len(hypotheses)} vs {len(references)}")
    if any(isinstance(refs, str) for refs in references):
        raise TypeError("references must be one list of reference captions per hypothesis, not a string")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every hypothesis needs at least one reference")


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4 (0-100), each hypothesis against all its references.

    Settings match coco-caption's BLEU, the figure captioning papers publish: captions are
    lowercased and PTB-tokenised with punctuation dropped (`tokenize`), then sacrebleu scores the
    tokens as they are (tokenize="none", lowercase=False) with max_ngram_order n, no smoothing
    (smooth_method="none") and effective_order=False, so an order without a match gives 0 where
    the toolkit gives a tiny positive number (it adds 1e-15 to each count of matches). sacrebleu clips each n-gram by its
    largest count in any one reference and takes for the brevity penalty the reference length
    closest to the hypothesis length, ties to the shorter, as the toolkit's "closest" option.

    Args:
        hypotheses: one generated caption per image.
        references: per image, its reference captions (any number, at least one).
    Returns:
        {"bleu1": ..., "bleu2": ..., "bleu3": ..., "bleu4": ...}; all 0 for an empty corpus.
    """
    _check(hypotheses, references)
    if not hypotheses:
        return {f"bleu{n}": 0.0 for n in range(1, MAX_ORDER + 1)}
    hyps = [_normalise(h) for h in hypotheses]
    width = max(len(refs) for refs in references)
    # sacrebleu wants reference streams; None pads images with fewer references
    streams: list[list[str | None]] = [
        [_normalise(refs[k]) if k < len(refs) else None for refs in references] for k in range(width)
    ]
    scores = {}
    for n in range(1, MAX_ORDER + 1):
        metric = sacrebleu.metrics.BLEU(
            max_ngram_order=n, smooth_method="none", effective_order=False, tokenize="none", lowercase=False
        )
        scores[f"bleu{n}"] = float(metric.corpus_score(hyps, streams).score)  # type: ignore[arg-type]  # its hints omit the None it takes
    return scores


def _ngrams(words: Sequence[str]) -> Counter[Ngram]:
    """Counts of every n-gram, n = 1..4, of one caption."""
    return Counter(tuple(words[k : k + n]) for n in range(1, MAX_ORDER + 1) for k in range(len(words) - n + 1))


def _tfidf(
    counts: Counter[Ngram], idf: dict[Ngram, float], log_images: float
) -> tuple[list[dict[Ngram, float]], list[float]]:
    """g^n per order n (n-gram -> count · idf) and its Euclidean norm ‖g^n‖."""
    vectors: list[dict[Ngram, float]] = [{} for _ in range(MAX_ORDER)]
    for ngram, count in counts.items():
        # an n-gram in no reference gets the largest idf, log |I|
        vectors[len(ngram) - 1][ngram] = count * idf.get(ngram, log_images)
    norms = [math.sqrt(sum(w * w for w in vector.values())) for vector in vectors]
    return vectors, norms


def cider_per_image(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """CIDEr-D of each hypothesis (module docstring), idf from the references of these images.

    Args:
        hypotheses: one generated caption per image.
        references: per image, its reference captions (any number, at least one).
    Returns:
        One CIDEr-D per image. With a single image every idf is log 1 = 0, so every score is 0.
    """
    _check(hypotheses, references)
    hyp_words = [tokenize(h) for h in hypotheses]
    ref_words = [[tokenize(r) for r in refs] for refs in references]
    ref_counts = [[_ngrams(words) for words in refs] for refs in ref_words]
    document_frequency: Counter[Ngram] = Counter()
    for counts in ref_counts:
        document_frequency.update(set().union(*counts))
    log_images = math.log(max(len(hypotheses), 1))  # log |I|
    idf = {ngram: log_images - math.log(df) for ngram, df in document_frequency.items()}
    scores = []
    for words, refs, counts in zip(hyp_words, ref_words, ref_counts):
        g_c, norm_c = _tfidf(_ngrams(words), idf, log_images)
        total = 0.0
        for ref, ref_count in zip(refs, counts):
            g_s, norm_s = _tfidf(ref_count, idf, log_images)
            penalty = math.exp(-((len(words) - len(ref)) ** 2) / (2 * SIGMA**2))
            for n in range(MAX_ORDER):
                if norm_c[n] == 0 or norm_s[n] == 0:
                    continue
                # min() clips the hypothesis's weight of an n-gram at the reference's
                dot = sum(min(w, g_s[n].get(ngram, 0.0)) * g_s[n].get(ngram, 0.0) for ngram, w in g_c[n].items())
                total += penalty * dot / (norm_c[n] * norm_s[n])
        scores.append(10.0 * total / (MAX_ORDER * len(refs)))
    return scores


def cider(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus CIDEr-D: the mean over images of `cider_per_image`; 0 for an empty corpus.

    Args:
        hypotheses: one generated caption per image.
        references: per image, its reference captions (any number, at least one).
    Returns:
        CIDEr-D on the toolkit's scale: 10 for a caption of four words or more equal to every
        reference of its image, typically 0.3-1.5 for generated captions.
    """
    scores = cider_per_image(hypotheses, references)
    return sum(scores) / len(scores) if scores else 0.0


def _meteor_files() -> tuple[Path, Path] | str:
    """(jar, paraphrase table) of the installed pycocoevalcap, or why they are not there."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return "the pycocoevalcap package (which ships the METEOR 1.5 jar) is not installed"
    folder = Path(next(iter(spec.submodule_search_locations))) / "meteor"
    jar, paraphrases = folder / "meteor-1.5.jar", folder / "data" / "paraphrase-en.gz"
    for path in (jar, paraphrases):
        if not path.is_file():
            return f"pycocoevalcap is installed without {path}"
    return jar, paraphrases


def why_no_meteor() -> str | None:
    """One line saying why `meteor` cannot run on this machine; None when it can."""
    if shutil.which("java") is None:
        return "no `java` on PATH: METEOR 1.5 is a Java jar (apt-get install -y default-jre-headless)"
    files = _meteor_files()
    return files if isinstance(files, str) else None


class _Meteor:
    """One METEOR 1.5 process in its stdio mode, kept for the life of the Python process.

    Loading the paraphrase table takes several seconds, so the process starts once and serves
    every call. Protocol: "SCORE ||| ref_1 ||| ... ||| ref_m ||| hyp" answers one line of
    sufficient statistics; "EVAL ||| stats_1 ||| ... ||| stats_N" answers N segment scores, then
    the corpus score computed from the summed statistics.
    """

    def __init__(self, jar: Path, paraphrases: bool) -> None:
        # without paraphrases: METEOR's English modules less the last one
        modules = [] if paraphrases else ["-m", "exact stem synonym"]
        self.paraphrases = paraphrases
        self.process = subprocess.Popen(
            ["java", "-Xmx2G", "-jar", jar.name, "-", "-", "-stdio", "-l", "en", "-norm", *modules],
            cwd=jar.parent,  # the jar finds data/paraphrase-en.gz beside itself
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def ask(self, line: str) -> str:
        """Send one line and read the first line of the answer."""
        self.send([line])
        return self.read()

    def send(self, lines: Sequence[str]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write("".join(line + "\n" for line in lines))
        stdin.flush()

    def ask_many(self, lines: Sequence[str]) -> list[str]:
        """Send many one-line questions at once and read their one-line answers in order.

        A thread writes while this one reads, so neither pipe fills up and blocks the other side.
        """
        writer = threading.Thread(target=self.send, args=(lines,))
        writer.start()
        answers = [self.read() for _ in lines]
        writer.join()
        return answers

    def read(self) -> str:
        """The next line of the answer."""
        stdout = self.process.stdout
        assert stdout is not None
        answer = stdout.readline()
        if not answer:
            raise RuntimeError(f"the METEOR process ended (exit status {self.process.poll()})")
        return answer.strip()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


_METEOR: dict[bool, _Meteor] = {}  # the running process, by `paraphrases`


def start_meteor(paraphrases: bool = True) -> bool:
    """Start the METEOR process now, so that its loading overlaps other work.

    Args:
        paraphrases: as for `meteor`.
    Returns:
        Whether METEOR can run (`why_no_meteor` says why not).
    """
    running = _METEOR.get(paraphrases)
    if running is not None and running.process.poll() is None:
        return True
    files = None if why_no_meteor() else _meteor_files()
    if not isinstance(files, tuple):
        return False
    _METEOR[paraphrases] = _Meteor(files[0], paraphrases)
    return True


@atexit.register
def _stop_meteor() -> None:
    for process in _METEOR.values():
        process.close()


def _segment(caption: str) -> str:
    # "|||" separates fields of the stdio protocol
    return _normalise(caption).replace("|||", " ")


def meteor(hypotheses: Sequence[str], references: Sequence[Sequence[str]], *, paraphrases: bool = True) -> float | None:
    """Corpus METEOR 1.5 (0-100) as coco-caption computes it, or None where it cannot run.

    Captions are tokenised as for BLEU (`tokenize`), then scored by the METEOR 1.5 jar with
    `-l en -norm` (exact, stem, WordNet synonym and paraphrase matches; the toolkit's settings);
    the corpus score comes from the statistics summed over all images, not a mean of per-image
    scores. `why_no_meteor` says why it returns None. The first call starts the process (the
    paraphrase table takes 10-30 s of loading; `start_meteor` starts it ahead).

    Args:
        hypotheses: one generated caption per image.
        references: per image, its reference captions (any number, at least one).
        paraphrases: False leaves out the paraphrase module (exact, stem and synonym matches only):
            it starts in about a second, but its scores are not the published METEOR.
    Returns:
        METEOR x 100; 0 for an empty corpus; None without Java or the jar.
    """
    _check(hypotheses, references)
    if not start_meteor(paraphrases):
        return None
    if not hypotheses:
        return 0.0
    process = _METEOR[paraphrases]
    stats = process.ask_many(
        [" ||| ".join(["SCORE", *(_segment(r) for r in refs), _segment(h)]) for h, refs in zip(hypotheses, references)]
    )
    process.ask(" ||| ".join(["EVAL", *stats]))  # the first image's score
    for _ in range(len(stats) - 1):  # the other images'
        process.read()
    return 100.0 * float(process.read())  # the corpus score


def caption_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """BLEU-1..4, METEOR (0-100) and CIDEr-D (the toolkit's scale) of a corpus of captions.

    METEOR is left out where it cannot run; the reason is logged once per process.

    Args:
        hypotheses: one generated caption per image.
        references: per image, its reference captions (any number, at least one).
    Returns:
        {"bleu1", "bleu2", "bleu3", "bleu4", "meteor" (when available), "cider"} -> score.
    """
    scores = bleu(hypotheses, references)
    score = meteor(hypotheses, references)
    if score is None:
        if not _WARNED:
            _WARNED.append(True)
            log.warning("METEOR left out: %s", why_no_meteor())
    else:
        scores["meteor"] = score
    scores["cider"] = cider(hypotheses, references)
    return scores


_WARNED: list[bool] = []
