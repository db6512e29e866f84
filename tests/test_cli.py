import io
import json
import re
import sys

import pytest

from attnlab import __version__
from attnlab.cli import main

FEW = ["--train.steps=4", "--train.eval_every=2", "--train.eval_size=8", "--train.batch_size=8",
       "--train.device=cpu", "--no-progress"]


def one_line_error(capsys, argv, expected):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert expected in lines[0], lines[0]


def test_lists_tasks_and_models(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "long_range" in out and "listops" in out and "associative_recall" in out
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp", "cnn", "rnn", "gru", "lstm", "bilstm", "transformer", "encdec", "lm"):
        assert f"\n{name} " in "\n" + out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "copy", "--model", "transformer", "--out", str(run), "--task.length=3",
                 "--model.num_layers=1", *FEW]) == 0
    return run


def test_train_then_eval_and_viz(trained, capsys, tmp_path):
    assert (trained / "model.safetensors").is_file() and (trained / "config.yaml").is_file()
    assert main(["eval", str(trained), "--examples", "1"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.splitlines()[0])
    assert result["split"] == "test" and result["examples"] == 8 and 0 <= result["accuracy"] <= 1
    assert "input:" in out and "predicted:" in out
    assert main(["viz", str(trained), "--out", str(tmp_path / "v"), "--examples", "2"]) == 0
    drawn = sorted(p.name for p in (tmp_path / "v").iterdir())
    assert len([p for p in drawn if p.endswith(".png")]) == 2 and "examples.txt" in drawn


def test_resume_extends_a_run(trained, capsys):
    import shutil

    copy = trained.parent / "resumed"
    shutil.copytree(trained, copy)
    assert main(["train", "--resume", str(copy), "--train.steps=6", "--no-progress"]) == 0
    assert "test" in capsys.readouterr().out
    records = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val"] == [2, 4, 6]


def test_bad_input_is_one_line_and_exit_2(trained, capsys, tmp_path):
    one_line_error(capsys, ["train", "copi", "--model", "lstm"], "unknown task 'copi' (did you mean \"copy\"?)")
    one_line_error(capsys, ["train", "copy", "--model", "lstn"], "unknown model 'lstn' (did you mean \"lstm\"?)")
    one_line_error(capsys, ["train", "copy", "--model", "lstm", "--model.hiden_dim=3"],
                   'unknown key model.hiden_dim (did you mean "hidden_dim"?)')
    one_line_error(capsys, ["train", "copy", "--model", "lstm", "--train.steps=many"],
                   "train.steps: expected int, got 'many'")
    one_line_error(capsys, ["train", "copy"], "give a model")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("task: {name: copy\n")
    one_line_error(capsys, ["train", "--config", str(bad_yaml), "--model", "lstm"], "bad.yaml: malformed YAML")
    one_line_error(capsys, ["eval", str(tmp_path / "missing")], "no such run folder")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.yaml").write_text("name: something else\n")
    one_line_error(capsys, ["viz", str(tmp_path / "other")], "not an attnlab run config")
    one_line_error(capsys, ["train", "adding", "--model", "lm"], "needs token inputs")
    one_line_error(capsys, ["compare", "copy", "--models", "lstm,cnx", "--seeds", "1"], "unknown model 'cnx'")
    one_line_error(capsys, ["tour", "--bogus"], "unrecognized arguments: --bogus")


def test_an_existing_run_is_never_overwritten(trained, capsys):
    before = {p.name: p.read_bytes() for p in trained.iterdir()}
    one_line_error(capsys, ["train", "copy", "--model", "lstm", "--out", str(trained), *FEW], "holds a run")
    one_line_error(capsys, ["train", "--resume", str(trained), "--model.num_layers=2"], "train.* settings only")
    assert before == {p.name: p.read_bytes() for p in trained.iterdir()}


def test_corrupt_checkpoint_is_one_line(trained, capsys, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / "model.safetensors").write_bytes(b"\x01\x02")
    one_line_error(capsys, ["eval", str(broken)], "model.safetensors: cannot load weights")
    assert main(["eval", str(broken), "--best"]) == 0  # --best reads best.safetensors, which is whole
    assert json.loads(capsys.readouterr().out)["split"] == "test"
    (broken / "best.safetensors").write_bytes(b"\x01\x02")
    one_line_error(capsys, ["viz", str(broken), "--best"], "best.safetensors: cannot load weights")
    (broken / "trainer.safetensors").write_bytes(b"\x01\x02")
    one_line_error(capsys, ["train", "--resume", str(broken), "--no-progress"], "corrupt trainer state")


def test_viz_of_a_run_without_attention(capsys, tmp_path):
    run = tmp_path / "lstm"
    assert main(["train", "copy", "--model", "lstm", "--out", str(run), "--task.length=3", *FEW]) == 0
    one_line_error(capsys, ["viz", str(run)], "has no attention to draw")
    one_line_error(capsys, ["viz", str(run), "--out", str(tmp_path / "new" / "figs")], "has no attention to draw")
    assert not (run / "viz").exists() and not (tmp_path / "new").exists()  # the folders made are taken back


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("mt") / "run"
    assert main(["train", "translate", "--model", "bahdanau", "--out", str(run), "--task.corpus=toy",
                 "--task.toy_pairs=200", *FEW]) == 0
    return run


def test_translate_prints_and_draws(tmp_path, capsys, trained, translation_run):
    run = translation_run
    assert (run / "source.json").is_file() and (run / "target.json").is_file()
    capsys.readouterr()
    assert main(["translate", str(run), "the red cat sees the dog", "a dog runs", "--beam", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["translate", str(run), "the red cat sees the dog", "--draw", str(tmp_path / "d")]) == 0
    assert "alignment-0.png" in capsys.readouterr().out
    assert (tmp_path / "d" / "alignment-0.png").is_file()
    one_line_error(capsys, ["translate", str(run), "a dog", "--beam", "0"], "--beam must be >= 1")
    one_line_error(capsys, ["translate", str(trained), "a dog"], "not a translation run")


def test_data_dir_flag_names_the_missing_folder(tmp_path, capsys):
    one_line_error(capsys, ["train", "translate", "--model", "bahdanau", "--task.corpus=multi30k",
                            "--data-dir", str(tmp_path / "nowhere"), *FEW], "nowhere")


def test_python_dash_m_attnlab_runs_the_command():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "attnlab", "tasks"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\ncopy " in "\n" + proc.stdout


def model_fields(capsys, name):
    """`attnlab models NAME` as its heading and {field: [type, default, comment]} (columns 2+ spaces apart)."""
    assert main(["models", name]) == 0
    lines = capsys.readouterr().out.splitlines()
    return lines[:2], {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip()) for line in lines[2:])}


