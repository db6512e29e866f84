"""attnlab.probes.command: the `attend` subcommand, run in-process through an argparse parser."""

import argparse
import io

import pytest
import torch

from attnlab.pretrained import load_bertviz, sentence_attention
from attnlab.probes.command import add_attend_parser, run_attend
from attnlab.viz import heatmap

SENTENCE = "The animal didn't cross the street because it was too wide."


def run(*argv):
    parser = argparse.ArgumentParser(prog="attnlab")
    add_attend_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["attend", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = run_attend(args, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_summary_has_a_line_per_layer_and_head():
    code, out, err = run(SENTENCE)
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0].startswith("6 layers x 12 heads over 16 tokens: [CLS] the animal didn ' t")
    assert len(lines) == 1 + 72 and lines[1].startswith("layer 0 head  0: [CLS]>")


def test_one_head_in_full_and_bertviz_export(tmp_path):
    code, out, _ = run(SENTENCE, "--layer", "3", "--head", "5", "--bertviz", str(tmp_path / "a.json"))
    assert code == 0
    assert "layer 3 head 5 (rows: queries, columns: keys)" in out and "layer 3 head 4" not in out
    assert f"wrote {tmp_path / 'a.json'}" in out
    layers, tokens = load_bertviz(tmp_path / "a.json")
    expected = sentence_attention(SENTENCE)
    assert tokens == expected.tokens
    assert (torch.cat(layers) - expected.weights).abs().max() < 1e-6


def test_layer_alone_prints_all_its_heads_and_out_draws_them(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        heatmap, "draw_sentence_attention", lambda att, out, layer, head: calls.append((out, layer, head)) or []
    )
    code, out, _ = run(SENTENCE, "--layer", "1", "--out", str(tmp_path))
    assert code == 0 and out.count("(rows: queries, columns: keys)") == 12
    assert calls == [(tmp_path, 1, None)]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["   "], "attnlab attend: the sentence is empty"),
        (["fine", "--layer", "6"], "attnlab attend: layer must be in 0..5; got 6"),
        (["fine", "--model", "/no/such/folder"], "attnlab attend: /no/such/folder: not a model folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message):
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1
