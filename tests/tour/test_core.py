"""attnlab.tour.core: the fast and eager paths agree, and each call says why it is eager."""

from pathlib import Path

from attnlab.tour import QUICK, core


def test_core_reports_agreement(tmp_path: Path) -> None:
    result = core.run(tmp_path, QUICK, 0)
    assert result["fast_vs_eager_max_abs_diff"] < 1e-5
    assert result["weights_rows_sum_to_one"] and result["future_weight"] == 0.0
    assert result["why_not_fast_path"]["scaled_dot"] == "on the fast path"
    assert "need_weights" in result["why_not_fast_path"]["need_weights"]
    html = core.render(result)
    assert "weights sum to one: True" in html
    assert "<td>additive</td>" in html and "<td>scaled_dot</td><td>on the fast path</td>" in html