def test_models_name_lists_every_field_with_type_default_and_comment(capsys):
    heading, rows = model_fields(capsys, "lstm")
    assert heading[0].startswith("lstm: LSTM") and heading[1].startswith("RecurrentConfig fields")
    assert list(rows) == ["embed_dim", "hidden_dim", "num_layers", "dropout"]
    hidden = rows["hidden_dim"]
    assert hidden[:2] == ["int", "80"] and hidden[2].startswith("state width")  # the entry's default, not 128
    heading, rows = model_fields(capsys, "transformer")
    assert heading[1].startswith("TransformerConfig fields")
    for field in ("num_kv_heads", "activation", "bias", "tie_embeddings", "num_decoder_layers", "layer_norm_eps"):
        assert field in rows, field
    assert rows["num_kv_heads"] == ["int | None", "none", "hk, key/value heads for grouped-query attention; None = h"]
    assert rows["ff_dim"][:2] == ["int", "256"] and rows["norm_first"][:2] == ["bool", "true"]
    assert "vocab_size" not in rows and "max_len" not in rows
    _, rows = model_fields(capsys, "image_cnn")
    assert rows["channels"][:2] == ["tuple[int, ...]", "32,64"]
    _, rows = model_fields(capsys, "luong")
    assert all(len(cells) == 3 for cells in rows.values())  # every field of the seq2seq configs has a comment


def test_models_name_unknown_family_is_one_line(capsys):
    one_line_error(capsys, ["models", "lstn"], "unknown model 'lstn' (did you mean \"lstm\"?)")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["serve", "no/such/folder"], "attnlab serve: no/such/folder: no such runs folder"),
        (["serve", ".", "--port", "0"], "attnlab serve: --port must be in [1, 65535], got 0"),
        (["serve", ".", "--port", "70000"], "--port must be in [1, 65535], got 70000"),
        (["serve", ".", "--port", "eighty"], "argument --port: invalid int value: 'eighty'"),
        (["serve", ".", "--host", " "], "attnlab serve: --host must not be empty"),
        (["serve", ".", "--colour", "red"], "unrecognized arguments: --colour red"),
    ],
)
def test_serve_argument_errors_are_one_line(capsys, argv, expected):
    one_line_error(capsys, argv, expected)


