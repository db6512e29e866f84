"""attnlab.probes.pronouns: generated Winograd twins, WSC readers, and the attention probe on planted answers."""

import dataclasses
import json
import math

import pytest
import torch

from attnlab.probes.pronouns import (
    TEMPLATES,
    binomial_p_value,
    candidate_attention,
    generate_pairs,
    head_correct,
    load_wsc273,
    position_baselines,
    probe,
    read_wsc_jsonl,
    read_wsc_xml,
    score_examples,
    split_by_group,
    token_indices,
    wilson_interval,
)


def spans_text(e):
    return e.text[slice(*e.pronoun)], [e.text[slice(*c)] for c in e.candidates]


def test_generator_is_deterministic_and_balanced():
    a, b = generate_pairs(seed=3), generate_pairs(seed=3)
    assert a == b and a != generate_pairs(seed=4)
    assert len(a) == 2 * 12 * len(TEMPLATES)
    assert sum(e.label for e in a) == len(a) // 2


def test_twins_differ_in_one_word_and_flip_the_answer():
    examples = generate_pairs(schemas_per_template=3)
    by_group = {}
    for e in examples:
        by_group.setdefault(e.group, []).append(e)
    for group, (x, y) in by_group.items():
        assert (x.label, y.label) == (0, 1)
        assert x.candidates == y.candidates and x.pronoun == y.pronoun
        assert sum(u != v for u, v in zip(x.text.split(), y.text.split())) == 1, group


def test_spans_point_at_the_pronoun_and_the_nouns():
    e = generate_pairs()[0]
    pronoun, (first, second) = spans_text(e)
    assert pronoun == "it"
    assert e.options == (f"the {first}", f"the {second}")
    assert e.text.startswith(f"The {first} ") and f" the {second} " in e.text


def test_split_keeps_twins_together():
    examples = generate_pairs()
    sel, held = split_by_group(examples, seed=1)
    assert len(sel) + len(held) == len(examples)
    assert not {e.group for e in sel} & {e.group for e in held}
    assert split_by_group(examples, seed=1) == (sel, held)
    # twins together means both halves stay balanced, so positional tricks score exactly 50%
    assert position_baselines(held) == {"first_mentioned": 0.5, "nearest_before": 0.5}


JSONL_ROWS = [
    {
        "idx": 0,
        "text": "The trophy doesn't fit into the brown suitcase because it is too large.",
        "pronoun": "it",
        "pronoun_char_offset": 55,
        "options": ["The trophy", "the brown suitcase"],
        "label": 0,
    },
    {
        "idx": 1,
        "text": "Bob paid for Charlie's college education, so he is very generous.",
        "pronoun": "he",
        "pronoun_char_offset": 45,
        "options": ["Bob", "Charlie"],
        "label": 0,
    },
]


def write_jsonl(path, rows, extra=""):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n" + extra)
    return path


def test_jsonl_reader(tmp_path):
    examples = read_wsc_jsonl(write_jsonl(tmp_path / "w.jsonl", JSONL_ROWS))
    assert [spans_text(e) for e in examples] == [("it", ["trophy", "suitcase"]), ("he", ["Bob", "Charlie"])]
    assert [e.label for e in examples] == [0, 0] and examples[1].group == "1"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pronoun_char_offset": 50}, r"w\.jsonl:2: pronoun 'he' is not at character 50"),
        ({"label": 2}, r"w\.jsonl:2: label must be 0 or 1; got 2"),
        ({"options": ["Bob"]}, r"w\.jsonl:2: options must be a list of two"),
        ({"options": ["Bob", "Alice"]}, r"w\.jsonl:2: option 'Alice' does not occur"),
    ],
)
def test_jsonl_reader_names_file_line_and_problem(tmp_path, change, message):
    rows = [JSONL_ROWS[0], dict(JSONL_ROWS[1], **change)]
    with pytest.raises(ValueError, match=message):
        read_wsc_jsonl(write_jsonl(tmp_path / "w.jsonl", rows))


