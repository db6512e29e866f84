import dataclasses

import pytest
import torch
import torch.nn.functional as F

from attnlab.core import capture
from attnlab.data.babi import Vocabulary, to_tensors
from attnlab.data.babi_generator import generate_babi
from attnlab.memory.encoding import encode_sentences
from attnlab.memory.memn2n import MemN2N, MemN2NConfig, sentence_ages, story_noise_ages
from batches import fit


def test_linear_start_phase_is_part_of_the_state():
    model = MemN2N(MemN2NConfig(embed_dim=4, linear_start=True), 10)
    assert model.state_dict()["linear_phase"].item() is True
    model.linear_start = False
    fresh = MemN2N(MemN2NConfig(embed_dim=4, linear_start=True), 10)
    fresh.load_state_dict(model.state_dict())
    assert fresh.linear_start is False


def test_sentence_ages_count_later_sentences():
    mask = torch.tensor([[True, True, False, True], [False, False, True, True]])
    assert sentence_ages(mask, 10).tolist() == [[2, 1, 1, 0], [2, 2, 1, 0]]
    assert sentence_ages(mask, 2).max().item() == 1
    empty = torch.tensor([[True, False, False, True], [False, False, True, False]])
    # RN: an empty memory just before a sentence ages every older sentence by one more
    assert sentence_ages(mask, 10, empty).tolist() == [[3, 2, 2, 0], [3, 3, 1, 0]]


def test_story_noise_keeps_the_order_within_n_plus_u_ages():
    torch.manual_seed(0)
    mask = torch.zeros(2000, 12, dtype=torch.bool)
    mask[:1000, 3:] = True  # 9 sentences: u in {0, 1}
    mask[1000:, [0, 2, 5, 6, 7, 8, 9, 10, 11]] = True  # the same with gaps
    draws = torch.rand(2000, 1 + 12 + 2)
    ages = story_noise_ages(mask, 50, draws, 0.1)
    for row, present in zip(ages, mask):
        kept = row[present]  # oldest first
        assert (kept[:-1] > kept[1:]).all() and kept.min() >= 0 and kept.max() <= 9
    newest = ages[:, -1]
    # the newest is age 1 only when u = 1 (chance 1/2) and age 0 is the one of the 10 left out (1/10)
    assert (newest == 1).float().mean().item() == pytest.approx(0.05, abs=0.015)
    assert set(newest.tolist()) == {0, 1}
    oldest = ages[:1000, 3]
    assert (oldest == 9).float().mean().item() == pytest.approx(0.45, abs=0.05)  # u = 1 and age 9 chosen: 1/2 * 9/10


def test_story_noise_without_blanks_is_the_plain_ages():
    mask = torch.tensor([[True, True, False, True], [False, False, True, True]])
    draws = torch.rand(2, 1 + 4 + 4)
    draws[:, 0] = 0.0  # u = 0
    assert story_noise_ages(mask, 10, draws, 0.9)[mask].tolist() == sentence_ages(mask, 10)[mask].tolist()
    assert story_noise_ages(mask, 2, draws, 0.9).max().item() == 1  # clamped to the last temporal row


@pytest.mark.parametrize("scheme", ["sentence", "story"])
def test_noise_drawn_up_front_equals_noise_drawn_inside(scheme):
    model = MemN2N(MemN2NConfig(embed_dim=8, hops=2, memory_size=10, random_noise=0.5, noise_scheme=scheme), 12)
    story, question = torch.randint(1, 12, (4, 6, 3)), torch.randint(1, 12, (4, 2))
    torch.manual_seed(3)
    inside = model(story, question)
    torch.manual_seed(3)
    noise = model.draw_noise((4, 6))
    assert noise is not None
    torch.testing.assert_close(model(story, question, noise=noise), inside)
    none = torch.ones(4, 6) if scheme == "sentence" else torch.zeros(noise.shape)  # no empty memory drawn
    torch.testing.assert_close(model(story, question, noise=none), model.eval()(story, question))


