"""The memory families: the (m, s, q) reshape, refusing specs without a layout, and overfitting bAbI rows."""

import pytest
import torch

import attnlab.models.memory  # noqa: F401  (registers memn2n and kvmemnn)
from attnlab.models.memory import KVMemNNFamilyConfig, MemN2NFamilyConfig, split_layout
from attnlab.models.registry import MODELS, PAD, TaskSpec, build_model
from attnlab.tasks import build_task

SPEC = TaskSpec(seq_len=4 * 3 + 2, answer_len=1, vocab_size=9, num_outputs=9, layout=(4, 3, 2))


def flat_rows(generator, b=5, m=4, s=3, q=2, vocab=9):
    story = torch.randint(1, vocab, (b, m, s), generator=generator)  # (b, m, s)
    story[:, :2] = PAD  # two empty sentences in front, as the task pads a short story
    story[:, 2, 1:] = PAD  # a one-word sentence
    question = torch.randint(1, vocab, (b, q), generator=generator)  # (b, q)
    return story, question, torch.cat([story.flatten(1), question], 1)  # (b, m*s + q)


def test_split_layout_round_trip():
    story, question, inputs = flat_rows(torch.Generator().manual_seed(0))
    got_story, mask, got_question = split_layout(inputs, (4, 3, 2))
    assert torch.equal(got_story, story) and torch.equal(got_question, question)
    assert mask.tolist() == [[False, False, True, True]] * 5
    assert torch.equal(torch.cat([got_story.flatten(1), got_question], 1), inputs)
    with pytest.raises(ValueError, match=r"layout \(4, 3, 3\) needs m\*s \+ q = 15"):
        split_layout(inputs, (4, 3, 3))


@pytest.mark.parametrize("name", ["memn2n", "kvmemnn"])
def test_family_refuses_a_spec_without_a_layout(name):
    plain = TaskSpec(seq_len=14, answer_len=1, vocab_size=9, num_outputs=9)
    with pytest.raises(ValueError, match=rf"{name}: needs a task with TaskSpec.layout = \(m, s, q\); got layout \(\)"):
        build_model(name, {}, plain)
    wrong = TaskSpec(seq_len=13, answer_len=1, vocab_size=9, num_outputs=9, layout=(4, 3, 2))
    with pytest.raises(ValueError, match="gives 14 positions; seq_len 13"):
        build_model(name, {}, wrong)
    two_answers = TaskSpec(seq_len=14, answer_len=2, vocab_size=9, num_outputs=9, layout=(4, 3, 2))
    with pytest.raises(ValueError, match="one answer over the vocabulary"):
        build_model(name, {}, two_answers)


@pytest.mark.parametrize("name", ["memn2n", "kvmemnn"])
def test_family_is_the_memory_network_on_the_reshaped_rows(name):
    torch.manual_seed(0)
    model = build_model(name, {"embed_dim": 8}, SPEC).eval()
    assert MODELS.summary(name) and "\n" not in MODELS.summary(name)
    assert model.memory.config.memory_size == 4 and model.memory.config.vocab_size == 9  # 0 = the task's m
    story, question, inputs = flat_rows(torch.Generator().manual_seed(1))
    logits = model(inputs)
    assert logits.shape == (5, 1, 9)
    torch.testing.assert_close(logits[:, 0], model.memory(story, question, (story != PAD).any(-1)))


def test_family_configs_check_their_fields():
    with pytest.raises(ValueError, match="hops must be >= 1"):
        MemN2NFamilyConfig(hops=0)
    with pytest.raises(ValueError, match="memory_size must be >= 0"):
        KVMemNNFamilyConfig(memory_size=-1)
    with pytest.raises(ValueError, match="values must be one of"):
        KVMemNNFamilyConfig(values="words")
    assert build_model("memn2n", {"memory_size": 2}, SPEC).memory.config.memory_size == 2


def test_memn2n_overfits_a_few_generated_questions_through_the_task():
    task = build_task("babi", {"tasks": "1,2", "generated_stories": 10, "memory_size": 10})
    batch = task.sample(16, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model("memn2n", {"embed_dim": 32}, task.spec)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        loss = task.loss(model(batch.inputs), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert task.metrics(model(batch.inputs), batch)["accuracy"] == 1.0
