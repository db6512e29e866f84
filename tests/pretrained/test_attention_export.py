"""attnlab.pretrained.attention_export: per-layer, per-head attention of one sentence and its bertviz export."""

import json

import pytest
import torch

from attnlab.pretrained import load_bertviz, load_encoder, sentence_attention

SENTENCE = "The animal didn't cross the street because it was too tired."


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


@pytest.fixture(scope="module")
def att(encoder):
    return sentence_attention(SENTENCE, encoder=encoder)


def test_every_layer_and_head_is_a_distribution(att, encoder):
    t = len(att.tokens)
    assert att.tokens[0] == "[CLS]" and att.tokens[-1] == "[SEP]" and "animal" in att.tokens
    assert att.weights.shape == (6, 12, t, t)
    assert torch.allclose(att.weights.sum(-1), torch.ones(6, 12, t), atol=1e-5)
    weights, _ = encoder.attentions([SENTENCE])  # the same call, batched
    assert torch.equal(att.weights, weights[:, 0])


def test_bertviz_format(att):
    layers, tokens = att.bertviz()
    assert tokens == att.tokens and len(layers) == 6
    assert all(layer.shape == (1, 12, len(tokens), len(tokens)) for layer in layers)
    assert torch.equal(torch.cat(layers), att.weights)


def test_json_export_round_trips(att, tmp_path):
    path = att.to_json(tmp_path / "sub" / "attn.json")
    layers, tokens = load_bertviz(path)
    assert tokens == att.tokens
    assert (torch.cat(layers) - att.weights).abs().max() < 1e-6  # rounded to 6 decimals
    assert json.loads(path.read_text())["sentence"] == SENTENCE


def test_load_bertviz_rejects_other_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"tokens": ["a"], "attention": []}))
    with pytest.raises(ValueError, match=r"x\.json: not a bertviz export"):
        load_bertviz(bad)
    bad.write_text(json.dumps({"format": "bertviz-head-view", "tokens": ["a", "b"], "attention": [[[[1.0]]]]}))
    with pytest.raises(ValueError, match=r"layer 0 has shape \(1, 1, 1\); expected \(1, heads, 2, 2\)"):
        load_bertviz(bad)


def test_summary_names_each_tokens_strongest_key(att):
    lines = att.summary()
    assert len(lines) == 72 and lines[0].startswith("layer 0 head  0:")
    layer, head = 4, 7
    row = att.weights[layer, head]  # (t, t)
    expected = " ".join(f"{q}>{att.tokens[int(row[n].argmax())]}" for n, q in enumerate(att.tokens))
    assert lines[layer * 12 + head] == f"layer {layer} head  {head}: {expected}"


def test_matrix_text_has_one_row_per_token(att):
    text = att.matrix_text(2, 3).splitlines()
    assert text[0] == "layer 2 head 3 (rows: queries, columns: keys)"
    assert len(text) == 2 + len(att.tokens)
    values = [float(x) for x in text[2].split()[1:]]
    assert values == pytest.approx(att.weights[2, 3, 0].tolist(), abs=0.006)


def test_select_checks_ranges(att):
    assert att.select(None, None)[:2] == [(0, 0), (0, 1)] and len(att.select(None, None)) == 72
    assert att.select(1, None) == [(1, h) for h in range(12)]
    assert att.select(None, 2) == [(n, 2) for n in range(6)]
    with pytest.raises(ValueError, match=r"layer must be in 0\.\.5; got 6"):
        att.select(6, None)
    with pytest.raises(ValueError, match=r"head must be in 0\.\.11; got -1"):
        att.select(None, -1)


def test_empty_sentence_is_rejected(encoder):
    with pytest.raises(ValueError, match="empty"):
        sentence_attention("  ", encoder=encoder)