def planted_model(vocab_size=10, hops=1, **overrides):
    cfg = MemN2NConfig(embed_dim=vocab_size, hops=hops, memory_size=8, encoding="bow", temporal=False, **overrides)
    model = MemN2N(cfg, vocab_size)
    with torch.no_grad():
        for e in model.embeddings:
            e.weight.copy_(10 * torch.eye(vocab_size))  # words one-hot: m_i . u counts shared words
            e.weight[0].zero_()
    return model


def test_planted_sentence_with_the_question_words_gets_the_weight():
    model = planted_model()
    story = torch.tensor([[[3, 4, 0], [1, 2, 5], [6, 7, 0], [8, 0, 0]]])  # (1, 4, 3)
    question = torch.tensor([[1, 2]])
    with capture(model) as trace:
        logits = model(story, question)
    weights = trace[0].weights  # (1, 1, 1, 4)
    assert weights.shape == (1, 1, 1, 4) and weights[0, 0, 0].argmax().item() == 1
    assert weights[0, 0, 0, 1].item() > 0.99
    assert logits.argmax(-1).item() in (1, 2)  # u + o is strongest on the question's own words


def test_each_hop_is_traced_and_tracing_changes_nothing():
    torch.manual_seed(0)
    model = MemN2N(MemN2NConfig(embed_dim=8, hops=3, memory_size=5), 12)
    story = torch.randint(1, 12, (2, 4, 3))
    story[1, :2] = 0  # two empty sentences in the second story
    question = torch.randint(1, 12, (2, 3))
    plain = model(story, question)
    with capture(model) as trace:
        traced = model(story, question)
    torch.testing.assert_close(traced, plain)
    assert [r.extra["hop"] for r in trace] == [0, 1, 2] and {r.kind for r in trace} == {"memory"}
    for r in trace:
        assert r.weights.shape == (2, 1, 1, 4)
        torch.testing.assert_close(r.weights.sum(-1), torch.ones(2, 1, 1))
        assert (r.weights[1, 0, 0, :2] == 0).all()


@pytest.mark.parametrize("tying", ["adjacent", "layerwise"])
def test_padding_side_and_empty_memories(tying):
    torch.manual_seed(0)
    model = MemN2N(MemN2NConfig(embed_dim=8, hops=2, memory_size=6, tying=tying), 12)
    sentences = torch.randint(1, 12, (1, 3, 4))
    right = torch.cat([sentences, torch.zeros(1, 2, 4, dtype=torch.long)], 1)  # (1, 5, 4)
    left = torch.cat([torch.zeros(1, 2, 4, dtype=torch.long), sentences], 1)  # (1, 5, 4)
    question = torch.randint(1, 12, (1, 3))
    torch.testing.assert_close(model(right, question), model(left, question))
    empty = torch.zeros(2, 5, 4, dtype=torch.long)
    logits = model(empty, question.repeat(2, 1))
    assert logits.shape == (2, 12) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_only_the_most_recent_memory_size_sentences_are_read():
    torch.manual_seed(0)
    model = MemN2N(MemN2NConfig(embed_dim=8, hops=2, memory_size=3), 12)
    story = torch.randint(1, 12, (2, 6, 4))
    question = torch.randint(1, 12, (2, 3))
    torch.testing.assert_close(model(story, question), model(story[:, -3:], question))
    assert not torch.allclose(model(story, question), model(story[:, -2:], question))


def test_linear_start_uses_raw_scores_without_normalising():
    model = planted_model(linear_start=True)
    story = torch.tensor([[[3, 4, 0], [1, 2, 5], [0, 0, 0]]])
    with capture(model) as trace:
        model(story, torch.tensor([[1, 2]]))
    torch.testing.assert_close(trace[0].weights[0, 0, 0], torch.tensor([0.0, 200.0, 0.0]))
    assert trace[0].extra["linear"] is True
    model.linear_start = False
    with capture(model) as trace:
        model(story, torch.tensor([[1, 2]]))
    assert trace[0].weights.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("scheme", ["sentence", "story"])
