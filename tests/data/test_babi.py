import os
from pathlib import Path

import pytest
import torch

from attnlab.data.babi import (
    NUM_TASKS,
    BabiExample,
    Vocabulary,
    load_task,
    parse_babi,
    read_babi,
    task_file,
    to_tensors,
    tokenize,
)
from attnlab.errors import DataError

STORIES = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Mary picked up the football.
5 Mary got the apple.
6 What is Mary carrying?\tfootball,apple\t4 5
1 Sandra went to the garden.
2 How do you go from the garden to the office?\tn,w\t1
"""


def write(tmp_path: Path, text: str, name: str = "qa1_toy_train.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("Where is Mary? ") == ("where", "is", "mary")
    assert tokenize("John went to the hallway.") == ("john", "went", "to", "the", "hallway")


def test_reader_splits_stories_and_maps_supporting_ids(tmp_path):
    examples = read_babi(write(tmp_path, STORIES))
    assert len(examples) == 3
    first, second, third = examples
    assert first == BabiExample(
        story=(("mary", "moved", "to", "the", "bathroom"), ("john", "went", "to", "the", "hallway")),
        question=("where", "is", "mary"),
        answer=("bathroom",),
        supporting=(0,),
    )
    # line IDs 4 and 5 come after a question line, so they are statements 2 and 3
    assert len(second.story) == 4 and second.supporting == (2, 3)
    assert second.answer == ("football", "apple") and second.answer_token == "football,apple"
    assert third.story == (("sandra", "went", "to", "the", "garden"),)  # ID 1 reset the story
    assert third.answer == ("n", "w") and third.supporting == (0,)


@pytest.mark.parametrize(
    "bad, line, expected",
    [
        ("1 Mary went home.\nx Where?\tno\t1\n", 2, "'ID text'"),
        ("1 Mary went home.\n3 John went home.\n", 2, "ID 1 (new story) or 2"),
        ("1 Mary went home.\n2 Where is Mary?\thome\n", 2, "question<TAB>answer<TAB>supporting IDs"),
        ("1 Mary went home.\n2 Where is Mary?\thome\t7\n", 2, "supporting IDs of earlier statements"),
        ("1 Mary went home.\n2 Where is Mary?\thome\tone\n", 2, "space-separated supporting IDs"),
        ("1 Where is Mary?\thome\t1\n", 1, "supporting IDs of earlier statements"),
        ("1 Mary went home.\n2 Where is Mary?\thome town\t1\n", 2, "comma-separated words"),
    ],
)
def test_malformed_line_names_file_line_and_expectation(tmp_path, bad, line, expected):
    path = write(tmp_path, bad)
    with pytest.raises(DataError) as info:
        read_babi(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: expected") and expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "no questions"),
        (b"\n \n", "no questions"),
        (b"1 Mary went home.\n2 John went to the garden.\n", "no questions"),
        (b"\xff\xfe1 Mary went home.\n", "cannot read the file ('utf-8' codec can't decode"),
    ],
)
def test_a_file_without_questions_or_text_is_one_line_naming_it(tmp_path, content, expected):
    path = tmp_path / "qa1_toy_train.txt"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_babi(path)
    assert str(info.value).startswith(f"{path}: {expected}") and "\n" not in str(info.value)
    with pytest.raises(DataError, match="cannot read the file"):
        read_babi(tmp_path)  # a folder where the file should be


def test_parse_skips_blank_lines_and_accepts_crlf():
    examples = parse_babi(["1 Mary went to the office.\r\n", "\n", "2 Where is Mary?\toffice\t1\r\n"])
    assert examples[0].answer == ("office",) and examples[0].story == (("mary", "went", "to", "the", "office"),)


def test_task_file_finds_by_number_and_names_missing_path(tmp_path):
    folder = tmp_path / "babi" / "tasks_1-20_v1-2" / "en"
    folder.mkdir(parents=True)
    write(folder, STORIES, "qa8_lists-sets_train.txt")
    assert task_file(8, "train", "en", tmp_path).name == "qa8_lists-sets_train.txt"
    assert len(load_task(8, "train", "en", tmp_path)) == 3
    with pytest.raises(FileNotFoundError, match=r"en-10k.*qa8_\*_train\.txt"):
        task_file(8, "train", "en-10k", tmp_path)
    with pytest.raises(FileNotFoundError, match="qa3_"):
        task_file(3, "test", "en", tmp_path)
    for bad, field in (({"task": 21}, "task"), ({"split": "dev"}, "split"), ({"setting": "fr"}, "setting")):
        args = {"task": 1, "split": "train", "setting": "en", **bad}
        with pytest.raises(ValueError, match=f"^{field} must"):
            task_file(data_dir=tmp_path, **args)


def test_task_file_reads_env_when_no_folder_given(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTNLAB_DATA", raising=False)
    with pytest.raises(ValueError, match="ATTNLAB_DATA"):
        task_file(1, "train")
    monkeypatch.setenv("ATTNLAB_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        task_file(1, "train")


def test_vocabulary_is_built_from_the_data(tmp_path):
    examples = read_babi(write(tmp_path, STORIES))
    vocab = Vocabulary(examples)
    expected = {w for ex in examples for s in (*ex.story, ex.question) for w in s} | {ex.answer_token for ex in examples}
    assert set(vocab.words[1:]) == expected and vocab.words[0] == "<pad>"
    assert vocab.decode(vocab.encode(["mary", "football,apple"])) == ["mary", "football,apple"]
    with pytest.raises(KeyError, match="zebra"):
        vocab.encode(["zebra"])


def test_to_tensors_keeps_most_recent_sentences_and_pads(tmp_path):
    examples = read_babi(write(tmp_path, STORIES))
    vocab = Vocabulary(examples)
    t = to_tensors(examples, vocab, memory_size=3)
    assert t.story.shape == (3, 3, 5) and t.question.shape == (3, 10) and t.answer.shape == (3,)
    assert t.story_mask.tolist() == [[True, True, False], [True, True, True], [True, False, False]]
    kept = examples[1].story[-3:]  # four statements, the oldest dropped
    assert [vocab.decode(row.tolist()) for row in t.story[1]] == [list(s) for s in kept]
    assert vocab.words[t.answer[1]] == "football,apple"
    assert torch.equal(t.question[0, 3:], torch.zeros(7, dtype=torch.long))


def _data_dir() -> str:
    root = os.environ.get("ATTNLAB_DATA")
    if root is None or not (Path(root) / "babi" / "tasks_1-20_v1-2" / "en").is_dir():
        pytest.skip("bAbI data absent: set ATTNLAB_DATA to the folder holding babi/")
    return root


def test_real_data_every_task_has_1000_training_questions():
    root = _data_dir()
    for task in range(1, NUM_TASKS + 1):
        examples = load_task(task, "train", "en", root)
        assert len(examples) == 1000, task
        for ex in examples:
            assert all(0 <= i < len(ex.story) for i in ex.supporting), task
    multi = {len(ex.answer) for ex in load_task(8, "test", "en", root)}
    assert max(multi) >= 2  # lists/sets has answers of several words
    paths = load_task(19, "test", "en", root)
    assert all(len(ex.answer) == 2 and set(ex.answer) <= set("nsew") for ex in paths)


def test_real_data_10k_setting_and_its_missing_qa3_train_file():
    root = _data_dir()
    assert len(load_task(1, "train", "en-10k", root)) == 10000
    try:
        count = len(load_task(3, "train", "en-10k", root))
    except FileNotFoundError as missing:  # the known gap of the shared copy (see its README)
        assert "en-10k" in str(missing) and "qa3_" in str(missing)
    else:
        assert count == 10000