def test_serve_without_a_runs_folder_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ and no tour/ here
    one_line_error(capsys, ["serve"], "attnlab serve: no runs folder: give RUNS_DIR")


@pytest.fixture(scope="module")
def caption_run(tmp_path_factory):
    """A captioning run, and a picture beside it to caption."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("cap")
    run = folder / "run"
    assert main(["train", "caption", "--model", "show_attend_tell", "--out", str(run), "--task.scenes=40",
                 "--model.hidden_dim=16", "--model.embed_dim=8", "--model.attn_dim=8", *FEW]) == 0  # fmt: skip
    picture = folder / "scene.png"
    Image.fromarray((np.random.default_rng(0).random((16, 48)) * 255).astype(np.uint8)).save(picture)
    return run, picture


def test_caption_prints_and_draws(tmp_path, capsys, trained, caption_run):
    run, picture = caption_run
    capsys.readouterr()
    assert main(["caption", str(run), str(picture), str(picture), "--beam", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{picture}\t")
    assert main(["caption", str(run), str(picture), "--draw", str(tmp_path / "d")]) == 0
    assert "caption-0.png" in capsys.readouterr().out and (tmp_path / "d" / "caption-0.png").is_file()
    one_line_error(capsys, ["caption", str(run), str(picture), "--beam", "0"], "--beam must be >= 1")
    one_line_error(capsys, ["caption", str(run), str(tmp_path / "none.jpg")], "none.jpg: no such image file")
    one_line_error(capsys, ["caption", str(trained), str(picture)], "not a captioning run")


def test_caption_draws_the_sampled_location_of_each_word_for_hard_attention(tmp_path, capsys, monkeypatch):
    import numpy as np
    from PIL import Image

    import attnlab.viz.captioning as captioning

    run = tmp_path / "hard"
    assert main(["train", "caption", "--model", "show_attend_tell", "--out", str(run), "--task.scenes=40",
                 "--model.attention=hard", "--model.hidden_dim=16", "--model.embed_dim=8", "--model.attn_dim=8",
                 *FEW]) == 0  # fmt: skip
    picture = tmp_path / "scene.png"
    Image.fromarray((np.random.default_rng(0).random((16, 48)) * 255).astype(np.uint8)).save(picture)
    drawn = []
    monkeypatch.setattr(captioning, "draw_caption", lambda *a, **kw: drawn.append(kw) or a[4])
    assert main(["caption", str(run), str(picture), "--draw", str(tmp_path / "d")]) == 0
    assert drawn and drawn[0]["picks"] is not None and all(0 <= p < 12 for p in drawn[0]["picks"])


def only_left(folder, *names):
    """folder holds exactly these names: a failed command made nothing beside them."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.mark.parametrize("command", ["viz", "compare", "translate", "caption", "tour"])
def test_an_output_folder_that_cannot_be_made_is_one_line_and_nothing_runs(
    command, request, capsys, tmp_path, monkeypatch
):
    import attnlab.tour as tour
    import attnlab.train.compare as compare

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    out = str(blocked / "out")  # under a file: no system lets that folder be made, root or not
    monkeypatch.setattr(compare, "run_all", lambda *a, **kw: pytest.fail("compare trained"))
    monkeypatch.setattr(tour, "run_sections", lambda *a, **kw: pytest.fail("the tour ran"))

    def fixture(name):
        return request.getfixturevalue(name)

    argv, flag = {
        "viz": lambda: (["viz", str(fixture("trained")), "--out", out], "--out"),
        "compare": lambda: (["compare", "copy", "--models", "lstm", "--seeds", "1", "--out", out, *FEW[:4]], "--out"),
        "translate": lambda: (["translate", str(fixture("translation_run")), "a dog", "--draw", out], "--draw"),
        "caption": lambda: (["caption", *map(str, fixture("caption_run")), "--draw", out], "--draw"),
        "tour": lambda: (["tour", "--quick", "--out", out], "--out"),
    }[command]()
    capsys.readouterr()
    one_line_error(capsys, argv, f"attnlab {command}: {flag} {out}: cannot create the folder (")
    assert blocked.read_text() == ""
    only_left(tmp_path, "a-file")


def test_a_failed_command_leaves_no_output_folder(capsys, tmp_path, translation_run, caption_run):
    run, picture = caption_run
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"")
    one_line_error(capsys, ["caption", str(run), str(picture), str(broken), "--draw", str(tmp_path / "d" / "e")],
                   "broken.png: unreadable image")  # fmt: skip
    one_line_error(capsys, ["translate", str(translation_run), "a dog", "", "--draw", str(tmp_path / "d")],
                   "sentence 2 of 2 is empty")  # fmt: skip
    only_left(tmp_path, "broken.png")