def test_random_noise_acts_only_in_training(scheme):
    torch.manual_seed(0)
    model = MemN2N(MemN2NConfig(embed_dim=8, hops=2, memory_size=10, random_noise=0.5, noise_scheme=scheme), 12)
    story, question = torch.randint(1, 12, (4, 6, 3)), torch.randint(1, 12, (4, 3))
    model.eval()
    torch.testing.assert_close(model(story, question), model(story, question))
    model.train()
    assert not torch.allclose(model(story, question), model(story, question))


@pytest.mark.parametrize("tying, noise", [("adjacent", 0.0), ("layerwise", 0.1)])
def test_overfits_a_few_generated_stories(tying, noise):
    torch.manual_seed(0)
    examples = generate_babi(2, num_stories=12, seed=0)
    vocab = Vocabulary(examples)
    data = to_tensors(examples, vocab, memory_size=10)
    model = MemN2N(MemN2NConfig(embed_dim=24, hops=3, memory_size=10, tying=tying, random_noise=noise), len(vocab))
    fit(
        lambda: F.cross_entropy(model(data.story, data.question, data.story_mask), data.answer),
        model.parameters(),
        steps=200,
        lr=0.02,
        optimizer=torch.optim.Adam,
    )
    model.eval()
    accuracy = (model(data.story, data.question, data.story_mask).argmax(-1) == data.answer).float().mean()
    assert accuracy.item() == 1.0


@pytest.mark.parametrize(
    "field, value",
    [
        ("embed_dim", 0),
        ("hops", 0),
        ("memory_size", -1),
        ("encoding", "cnn"),
        ("tying", "none"),
        ("random_noise", 1.0),
        ("noise_scheme", "uniform"),
        ("init_std", 0.0),
        ("linear_start_patience", -1),
        ("linear_start_steps", -1),
    ],
)
def test_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        MemN2NConfig(**{field: value})


def test_memory_size_zero_keeps_the_stories_sentences():
    model = MemN2N(MemN2NConfig(memory_size=0, hops=2), 12, num_sentences=7)
    assert model.memory_size == 7 and [tuple(t.shape) for t in model.temporal] == [(7, 20)] * 3
    assert MemN2N(MemN2NConfig(memory_size=3), 12, num_sentences=7).memory_size == 3
    with pytest.raises(ValueError, match=r"^memory_size must be >= 1 \(or 0 with num_sentences >= 1\), got 0"):
        MemN2N(MemN2NConfig(memory_size=0), 12)
    with pytest.raises(ValueError, match=r"^vocab_size must be >= 1, got 0"):
        MemN2N(MemN2NConfig(), 0)


@pytest.mark.parametrize("path", ["eager", "fast"])
@pytest.mark.parametrize("tying, encoding", [("adjacent", "position"), ("layerwise", "bow")])
def test_all_memory_tables_in_one_product_equal_each_table_alone(tying, encoding, path):
    torch.manual_seed(0)
    model = MemN2N(MemN2NConfig(embed_dim=6, hops=3, memory_size=5, tying=tying, encoding=encoding), 11)
    model.set_path(path)
    story = torch.randint(0, 11, (3, 4, 5))  # (b, m, s), padding anywhere
    ages = torch.randint(0, 5, (3, 4))  # (b, m)
    memories = model._memories(story, ages)
    assert len(memories) == (4 if tying == "adjacent" else 2)
    for table, got in enumerate(memories):
        want = encode_sentences(model.embeddings[table], story, encoding) + model.temporal[table][ages]  # (b, m, d)
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    "tying, encoding, temporal",
    [("adjacent", "position", True), ("layerwise", "bow", True), ("adjacent", "bow", False),
     ("adjacent", "centred", True)],
)
def test_fast_path_gives_the_eager_answers_and_gradients(tying, encoding, temporal):
    torch.manual_seed(0)
    cfg = MemN2NConfig(embed_dim=6, hops=3, memory_size=4, tying=tying, encoding=encoding, temporal=temporal,
                       random_noise=0.3)  # fmt: skip
    eager = MemN2N(cfg, 13).double()
    fast = MemN2N(cfg, 13).double()
    fast.load_state_dict(eager.state_dict())
    eager.set_path("eager")
    story = torch.randint(0, 13, (5, 6, 7))  # (b, m, s); more sentences than memory slots
    story[0] = 0  # a story with no sentence at all
    story[1, :, 3:] = 0  # padding at the end of every sentence
    question = torch.randint(1, 13, (5, 3))  # (b, q)
    noise = torch.rand(5, 6, dtype=torch.float64)  # (b, m): RN's empty memories, the same for both
    results = []
    for model in (eager, fast):
        logits = model(story, question, noise=noise)  # (b, V)
        grads = torch.autograd.grad(logits.square().sum(), list(model.parameters()))
        results.append((logits, grads))
    torch.testing.assert_close(results[1][0], results[0][0])
    for got, want in zip(results[1][1], results[0][1], strict=True):
        torch.testing.assert_close(got, want)


