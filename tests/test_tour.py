import torch

from attnlab.tour import SEP, copy_batch, core_section


def test_copy_batch_is_deterministic_and_copies():
    a = copy_batch(4, 5, 16, torch.Generator().manual_seed(3))
    b = copy_batch(4, 5, 16, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (4, 11)
    assert (a[:, 5] == SEP).all() and torch.equal(a[:, :5], a[:, 6:])
    assert a[:, :5].min() >= 2 and a.max() < 16


def test_core_section_reports_agreement():
    core = core_section()
    assert core["fast_vs_eager_max_abs_diff"] < 1e-5
    assert core["weights_rows_sum_to_one"] and core["future_weight"] == 0.0
    assert core["why_not_fast_path"]["scaled_dot"] == "on the fast path"
    assert "need_weights" in core["why_not_fast_path"]["need_weights"]