def test_translate_refuses_empty_and_over_long_sentences_unless_truncated(capsys, tmp_path, translation_run):
    run = str(translation_run)
    long = " ".join(["a dog"] * 30)  # 60 source tokens; the run's task.max_len is the default 40
    one_line_error(capsys, ["translate", run, ""], "attnlab translate: sentence 1 of 1 is empty")
    one_line_error(capsys, ["translate", run, "a dog", "  "], "attnlab translate: sentence 2 of 2 is empty")
    expected = "sentence 2 of 2 has 60 tokens, more than the run's task.max_len of 40"
    one_line_error(capsys, ["translate", run, "a dog", long], expected)
    one_line_error(capsys, ["translate", run, "a dog", long, "--draw", str(tmp_path / "d")], expected)
    assert not (tmp_path / "d").exists()
    assert main(["translate", run, "a dog", long, "--truncate"]) == 0
    captured = capsys.readouterr()
    cut = " ".join(long.split()[:40])
    assert main(["translate", run, "a dog", cut]) == 0
    assert captured.out == capsys.readouterr().out  # the same translations as of the cut sentence
    assert captured.err == "attnlab translate: warning: sentence 2 of 2 cut from 60 to 40 tokens (the run's task.max_len)\n"
    assert main(["translate", run, long, "--truncate", "--draw", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "alignment-0.png").is_file() and "cut from 60 to 40" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--size", "0"], "attnlab eval: --size must be >= 1, got 0"),
        (["--size", "-2"], "attnlab eval: --size must be >= 1, got -2"),
        (["--examples", "-1"], "attnlab eval: --examples must be >= 0, got -1"),
    ],
)
def test_eval_counts_out_of_range_are_one_line(capsys, trained, argv, expected):
    one_line_error(capsys, ["eval", str(trained), *argv], expected)


def test_data_dir_must_be_a_folder(capsys, tmp_path, trained):
    (tmp_path / "file").write_text("")
    one_line_error(capsys, ["eval", str(trained), "--data-dir", str(tmp_path / "file")],
                   f"attnlab eval: --data-dir {tmp_path / 'file'}: not a folder")  # fmt: skip
    one_line_error(capsys, ["eval", str(trained), "--data-dir", str(tmp_path / "none")],
                   f"attnlab eval: --data-dir {tmp_path / 'none'}: no such folder")  # fmt: skip


BABI_OK = "1 Mary went to the kitchen.\n2 Where is Mary?\tkitchen\t1\n1 John went home.\n2 Where is John?\thome\t1\n"


@pytest.mark.parametrize(
    "train, test, expected",
    [
        ("", BABI_OK, "qa1_single-supporting-fact_train.txt: no questions"),
        ("1 Mary went to the kitchen.\n2 John went home.\n", BABI_OK, "_train.txt: no questions"),
        (BABI_OK, "\n\n", "qa1_single-supporting-fact_test.txt: no questions"),
        (BABI_OK.split("1 John")[0], BABI_OK, "_train.txt: 1 question; a training file needs at least 2"),
    ],
)
def test_babi_files_without_questions_are_one_line(capsys, tmp_path, train, test, expected):
    folder = tmp_path / "data" / "babi" / "tasks_1-20_v1-2" / "en"
    folder.mkdir(parents=True)
    (folder / "qa1_single-supporting-fact_train.txt").write_text(train)
    (folder / "qa1_single-supporting-fact_test.txt").write_text(test)
    one_line_error(capsys, ["train", "babi", "--model", "memn2n", "--task.setting=en", "--data-dir",
                            str(tmp_path / "data"), "--out", str(tmp_path / "run"), *FEW], expected)  # fmt: skip
    only_left(tmp_path, "data")


class _ClosedPipe(io.TextIOBase):
    """A stdout whose reader has gone."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_pipe_ends_quietly(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["models"]) == 141
    assert main(["models", "lstm"]) == 141
    assert capsys.readouterr().err == ""


def test_a_closed_stdout_pipe_ends_the_process_quietly():
    import os
    import subprocess

    read, write = os.pipe()
    os.close(read)  # as `attnlab tasks | head -0`: every write to stdout fails
    try:
        proc = subprocess.run([sys.executable, "-m", "attnlab", "tasks"], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=120)  # fmt: skip
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")