def test_centred_encoding_weights_the_time_row_as_the_sentences_last_word():
    torch.manual_seed(0)
    model = MemN2N(MemN2NConfig(embed_dim=4, hops=1, memory_size=3, encoding="centred"), 9)
    story = torch.tensor([[[3, 4, 0], [5, 0, 0]]])  # (1, 2, 3): J = 3 + 1 for the time word
    ages = sentence_ages(story.ne(0).any(-1), 3)  # (1, 2)
    got = model._memories(story, ages)[0]  # (1, 2, d)
    d, fixed = 4, 4
    last = torch.tensor([1 + 4 * (k - (d + 1) / 2) * (fixed - (fixed + 1) / 2) / (d * fixed) for k in range(1, d + 1)])
    want = encode_sentences(model.embeddings[0], story, "centred", length=fixed) + model.temporal[0][ages] * last
    torch.testing.assert_close(got, want)


def test_zero_empty_slots_equal_a_softmax_over_every_slot_with_zero_vectors():
    torch.manual_seed(0)
    slots = 6
    model = MemN2N(MemN2NConfig(embed_dim=5, hops=2, memory_size=slots, empty_slots="zero", temporal=False), 10)
    model.eval()
    story = torch.randint(1, 10, (3, slots, 4))  # (b, m, s)
    story[0, :4] = 0  # 2 sentences, 4 empty slots
    story[1, :1] = 0  # 5 sentences
    # story 2: every slot full, no empty slot: the plain softmax
    question = torch.randint(1, 10, (3, 3))
    with capture(model) as trace:
        logits = model(story, question)
    # the same hops by hand, every slot in the softmax, an empty slot a zero key and value
    tables = [e.weight for e in model.embeddings]
    u = encode_sentences(model.embeddings[0], question, "position")  # (b, d)
    present = story.ne(0).any(-1)  # (b, m)
    for hop in range(2):
        keys = encode_sentences(model.embeddings[hop], story, "position") * present[..., None]  # (b, m, d)
        values = encode_sentences(model.embeddings[hop + 1], story, "position") * present[..., None]
        p = torch.softmax(torch.einsum("bd,bmd->bm", u, keys), -1)  # (b, m), empty slots score 0
        torch.testing.assert_close(trace[hop].weights[:, 0, 0], p * present)  # the sentences' weights
        u = u + torch.einsum("bm,bmd->bd", p, values)
    torch.testing.assert_close(logits, u @ tables[-1].t())
    masked = MemN2N(MemN2NConfig(embed_dim=5, hops=2, memory_size=slots, temporal=False), 10).eval()
    masked.load_state_dict(model.state_dict())
    assert torch.allclose(masked(story, question)[2], logits[2], atol=1e-6)  # no empty slot: the same
    assert not torch.allclose(masked(story, question)[0], logits[0], atol=1e-4)


@pytest.mark.parametrize("tying", ["adjacent", "layerwise"])
def test_time_in_tables_names_each_word_table_with_its_temporal_table(tying):
    model = MemN2N(MemN2NConfig(embed_dim=8, hops=3, memory_size=10, tying=tying, time_in_tables=True), 12)
    named = dict(model.named_parameters())
    groups = model.clip_groups()
    assert len(groups) == (4 if tying == "adjacent" else 2)
    for words, times in groups:
        assert named[words].shape == (12, 8) and named[times].shape == (10, 8)
    assert MemN2N(MemN2NConfig(embed_dim=8, hops=3, memory_size=10, tying=tying), 12).clip_groups() == []
    assert MemN2N(MemN2NConfig(embed_dim=8, memory_size=10, temporal=False, time_in_tables=True), 12).clip_groups() == []



