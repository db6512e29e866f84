import json
import re

from attnlab.tour import core_section, run_tour


def test_core_section_reports_agreement():
    core = core_section()
    assert core["fast_vs_eager_max_abs_diff"] < 1e-5
    assert core["weights_rows_sum_to_one"] and core["future_weight"] == 0.0
    assert core["why_not_fast_path"]["scaled_dot"] == "on the fast path"
    assert "need_weights" in core["why_not_fast_path"]["need_weights"]


def test_quick_tour_writes_a_report_whose_images_exist(tmp_path):
    report = run_tour(tmp_path / "t", quick=True)
    page = report.read_text()
    for heading in ("One attention core", "growing distance", "reverse a sequence", "learns to copy",
                    "Attention between two sentences", "A memory network reads a story",
                    "Memory that is written as well as read", "Glimpses: attention that moves the eye",
                    "Self-attention on real language"):
        assert heading in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 6
    for src in images:
        assert (tmp_path / "t" / src).stat().st_size > 1000, src
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert {s["model"] for s in metrics["families"]["long_range"]["summary"]} == {"mlp", "cnn", "rnn", "lstm", "transformer"}
    assert (tmp_path / "t" / "long_range" / "summary.md").is_file()
    # a second tour into the same folder reuses the finished runs instead of failing or retraining
    weights = next((tmp_path / "t" / "copy" / "runs").iterdir()) / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    run_tour(tmp_path / "t", quick=True)
    assert weights.stat().st_mtime_ns == stamp
