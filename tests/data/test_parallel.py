import os
from pathlib import Path

import pytest

from attnlab.data.parallel import DataError, filter_pairs, multi30k_dir, read_parallel, read_tsv


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def raised(call, *args) -> str:
    """The one-line DataError message of call(*args)."""
    with pytest.raises(DataError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, ValueError)
    return message


def test_read_parallel_pairs_lines_and_keeps_case_and_punctuation(tmp_path):
    write(tmp_path, "train.de", "Ein Hund läuft.\nZwei Männer, draußen.  \r\n")
    write(tmp_path, "train.en", "A dog runs.\nTwo men, outside.\n\n")  # a trailing blank line is ignored
    assert read_parallel(tmp_path, "train", "de", "en") == [
        ("Ein Hund läuft.", "A dog runs."),
        ("Zwei Männer, draußen.", "Two men, outside."),
    ]
    # the direction follows the arguments
    assert read_parallel(tmp_path, "train", "en", "de")[0] == ("A dog runs.", "Ein Hund läuft.")


def test_read_parallel_errors_name_the_files(tmp_path):
    write(tmp_path, "val.de", "eins\nzwei\ndrei\n")
    message = raised(read_parallel, tmp_path, "val", "de", "en")
    assert message == f"{tmp_path / 'val.en'}: no such file"
    write(tmp_path, "val.en", "")
    assert raised(read_parallel, tmp_path, "val", "de", "en").startswith(f"{tmp_path / 'val.en'}: empty file")
    write(tmp_path, "val.en", "one\ntwo\n")
    message = raised(read_parallel, tmp_path, "val", "de", "en")
    assert message.startswith(f"{tmp_path / 'val.de'} has 3 lines but {tmp_path / 'val.en'} has 2")
    write(tmp_path, "val.en", "one\n   \nthree\n")
    assert raised(read_parallel, tmp_path, "val", "de", "en") == f"{tmp_path / 'val.en'}:2: empty sentence"
    (tmp_path / "val.en").write_bytes(b"one\n\xff\nthree\n")
    assert raised(read_parallel, tmp_path, "val", "de", "en").startswith(f"{tmp_path / 'val.en'}: not UTF-8")


def test_read_tsv_ignores_extra_columns_and_a_trailing_empty_line(tmp_path):
    path = write(tmp_path, "pairs.tsv", "Go.\tVa !\tCC-BY 2.0 (France) Attribution\nHi.\tSalut.\n\n")
    assert read_tsv(path) == [("Go.", "Va !"), ("Hi.", "Salut.")]


@pytest.mark.parametrize(
    "text, line, fault",
    [
        ("Go.\tVa !\nHi. Salut.\n", 2, "expected 'source<TAB>target', found no tab"),
        ("Go.\tVa !\n\nHi.\tSalut.\n", 2, "expected 'source<TAB>target', found no tab"),
        ("Go.\tVa !\n \tSalut.\n", 2, "empty source sentence"),
        ("Go.\t\tattribution\n", 1, "empty target sentence"),
    ],
)
def test_read_tsv_bad_lines_name_file_and_line(tmp_path, text, line, fault):
    path = write(tmp_path, "bad.tsv", text)
    assert raised(read_tsv, path) == f"{path}:{line}: {fault}"


def test_read_tsv_missing_and_empty_files(tmp_path):
    assert raised(read_tsv, tmp_path / "absent.tsv") == f"{tmp_path / 'absent.tsv'}: no such file"
    empty = write(tmp_path, "empty.tsv", "\n\n")
    assert raised(read_tsv, empty).startswith(f"{empty}: empty file")


def test_multi30k_dir_resolves_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTNLAB_DATA", raising=False)
    with pytest.raises(ValueError, match="ATTNLAB_DATA"):
        multi30k_dir()
    assert raised(multi30k_dir, tmp_path).startswith(f"{tmp_path / 'multi30k'}: no such folder")
    (tmp_path / "multi30k").mkdir()
    assert multi30k_dir(tmp_path) == tmp_path / "multi30k"
    monkeypatch.setenv("ATTNLAB_DATA", str(tmp_path))
    assert multi30k_dir() == tmp_path / "multi30k"


def test_filter_pairs_keeps_both_sides_within_the_limit():
    pairs = [("a b", "c"), ("a b c d", "e"), ("a", "b c d e"), ("", "x"), ("a b c", "d e f")]
    kept, dropped = filter_pairs(pairs, 3)
    assert kept == [("a b", "c"), ("a b c", "d e f")] and dropped == 3
    # any length function, e.g. characters
    kept, dropped = filter_pairs([("ab", "c"), ("abcd", "e")], 3, length=len)
    assert kept == [("ab", "c")] and dropped == 1
    with pytest.raises(ValueError, match="max_len"):
        filter_pairs(pairs, 0)


def _multi30k() -> Path | None:
    root = os.environ.get("ATTNLAB_DATA")
    folder = Path(root) / "multi30k" if root else None
    return folder if folder is not None and folder.is_dir() else None


def test_multi30k_split_sizes():
    folder = _multi30k()
    if folder is None:
        pytest.skip("Multi30k absent: set ATTNLAB_DATA to a folder holding multi30k/")
    sizes = {split: len(read_parallel(folder, split, "de", "en")) for split in ("train", "val", "test2016")}
    assert sizes == {"train": 29000, "val": 1014, "test2016": 1000}
