"""attnlab.files: output folders created up front, or refused in one line naming flag, path and reason."""

import tempfile

import pytest

from attnlab.errors import ConfigError
from attnlab.files import output_dir, output_file, writing_into


def test_output_dir_makes_the_folder_and_its_parents(tmp_path):
    made = output_dir(str(tmp_path / "a" / "b"), "--out")
    assert made == tmp_path / "a" / "b" and made.is_dir()
    assert output_dir(made) == made and list(made.iterdir()) == []  # again: no error, no scratch file left


def test_output_file_makes_its_folder_only(tmp_path):
    path = output_file(tmp_path / "a" / "f.json", "--bertviz")
    assert path.parent.is_dir() and not path.exists()


@pytest.mark.parametrize(
    "make, expected",
    [
        (
            lambda t: output_dir(t / "file", "--out"),
            "--out {t}/file: cannot create the folder (a file of that name exists)",
        ),
        (
            lambda t: output_dir(t / "file" / "x", "--out"),
            "--out {t}/file/x: cannot create the folder (Not a directory)",
        ),
        (lambda t: output_dir(t / "file" / "x"), "{t}/file/x: cannot create the folder (Not a directory)"),
        (
            lambda t: output_file(t / "file" / "f.json", "--bertviz"),
            "--bertviz {t}/file/f.json: cannot create its folder {t}/file (a file of that name exists)",
        ),
        (lambda t: output_file(t, "--bertviz"), "--bertviz {t}: is a folder, expected a file name"),
    ],
)
def test_a_place_that_cannot_be_made_is_one_line_naming_flag_path_and_reason(tmp_path, make, expected):
    (tmp_path / "file").write_text("kept")
    with pytest.raises(ConfigError) as err:
        make(tmp_path)
    assert str(err.value) == expected.format(t=tmp_path)
    assert (tmp_path / "file").read_text() == "kept" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_folder_that_takes_no_files_is_refused(tmp_path, monkeypatch):
    def refuse(**kwargs):  # what a read-only file system answers, whatever the permission bits say
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(ConfigError, match=r"^--draw .*/d: cannot write into the folder \(Read-only file system\)$"):
        output_dir(tmp_path / "d", "--draw")


def test_writing_into_takes_back_the_empty_folders_it_made_when_the_work_fails(tmp_path):
    (tmp_path / "old").mkdir()
    with pytest.raises(ConfigError, match="bad input"), writing_into(tmp_path / "old" / "new" / "figs") as out:
        assert out.is_dir()
        raise ConfigError("bad input")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"] and not any((tmp_path / "old").iterdir())
    with pytest.raises(ConfigError), writing_into(tmp_path / "a" / "f.json", "--bertviz", file=True) as path:
        path.write_text("{}")
        raise ConfigError("failed after writing")
    assert (tmp_path / "a" / "f.json").read_text() == "{}"  # what the work wrote stays
    with writing_into(tmp_path / "b", "--out") as out:
        pass
    assert out.is_dir()  # success keeps the (empty) folder