def released_code_forward(model, story, question):
    """The released code's forward, padding read as the nil word (row 0) at every position: logits.

    Adjacent tying, centred PE with J = s + 1, temporal encoding (the time word last), every slot
    in the softmax, an empty slot all nil words, eval mode (no noise). By loops over positions.
    """
    d, hops = model.config.embed_dim, model.config.hops
    b, m, s = story.shape
    J = s + 1
    k = torch.arange(1, d + 1, dtype=torch.float32)
    weight = [1 + 4 * (k - (d + 1) / 2) * (j - (J + 1) / 2) / (d * J) for j in range(1, J + 1)]  # J x (d,)
    tables = [e.weight for e in model.embeddings]
    present = story.ne(0).any(-1)  # (b, m)
    ages = sentence_ages(present, model.memory_size)  # (b, m)

    def sentences(table, times):
        out = sum(weight[j] * table[story[..., j]] for j in range(s))  # (b, m, d): padding reads row 0
        time_word = torch.where(present[..., None], times[ages], table[0])  # an empty slot's time word is nil
        return out + weight[J - 1] * time_word

    u = sum(weight[j] * tables[0][question[:, j]] for j in range(question.shape[1]))  # (b, d)
    for hop in range(hops):
        keys = sentences(tables[hop], model.temporal[hop] * 1.0)
        values = sentences(tables[hop + 1], model.temporal[hop + 1] * 1.0)
        p = torch.softmax(torch.einsum("bd,bmd->bm", u, keys), -1)  # (b, m)
        u = u + torch.einsum("bm,bmd->bd", p, values)
    return u @ tables[-1].t()


def test_nil_gradient_gives_row_0_the_released_codes_gradient_and_changes_no_answer():
    torch.manual_seed(0)
    slots, v = 6, 11
    config = MemN2NConfig(embed_dim=6, hops=3, memory_size=slots, encoding="centred", empty_slots="zero")
    story = torch.randint(1, v, (3, slots, 4))  # (b, m, s), words first in each sentence
    story[0, :4] = 0  # 2 sentences and 4 empty slots
    story[1, :, 2:] = 0  # padding inside every sentence
    story[2, :1] = 0
    question = torch.tensor([[3, 5, 0], [7, 0, 0], [2, 4, 9]])
    target = torch.tensor([1, 5, 8])
    runs = {}
    for nil in (False, True):
        model = MemN2N(dataclasses.replace(config, nil_gradient=nil), v).eval()
        if runs:
            model.load_state_dict(runs[False][0].state_dict())
        F.cross_entropy(model(story, question), target).backward()
        runs[nil] = (model, model(story, question).detach())
    reference = MemN2N(config, v).eval()
    reference.load_state_dict(runs[False][0].state_dict())
    logits = released_code_forward(reference, story, question)
    F.cross_entropy(logits, target).backward()
    (plain, plain_logits), (nil, nil_logits) = runs[False], runs[True]
    torch.testing.assert_close(nil_logits, plain_logits)  # the nil rows change no answer
    torch.testing.assert_close(logits, nil_logits, atol=1e-5, rtol=1e-5)
    for mine, theirs, without in zip(nil.parameters(), reference.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, atol=1e-5, rtol=1e-4)  # row 0 too
        torch.testing.assert_close(mine.grad[1:], without.grad[1:], atol=1e-6, rtol=1e-5)
    assert all(e.weight.grad[0].norm() > 1e-3 for e in nil.embeddings)
    assert all(e.weight.grad[0].norm() < 1e-6 for e in plain.embeddings[:-1])  # without: only W's answers reach it


def test_nil_gradient_needs_an_encoding_that_weighs_padding():
    with pytest.raises(ValueError, match="nil_gradient"):
        MemN2NConfig(nil_gradient=True)
    MemN2NConfig(nil_gradient=True, encoding="bow")
