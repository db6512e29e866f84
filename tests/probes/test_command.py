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


def one_line(capsys, argv, expected):
    from attnlab.cli import main

    assert main(["attend", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"attnlab attend: {expected}"), captured.err


def test_a_sentence_over_the_model_limit_is_an_error_unless_truncated(capsys, tmp_path):
    from attnlab.cli import main

    long = " ".join(["word"] * 1000)  # 1000 WordPiece tokens, then [CLS] and [SEP]; the model takes 256
    one_line(capsys, [long, "--out", str(tmp_path / "figs")], "the sentence has 1002 tokens, more than the model's limit of 256")
    assert main(["attend", long, "--truncate", "--layer", "0", "--head", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "attnlab attend: warning: the sentence was cut from 1002 to 256 tokens\n"
    assert captured.out.startswith("6 layers x 12 heads over 256 tokens: [CLS] word word")
    assert list(tmp_path.iterdir()) == []


def test_output_places_that_cannot_be_made_are_one_line_and_nothing_is_left(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "figs"
    one_line(capsys, ["fine", "--out", str(out)], f"--out {out}: cannot create the folder (Not a directory)")
    one_line(capsys, ["fine", "--bertviz", str(out / "a.json")],
             f"--bertviz {out / 'a.json'}: cannot create its folder {out} (Not a directory)")  # fmt: skip
    one_line(capsys, ["fine", "--bertviz", str(tmp_path)], f"--bertviz {tmp_path}: is a folder, expected a file name")
    new = tmp_path / "new"
    one_line(capsys, ["fine", "--out", str(new / "figs"), "--bertviz", str(new / "b" / "a.json"), "--layer", "9"],
             "layer must be in 0..5; got 9")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