def test_jsonl_reader_bad_json_and_missing_fields(tmp_path):
    with pytest.raises(ValueError, match=r"w\.jsonl:3: invalid JSON"):
        read_wsc_jsonl(write_jsonl(tmp_path / "w.jsonl", JSONL_ROWS, extra="{oops\n"))
    row = {k: v for k, v in JSONL_ROWS[0].items() if k != "options"}
    with pytest.raises(ValueError, match=r"w\.jsonl:1: missing fields \['options'\]"):
        read_wsc_jsonl(write_jsonl(tmp_path / "w.jsonl", [row]))


XML = """<?xml version="1.0" encoding="ISO-8859-1"?>
<collection>
<schema>
<text><txt1>
The city councilmen refused the demonstrators a permit because</txt1>
<pron> they </pron>
<txt2> feared violence.
</txt2></text>
<answers><answer>The city councilmen </answer><answer> the demonstrators</answer></answers>
<correctAnswer> A  </correctAnswer>
</schema>

<schema>
<text><txt1>The older students were bullying the younger ones, so we rescued </txt1>
<pron>them</pron><txt2>.</txt2></text>
<answers><answer>The older students</answer><answer>the younger ones</answer></answers>
<correctAnswer>B.</correctAnswer>
</schema>
</collection>
"""


def test_xml_reader(tmp_path):
    path = tmp_path / "wsc.xml"
    path.write_text(XML, encoding="latin-1")
    first, second = read_wsc_xml(path)
    assert first.text == "The city councilmen refused the demonstrators a permit because they feared violence."
    assert spans_text(first) == ("they", ["councilmen", "demonstrators"]) and first.label == 0
    assert second.text.endswith("so we rescued them.")  # no space is invented before the full stop
    assert spans_text(second) == ("them", ["students", "ones"]) and second.label == 1
    assert len(read_wsc_xml(path, limit=1)) == 1


def test_xml_reader_errors_name_file_and_line(tmp_path):
    path = tmp_path / "wsc.xml"
    path.write_text(XML.replace("</txt2></text>\n<answers>", "</txt2>\n<answers>", 1))
    with pytest.raises(ValueError, match=r"wsc\.xml:\d+: malformed XML"):
        read_wsc_xml(path)
    path.write_text(XML.replace("<correctAnswer>B.</correctAnswer>", "<correctAnswer>C</correctAnswer>"))
    with pytest.raises(ValueError, match=r"wsc\.xml:13: schema 1 needs"):
        read_wsc_xml(path)


def test_real_wsc273_xml_and_jsonl_agree():
    jsonl = load_wsc273()
    if jsonl is None:
        pytest.skip("WSC273 not found: set ATTNLAB_DATA to the folder holding wsc273/")
    import os
    from pathlib import Path

    xml = read_wsc_xml(Path(os.environ["ATTNLAB_DATA"]) / "wsc273" / "WSCollection.xml", limit=273)
    assert len(jsonl) == len(xml) == 273
    assert [(e.text, e.pronoun, e.candidates, e.label) for e in jsonl] == [
        (e.text, e.pronoun, e.candidates, e.label) for e in xml
    ]
    assert sum(e.label for e in jsonl) == 136


def test_token_indices_skip_special_tokens():
    offsets = [(0, 0), (0, 3), (4, 7), (7, 9), (10, 12), (0, 0)]  # [CLS] the ban ##k it [SEP]
    assert token_indices(offsets, (4, 9)) == [2, 3]
    assert token_indices(offsets, (0, 3)) == [1]
    assert token_indices(offsets, (13, 15)) == []


def test_candidate_attention_is_word_level():
    attn = torch.zeros(1, 2, 4, 4)  # (L, h, t, t)
    attn[0, 0, 2] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    attn[0, 0, 3] = torch.tensor([0.3, 0.2, 0.1, 0.4])
    attn[0, 1, 2] = torch.tensor([0.7, 0.1, 0.1, 0.1])
    attn[0, 1, 3] = torch.tensor([0.5, 0.3, 0.1, 0.1])
    # pronoun = tokens 2 and 3 (rows averaged); candidate 0 = token 0; candidate 1 = tokens 1 and 3 (columns summed)
    got = candidate_attention(attn, [2, 3], [[0], [1, 3]])
    assert got.shape == (1, 2, 2)
    assert torch.allclose(got[0, 0], torch.tensor([0.2, 0.2 + 0.4]))
    assert torch.allclose(got[0, 1], torch.tensor([0.6, 0.2 + 0.1]))


