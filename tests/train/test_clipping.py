import pytest
import torch

from attnlab.train.clipping import clip_each_, clip_gradients_, clip_groups


def test_clip_each_scales_each_gradient_by_its_own_spectral_or_l2_norm():
    torch.manual_seed(0)
    matrix, vector, small = (torch.nn.Parameter(torch.zeros(shape)) for shape in ((6, 4), (5,), (3, 3)))
    matrix.grad, vector.grad, small.grad = torch.randn(6, 4) * 10, torch.randn(5) * 10, torch.randn(3, 3) * 1e-3
    before = [p.grad.clone() for p in (matrix, vector, small)]
    clip_each_([matrix, vector, small], 1.0)
    assert torch.linalg.matrix_norm(matrix.grad, ord=2).item() == pytest.approx(1.0, rel=1e-4)
    assert torch.linalg.vector_norm(vector.grad).item() == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(small.grad, before[2])  # under the limit: untouched
    torch.testing.assert_close(matrix.grad / matrix.grad.norm(), before[0] / before[0].norm())  # direction kept
    seeds = torch.nn.Parameter(torch.zeros(2, 6, 4))  # two seeds stacked: each clipped alone
    seeds.grad = torch.stack([before[0], before[0] * 1e-4])
    clip_each_([seeds], 1.0, stacked=True)
    torch.testing.assert_close(seeds.grad[0], matrix.grad)
    torch.testing.assert_close(seeds.grad[1], before[0] * 1e-4)


def test_clip_gradients_total_norm_each_and_per_seed():
    def param(grad: torch.Tensor) -> torch.nn.Parameter:
        p = torch.nn.Parameter(torch.zeros_like(grad))
        p.grad = grad.clone()
        return p

    a, b = param(torch.tensor([3.0, 0.0])), param(torch.tensor([0.0, 4.0]))
    clip_gradients_([a, b], 1.0)  # together: total norm 5 -> 1
    torch.testing.assert_close(torch.cat([a.grad, b.grad]), torch.tensor([0.6, 0.0, 0.0, 0.8]))
    a, b = param(torch.tensor([3.0, 0.0])), param(torch.tensor([0.0, 4.0]))
    clip_gradients_([a, b], 1.0, each=True)  # each alone: both down to norm 1
    torch.testing.assert_close(torch.cat([a.grad, b.grad]), torch.tensor([1.0, 0.0, 0.0, 1.0]))
    a, b = param(torch.tensor([3.0, 0.0])), param(torch.tensor([0.0, 4.0]))
    clip_gradients_([a, b], 0.0)  # max_norm 0: no clipping
    torch.testing.assert_close(torch.cat([a.grad, b.grad]), torch.tensor([3.0, 0.0, 0.0, 4.0]))
    weight = param(torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]]))  # two seeds stacked: norms 5 and 0.5
    clip_gradients_([weight], 1.0, stacked=True)  # each seed by its own total norm
    torch.testing.assert_close(weight.grad, torch.tensor([[0.6, 0.8, 0.0], [0.3, 0.4, 0.0]]), atol=1e-5, rtol=1e-5)


def test_a_group_is_clipped_as_one_matrix_of_its_rows():
    torch.manual_seed(0)
    words, times, alone = (torch.nn.Parameter(torch.zeros(shape)) for shape in ((7, 4), (3, 4), (5, 4)))
    words.grad, times.grad, alone.grad = torch.randn(7, 4) * 10, torch.randn(3, 4) * 10, torch.randn(5, 4) * 10
    rows = torch.cat([words.grad, times.grad])
    scale = 1.0 / torch.linalg.matrix_norm(rows, ord=2)
    expected_alone = alone.grad * (1.0 / torch.linalg.matrix_norm(alone.grad, ord=2))
    clip_each_([words, times, alone], 1.0, groups=[(words, times)])
    torch.testing.assert_close(torch.cat([words.grad, times.grad]), rows * scale)  # one norm, one scale
    assert torch.linalg.matrix_norm(times.grad, ord=2).item() < 1.0 - 1e-3  # not clipped up to the limit alone
    torch.testing.assert_close(alone.grad, expected_alone)
    stacked_w, stacked_t = torch.nn.Parameter(torch.zeros(2, 7, 4)), torch.nn.Parameter(torch.zeros(2, 3, 4))
    stacked_w.grad = torch.stack([rows[:7] * scale, rows[:7] * 100])  # seed 0: already clipped; seed 1: not
    stacked_t.grad = torch.stack([rows[7:] * scale, rows[7:] * 100])
    clip_each_([stacked_w, stacked_t], 1.0, stacked=True, groups=[(stacked_w, stacked_t)])
    torch.testing.assert_close(stacked_w.grad[0], words.grad)
    torch.testing.assert_close(stacked_w.grad[1], words.grad, rtol=1e-4, atol=1e-6)  # each seed by its own norm
    torch.testing.assert_close(stacked_t.grad[1], times.grad, rtol=1e-4, atol=1e-6)


def test_clip_groups_reads_the_model_names():
    class Tables(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.words, self.times, self.other = (torch.nn.Parameter(torch.zeros(2, 3)) for _ in range(3))

        def clip_groups(self):
            return [("words", "times")]

    model = Tables()
    assert clip_groups(model) == [(model.words, model.times)]
    named = {"words": torch.ones(1), "times": torch.zeros(1), "other": torch.zeros(1)}
    assert clip_groups(model, named) == [(named["words"], named["times"])]
    assert clip_groups(torch.nn.Linear(2, 2)) == []
