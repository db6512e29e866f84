import json

import pytest

from attnlab import __version__
from attnlab.cli import main


def test_tour_runs_a_few_steps_into_a_folder(tmp_path, capsys):
    assert main(["tour", "--out", str(tmp_path / "t"), "--steps", "3"]) == 0
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert metrics["copy"]["steps"] == 3
    for name in ("report.html", "copy_head.png", "copy_heads.png"):
        assert (tmp_path / "t" / name).stat().st_size > 1000
    assert "report.html" in capsys.readouterr().out


def test_bad_arguments_exit_2_with_one_line(capsys):
    assert main(["tour", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "attnlab tour: --steps must be >= 1"
    with pytest.raises(SystemExit) as exit_info:
        main(["nonsense"])
    assert exit_info.value.code == 2


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out