def test_head_correct_counts_ties_as_half():
    scores = torch.tensor([[0.3, 0.1], [0.2, 0.2], [0.1, 0.4]]).view(3, 1, 1, 2)
    labels = torch.tensor([0, 1, 0])
    assert head_correct(scores, labels).flatten().tolist() == [1.0, 0.5, 0.0]


def test_probe_finds_a_planted_head_and_scores_it_on_the_other_split():
    g = torch.Generator().manual_seed(0)

    def split(n, planted_right):
        labels = torch.randint(0, 2, (n,), generator=g)
        scores = torch.rand(n, 3, 4, 2, generator=g)  # (n, L, h, 2) random heads
        true = torch.nn.functional.one_hot(labels, 2).float()
        scores[:, 1, 2] = true if planted_right else 1 - true  # layer 1 head 2 knows the answer
        return scores, labels

    result = probe(*split(200, True), *split(50, True))
    assert result["best_head"] == [1, 2]
    assert result["selection_accuracy"] == 1.0 and result["eval_accuracy"] == 1.0
    assert result["eval_p_value"] == pytest.approx(2.0**-50)
    assert result["per_layer_best_head"][1] == 2
    # chosen on selection, scored on evaluation: a head that is wrong there scores 0, not its selection score
    flipped = probe(*split(200, True), *split(50, False))
    assert flipped["best_head"] == [1, 2] and flipped["eval_accuracy"] == 0.0


def test_binomial_and_wilson():
    assert binomial_p_value(10, 10) == 2.0**-10 and binomial_p_value(0, 10) == 1.0
    assert binomial_p_value(6, 10) == pytest.approx(sum(math.comb(10, k) for k in range(6, 11)) / 1024)
    low, high = wilson_interval(58, 100)
    assert low < 0.58 < high and high - low == pytest.approx(0.19, abs=0.01)


def test_score_examples_matches_the_attention_it_reads():
    from attnlab.pretrained import load_encoder

    encoder = load_encoder()
    examples = generate_pairs(schemas_per_template=1)[:2]
    scores = score_examples(encoder, examples, batch_size=1)
    assert scores.shape == (2, 6, 12, 2)
    attn, batch = encoder.attentions([examples[1].text])  # (L, 1, h, t, t)
    tokens = batch.tokens[0]
    it, first, second = (token_indices(batch.offsets[0], s)[0] for s in (examples[1].pronoun, *examples[1].candidates))
    assert tokens[it] == "it"
    assert torch.allclose(scores[1, :, :, 0], attn[:, 0, :, it, first], atol=1e-6)
    assert torch.allclose(scores[1, :, :, 1], attn[:, 0, :, it, second], atol=1e-6)
    # Layer 0 cannot tell the twins apart: the switch word only changes the softmax's normaliser, so the
    # ratio between the two candidates, and with it the winner, is the same in both twins.
    ratio = scores[:, 0, :, 0] / scores[:, 0, :, 1]  # (2, h)
    assert torch.allclose(ratio[0], ratio[1], rtol=1e-4)
    assert head_correct(scores[:, :1], torch.tensor([0, 1])).mean(0).eq(0.5).all()


def test_substitution_baseline_keeps_the_candidate_closest_to_the_original():
    from attnlab.probes.pronouns import substitution_accuracy

    examples = generate_pairs(schemas_per_template=1)[:2]

    class Planted:  # the right substitution embeds like the original sentence, the wrong one orthogonally
        def encode(self, texts):
            out = []
            for n in range(0, len(texts), 3):
                e = examples[n // 3]
                original, first, second = texts[n : n + 3]
                assert first == e.text[: e.pronoun[0]] + e.options[0] + e.text[e.pronoun[1] :]
                right = torch.tensor([1.0, 0.0])
                out += [right, right if e.label == 0 else torch.tensor([0.0, 1.0])]
                out += [right if e.label == 1 else torch.tensor([0.0, 1.0])]
            return torch.stack(out)

    assert substitution_accuracy(Planted(), examples) == 1.0
    flipped = [dataclasses.replace(e, label=1 - e.label) for e in examples]
    assert substitution_accuracy(Planted(), flipped) == 0.0
