import pytest
import torch
import torch.nn.functional as F

from attnlab.core import capture
from attnlab.data.babi import Vocabulary, to_tensors
from attnlab.data.babi_generator import generate_babi
from attnlab.memory.kvmemnn import KVMemNN, KVMemNNConfig, last_words
from batches import fit


def test_last_words_match_a_loop():
    story = torch.tensor([[[4, 2, 7, 0], [3, 0, 0, 0], [0, 0, 0, 0], [5, 1, 1, 9]]])
    want = [[[next((w for w in reversed(s) if w != 0), 0)] for s in story[0].tolist()]]
    assert last_words(story).tolist() == want


def test_planted_key_with_the_question_words_gets_the_weight():
    v = 10
    model = KVMemNN(KVMemNNConfig(embed_dim=v, hops=1, encoding="bow", values="last_word"), v)
    with torch.no_grad():
        model.embed.weight.copy_(10 * torch.eye(v))
        model.embed.weight[0].zero_()
        model.updates[0].weight.copy_(torch.eye(v))
        model.answers.weight.copy_(torch.eye(v))
    story = torch.tensor([[[3, 4, 0], [1, 2, 5], [6, 7, 0]]])  # the value of slot 1 is word 5
    with capture(model) as trace:
        logits = model(story, torch.tensor([[1, 2]]))
    assert trace[0].weights[0, 0, 0].argmax().item() == 1 and trace[0].weights[0, 0, 0, 1] > 0.99
    # q + o holds the question words (10 each) and the read value, word 5 (10)
    assert logits[0, 5].item() == pytest.approx(10.0, abs=1e-3) and logits[0, 3].item() == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("values", ["sentence", "last_word"])
def test_each_hop_is_traced_and_empty_memories_are_safe(values):
    torch.manual_seed(0)
    model = KVMemNN(KVMemNNConfig(embed_dim=8, hops=3, memory_size=5, values=values), 12)
    story = torch.randint(1, 12, (2, 4, 3))
    story[1] = 0  # an empty story
    question = torch.randint(1, 12, (2, 3))
    plain = model(story, question)
    with capture(model) as trace:
        traced = model(story, question)
    torch.testing.assert_close(traced, plain)
    assert [r.extra["hop"] for r in trace] == [0, 1, 2] and trace[0].weights.shape == (2, 1, 1, 4)
    assert (trace[0].weights[1] == 0).all() and trace[0].weights[0].sum().item() == pytest.approx(1.0)
    plain.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_value_kind_changes_what_is_read():
    torch.manual_seed(0)
    a = KVMemNN(KVMemNNConfig(embed_dim=8, values="sentence"), 12)
    b = KVMemNN(KVMemNNConfig(embed_dim=8, values="last_word"), 12)
    b.load_state_dict(a.state_dict())
    story, question = torch.randint(1, 12, (2, 4, 3)), torch.randint(1, 12, (2, 3))
    assert not torch.allclose(a(story, question), b(story, question))


def test_only_the_most_recent_memory_size_sentences_are_read():
    torch.manual_seed(0)
    model = KVMemNN(KVMemNNConfig(embed_dim=8, memory_size=3), 12)
    story, question = torch.randint(1, 12, (2, 6, 4)), torch.randint(1, 12, (2, 3))
    torch.testing.assert_close(model(story, question), model(story[:, -3:], question))


def test_overfits_a_few_generated_stories():
    torch.manual_seed(0)
    examples = generate_babi(1, num_stories=12, seed=0)
    vocab = Vocabulary(examples)
    data = to_tensors(examples, vocab, memory_size=10)
    model = KVMemNN(KVMemNNConfig(embed_dim=24, hops=2, memory_size=10, values="last_word"), len(vocab))
    fit(lambda: F.cross_entropy(model(data.story, data.question, data.story_mask), data.answer),
        model.parameters(), steps=200, lr=0.02, optimizer=torch.optim.Adam)
    accuracy = (model(data.story, data.question, data.story_mask).argmax(-1) == data.answer).float().mean()
    assert accuracy.item() == 1.0


@pytest.mark.parametrize(
    "field, value",
    [("embed_dim", 0), ("hops", 0), ("memory_size", -1), ("encoding", "cnn"), ("values", "window"),
     ("init_std", -1.0)],
)
def test_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        KVMemNNConfig(**{field: value})


def test_memory_size_zero_keeps_the_stories_sentences():
    assert KVMemNN(KVMemNNConfig(memory_size=0), 12, num_sentences=7).memory_size == 7
    assert KVMemNN(KVMemNNConfig(memory_size=3), 12, num_sentences=7).memory_size == 3
    with pytest.raises(ValueError, match=r"^memory_size must be >= 1 \(or 0 with num_sentences >= 1\), got 0"):
        KVMemNN(KVMemNNConfig(memory_size=0), 12)
    with pytest.raises(ValueError, match=r"^vocab_size must be >= 1, got 0"):
        KVMemNN(KVMemNNConfig(), 0)
