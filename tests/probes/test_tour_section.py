"""attnlab.probes.tour_section: the pronoun twins' attention, its figure and the HTML fragment."""

import torch

from attnlab.pretrained import load_encoder
from attnlab.probes.tour_section import (
    TWINS,
    _html,
    draw_pronoun_rows,
    own_encoder_part,
    pronoun_rows,
)


def test_pronoun_rows_read_the_chosen_head(tmp_path):
    encoder = load_encoder()
    rows = pronoun_rows(encoder, 3, 5)
    attn, _ = encoder.attentions(list(TWINS))  # (L, 2, h, t, t)
    for n, (tokens, row, weights) in enumerate(rows):
        it, animal, street = tokens.index("it"), tokens.index("animal"), tokens.index("street")
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        assert torch.allclose(row, attn[3, n, 5, it, : len(tokens)])
        assert weights == {"animal": float(row[animal]), "street": float(row[street])}
    draw_pronoun_rows(rows, 3, 5, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_html_fragment_reports_the_metrics():
    metrics = {
        "pronoun_probe": {
            "best_head": [2, 7],
            "selection_accuracy": 0.6,
            "eval_accuracy": 0.55,
            "eval_n": 96,
            "eval_p_value": 0.2,
        },
        "twins": {"tired": {"picks": "animal", "right": True}, "wide": {"picks": "animal", "right": False}},
        "senses": {"nn": [0.5, 0.9], "bag_nn": 0.8},
    }
    fragment = _html(metrics)
    assert fragment.startswith("<section") and fragment.endswith("</section>")
    assert "Head 2-7" in fragment and "55% on 96 held-out" in fragment and "(wrong)" in fragment
    assert "pretrained_pronoun.png" in fragment and "pretrained_senses.png" in fragment
    assert "own encoder" not in fragment  # no own_encoder metrics, no part for it


def test_own_encoder_part_trains_draws_and_reports(tmp_path):
    own = own_encoder_part(tmp_path, steps=2, seed=0)
    assert own["steps"] == 2 and own["layers"] == 3
    assert (tmp_path / "own_pronoun.png").stat().st_size > 1000
    assert own["from_query"]["per_layer_eval_accuracy"][0] == 0.5  # layer 0 cannot see the switch word
    metrics = {
        "pronoun_probe": {"best_head": [2, 7], "selection_accuracy": 0.6, "eval_accuracy": 0.55, "eval_n": 96,
                          "eval_p_value": 0.2},
        "twins": {"tired": {"picks": "animal", "right": True}, "wide": {"picks": "animal", "right": False}},
        "senses": {"nn": [0.5, 0.9], "bag_nn": 0.8},
        "own_encoder": own,
    }
    fragment = _html(metrics, prefix="pretrained/")
    layer, head = own["from_query"]["best_head"]
    assert f"head {layer}-{head} puts more weight" in fragment and "3-layer transformer" in fragment
    assert '<img src="pretrained/own_pronoun.png"' in fragment
    assert '<img src="pretrained/pretrained_pronoun.png"' in fragment
    assert fragment.endswith("</section>")
