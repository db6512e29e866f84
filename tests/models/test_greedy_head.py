"""The int8-screened greedy head: its error bound, its argmax against torch.argmax, and greedy decoding."""

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters

from attnlab.core.fast import set_path
from attnlab.models import DecoderLM, TransformerConfig
from attnlab.models.greedy_head import ScreenedHead, kept_screened_head, screen_available

pytestmark = pytest.mark.skipif(
    screen_available(torch.zeros(1, 1)) is not None, reason=str(screen_available(torch.zeros(1, 1)))
)


def inputs(kind: str, d: int, gen: torch.Generator) -> torch.Tensor:
    """(b, d) activations: plain, layer-normed, adversarial for the per-tensor activation scale."""
    x = torch.randn(3, d, generator=gen)  # (3, d)
    if kind == "normed":
        return F.layer_norm(x * 3 + 1, (d,))
    if kind == "outlier":  # one huge entry coarsens the kernel's activation grid for every other one
        x[:, 5] = 300.0
    elif kind == "zeros":
        x = torch.zeros(3, d)
    elif kind == "equal":
        x = torch.full((3, d), 0.7)
    elif kind == "tiny":  # below fbgemm's smallest activation scale
        x = x * 1e-7
    elif kind == "mixed":  # one scale for rows of very different sizes
        x = x * torch.tensor([[1e-3], [1.0], [50.0]])
    elif kind == "positive":
        x = x.abs()
    return x


def weights(V: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """W (V, d) with rows of very different norms, a zero row and a row with one outlier weight."""
    w = torch.randn(V, d, generator=gen) * torch.rand(V, 1, generator=gen) * 0.1  # (V, d)
    w[3] = 0.0
    w[7, 2] = 5.0
    return w


KINDS = ["plain", "normed", "outlier", "zeros", "equal", "tiny", "mixed", "positive"]


@pytest.mark.parametrize("kind", KINDS)
def test_bound_holds_on_random_and_adversarial_inputs(kind):
    gen = torch.Generator().manual_seed(0)
    w = weights(700, 48, gen)
    head = ScreenedHead.of(w)
    for _ in range(5):
        x = inputs(kind, 48, gen)
        z, bound = head.screen(x)  # (b, V) each
        exact = x.double() @ w.double().t()  # (b, V)
        assert z.shape == bound.shape == (3, 700)
        assert ((exact - z.double()).abs() <= bound.double()).all()


def test_screened_argmax_equals_torch_argmax_on_many_random_heads():
    gen = torch.Generator().manual_seed(1)
    for n in range(60):
        V, d = int(torch.randint(2, 3000, (), generator=gen)), int(torch.randint(1, 80, (), generator=gen))
        w = torch.randn(V, d, generator=gen) * 0.05
        x = inputs(KINDS[n % len(KINDS)], d, gen)
        assert torch.equal(ScreenedHead.of(w).argmax(x), F.linear(x, w).argmax(-1)), (V, d, KINDS[n % len(KINDS)])


@pytest.mark.parametrize("gap", [1e-4, -1e-4, 0.0])
def test_planted_near_ties_resolve_like_torch_argmax(gap):
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(4000, 64, generator=gen) * 0.05  # (V, d)
    x = F.layer_norm(torch.randn(2, 64, generator=gen), (64,))  # (2, d)
    for row in range(2):
        best = int(F.linear(x[row], w).argmax())
        rival = (best + 1234) % 4000  # below or above the winner's index: ties must go to the lower
        w[rival] = w[best] + gap * x[row] / x[row].square().sum()  # its logit differs by gap exactly
        got = ScreenedHead.of(w).argmax(x)
        assert torch.equal(got, F.linear(x, w).argmax(-1))
        want = rival if gap > 0 else min(best, rival) if gap == 0 else best
        assert int(got[row]) == want


def test_the_screen_rescores_few_rows_for_typical_states():
    gen = torch.Generator().manual_seed(3)
    head = ScreenedHead.of(torch.randn(20000, 96, generator=gen) * 0.02)
    for _ in range(10):
        head.argmax(F.layer_norm(torch.randn(1, 96, generator=gen), (96,)))
    assert head.calls == 10 and head.rescored / head.calls < 400  # of 20000


def test_kept_head_is_remade_only_when_the_weight_changes():
    owner = torch.nn.Linear(16, 300, bias=False)
    first = kept_screened_head(owner, owner.weight)
    assert kept_screened_head(owner, owner.weight) is first
    with torch.no_grad():
        owner.weight.mul_(2)  # an optimizer step: same storage, new version
    second = kept_screened_head(owner, owner.weight)
    assert second is not first
    x = torch.randn(4, 16)
    assert torch.equal(second.argmax(x), owner(x).argmax(-1))


def tiny_lm(vocab: int = 1500) -> DecoderLM:
    cfg = TransformerConfig(embed_dim=32, num_heads=2, num_layers=1, ff_dim=64, dropout=0.0, positions="learned")
    torch.manual_seed(0)
    return DecoderLM(cfg, vocab, max_len=48).eval()


def test_small_heads_keep_fp32_and_sampling_never_screens():
    lm = tiny_lm()
    assert lm.screened_head() is None  # 1500 x 32 is far below the crossover
    lm.greedy_screen = True
    head = lm.screened_head()
    assert head is not None
    lm.generate(torch.randint(1, 1500, (1, 3)), 4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    lm.generate(torch.randint(1, 1500, (1, 3)), 4, temperature=0, top_k=5)
    assert head.calls == 0
    lm.greedy_screen = False
    assert lm.screened_head() is None


def test_screened_greedy_decoding_gives_eager_tokens_fast_and_compiled():
    lm = tiny_lm()
    prompt = torch.randint(1, 1500, (3, 5), generator=torch.Generator().manual_seed(4))  # (b, t), b > 1
    set_path(lm, "eager")
    want = lm.generate(prompt, 12, temperature=0)
    lm.greedy_screen = True
    set_path(lm, "fast")
    assert torch.equal(lm.generate(prompt, 12, temperature=0), want)
    assert torch.equal(lm.generate(prompt[:1], 12, temperature=0), want[:1])
    set_path(lm, "compiled")
    graphs = counters["stats"]["unique_graphs"]
    assert torch.equal(lm.generate(prompt, 12, temperature=0), want)
    # the step returns the final state: a graph for the first length, one with the length symbolic
    assert counters["stats"]["unique_graphs"] - graphs <= 2
    head = lm.screened_head()
    assert head is not None and head.calls == 3 * 12  # every greedy token came through the screen
