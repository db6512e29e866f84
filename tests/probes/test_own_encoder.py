"""attnlab.probes.own_encoder: scoring on planted attention, the layer-0 property on twins, and a tiny run."""

import pytest
import torch

from attnlab.models import build_model
from attnlab.probes.own_encoder import (
    ROWS,
    attention,
    candidate_scores,
    draw_twins,
    head_rates,
    probe_run,
    shortcut_baselines,
    train_and_probe,
    train_run,
    twin_rows,
)
from attnlab.tasks.pronouns import Pronouns, PronounsConfig

SMALL_MODEL = {"embed_dim": 16, "num_heads": 2, "num_layers": 2, "ff_dim": 32}
SMALL_TRAIN = {"steps": 3, "eval_every": 3, "eval_size": 8, "batch_size": 8}


def planted():
    """(L=2, b=2, h=2, t=5) attention with known picks from rows 3 (example 0) and 4 (example 1)."""
    attn = torch.full((2, 2, 2, 5, 5), 0.2)
    rows, candidates, labels = torch.tensor([3, 4]), torch.tensor([[0, 2], [1, 3]]), torch.tensor([1, 0])
    attn[0, 0, 0, 3] = torch.tensor([0.1, 0.0, 0.7, 0.1, 0.1])  # right: 0.7 on the true candidate (position 2)
    attn[0, 0, 1, 3] = torch.tensor([0.6, 0.0, 0.2, 0.1, 0.1])  # wrong
    attn[1, 1, 0, 4] = torch.tensor([0.0, 0.1, 0.0, 0.8, 0.1])  # wrong: the true candidate is position 1
    attn[1, 1, 1, 4] = torch.tensor([0.1, 0.5, 0.1, 0.2, 0.1])  # right
    return attn, rows, candidates, labels


def test_candidate_scores_against_a_naive_loop():
    attn, rows, candidates, _ = planted()
    attn = attn + torch.rand(attn.shape, generator=torch.Generator().manual_seed(0))
    scores = candidate_scores(attn, rows, candidates)
    assert scores.shape == (2, 2, 2, 2)
    for n in range(2):
        for layer in range(2):
            for head in range(2):
                for c in range(2):
                    want = attn[layer, n, head, rows[n], candidates[n, c]]
                    assert scores[n, layer, head, c] == want


def test_head_rates_on_planted_attention():
    attn, rows, candidates, labels = planted()
    # layer 0: example 0 right for head 0, wrong for head 1; example 1 ties (0.2 = 0.2): one half each
    # layer 1: example 0 ties; example 1 wrong for head 0, right for head 1
    assert head_rates(attn, rows, candidates, labels).tolist() == [[0.75, 0.25], [0.25, 0.75]]


@pytest.fixture(scope="module")
def small_task():
    return Pronouns(PronounsConfig(templates=("fit", "hold", "lift", "lifted"), nouns=4))


def test_untrained_model_layer0_is_exactly_chance_on_twins(small_task):
    """Before mixing, a row cannot see the switch word, so every head picks the same candidate in both twins."""
    torch.manual_seed(0)
    model = build_model("transformer", SMALL_MODEL, small_task.spec)
    result = probe_run(small_task, model, size=64)
    for kind in ROWS:
        grid = torch.tensor(result[f"from_{kind}"]["eval_grid"])  # (L, h)
        assert grid.shape == (2, 2) and bool((grid[0] == 0.5).all())
    assert result["baselines"]["first_candidate"] == result["baselines"]["second_candidate"] == 0.5
    assert result["sizes"] == {"selection": 64, "heldout": 64}
    with pytest.raises(ValueError, match="size must be an even number"):
        probe_run(small_task, model, size=7)


def test_shortcut_baseline_follows_the_switch_word_rule():
    """With only the "fit" frame the switch word decides the slot, so the switch-word rule is perfect."""
    task = Pronouns(PronounsConfig(templates=("fit",)))
    assert shortcut_baselines(task, task.eval_set(32, "test"), train_size=512)["switch_word_alone"] == 1.0
    mixed = Pronouns(PronounsConfig(templates=("fit", "hold")))  # "small" means the other slot in "hold"
    assert shortcut_baselines(mixed, mixed.eval_set(64, "test"), train_size=512)["switch_word_alone"] < 0.8


def test_attention_refuses_a_model_without_attention(small_task):
    model = build_model("mlp", {}, small_task.spec)
    with pytest.raises(ValueError, match="recorded no self-attention"):
        attention(model, small_task.eval_set(2, "test"))


def test_tiny_training_run_reports_every_measure_and_is_reused(tmp_path):
    folder = tmp_path / "run"
    task = {"templates": ["fit", "hold", "lift", "lifted"], "nouns": 4}
    overrides = {"task": task, "model": SMALL_MODEL, "train_settings": SMALL_TRAIN}
    result = train_and_probe(folder, size=16, **overrides)
    assert result["train"]["step"] == 3 and result["config"]["task"]["name"] == "pronouns"
    assert result["config"]["model"]["num_layers"] == 2
    for kind in ROWS:
        probe = result[f"from_{kind}"]
        assert len(probe["eval_grid"]) == 2 and len(probe["eval_grid"][0]) == 2
        assert len(probe["per_layer_best_head"]) == len(probe["heads_averaged_eval_accuracy"]) == 2
        assert 0.0 <= probe["eval_accuracy"] <= 1.0
    assert 0.0 <= result["twin_pairs_both_right"] <= result["heldout_accuracy"] <= 1.0
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    run, summary = train_run(folder, **overrides)  # the finished run is reused, not retrained
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp and summary["step"] == 3
    rows = twin_rows(run.task, run.model, layer=1, head=0, kind="pronoun")
    first, second = rows
    assert first["candidates"] == second["candidates"] and first["answer"] != second["answer"]
    assert sum(a != b for a, b in zip(first["tokens"], second["tokens"])) == 1  # the switch word
    for r in rows:
        assert r["tokens"][-1] == "?" and len(r["weights"]) == len(r["tokens"])
        assert r["answer"] in r["candidates"] and "_" not in r["tokens"]
        assert torch.isclose(r["weights"].sum(), torch.tensor(1.0))  # PAD keys get no weight
    fig = draw_twins(rows, layer=1, head=0, kind="pronoun", path=tmp_path / "twins.png")
    assert len(fig.axes) == 2 and (tmp_path / "twins.png").stat().st_size > 1000
