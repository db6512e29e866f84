from attnlab.viz import draw_comparison, draw_curve_panels, draw_curves


def summary(settings):
    return [{"model": m, "setting": s, "mean": 0.5 + 0.1 * i, "min": 0.4, "max": 0.9}
            for i, m in enumerate(["lstm", "transformer"]) for s in settings]


def test_one_line_per_model_against_the_setting(tmp_path):
    fig = draw_comparison(summary(["8", "32", "128"]), metric="accuracy", x_label="task.distance",
                          path=tmp_path / "c.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["lstm", "transformer"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "task.distance"
    assert (tmp_path / "c.png").stat().st_size > 5000


def test_bars_without_a_sweep():
    fig = draw_comparison(summary([None]), metric="accuracy")
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [0.5, 0.6]


def test_draw_results_plots_a_comparison_folder(tmp_path):
    import json

    from attnlab.viz.curves import draw_results

    rows = summary(["8", "32"])
    (tmp_path / "results.json").write_text(json.dumps({"task": "long_range", "metric": "accuracy",
                                                       "sweep": "task.distance", "summary": rows}))
    path = draw_results(tmp_path)
    assert path == tmp_path / "plot.png" and path.stat().st_size > 5000


def test_many_numeric_settings_make_a_continuous_axis_not_a_tick_each():
    minutes = [0.5 + 7.3 * i for i in range(20)]  # a learning curve against training time
    fig = draw_comparison(summary(minutes), metric="BLEU", x_label="training minutes")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    assert len(ax.get_xticks()) < len(minutes)
    few = draw_comparison(summary([1.0, 2.0, 4.0]), metric="BLEU", x_label="pairs").axes[0]
    assert [t.get_text() for t in few.get_xticklabels()] == ["1.0", "2.0", "4.0"]


def test_learning_curves_one_line_per_label_through_its_points(tmp_path):
    curves = {"seed 0": [(100, 0.5), (200, 0.1), (300, 0.02)], "seed 1": [(100, 0.6), (250, 0.05)]}
    fig = draw_curves(curves, y_label="error", log_y=True, title="runs", path=tmp_path / "curves.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["seed 0", "seed 1"]
    assert [list(line.get_xdata()) for line in ax.get_lines()] == [[100, 200, 300], [100, 250]]
    assert list(ax.get_lines()[1].get_ydata()) == [0.6, 0.05]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear" and ax.get_title() == "runs"
    assert (tmp_path / "curves.png").stat().st_size > 5000


def test_curve_panels_one_panel_per_setting_one_colour_per_label(tmp_path):
    panels = {
        "translated": {"ram": [[(1, 0.5), (2, 0.1)], [(1, 0.6), (2, 0.2)]], "cnn": [[(1, 0.3), (2, 0.05)]]},
        "cluttered": {"cnn": [[(1, 0.4), (3, 0.2)]]},
    }
    fig = draw_curve_panels(panels, y_label="error", log_y=True, columns=3, title="runs", path=tmp_path / "p.png")
    first, second = fig.axes
    assert [first.get_title(), second.get_title()] == ["translated", "cluttered"]
    assert [t.get_text() for t in first.get_legend().get_texts()] == ["ram", "cnn"]  # one entry per label, not per run
    assert [list(line.get_xdata()) for line in first.get_lines()] == [[1, 2], [1, 2], [1, 2]]
    colours = [line.get_color() for line in first.get_lines()]
    assert colours[0] == colours[1] != colours[2]  # a model's seeds share its colour
    assert second.get_lines()[0].get_color() == colours[2]  # and it keeps it in every panel
    assert list(second.get_lines()[0].get_ydata()) == [0.4, 0.2]
    assert first.get_yscale() == "log" and fig.get_suptitle() == "runs"
    assert (tmp_path / "p.png").stat().st_size > 5000


def test_long_legend_labels_wrap_within_their_panel():
    from attnlab.viz.curves import LEGEND_CHARACTERS

    long = "ram, guided start, 20 epochs, conv reader, baseline and jitter guided, one step in 4 guided (test)"
    fig = draw_curve_panels({"cluttered100": {long: [[(1, 0.5), (2, 0.1)]], "cnn": [[(1, 0.4), (2, 0.2)]]}},
                            y_label="error")
    first, second = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(first.splitlines()) > 1 and max(len(line) for line in first.splitlines()) <= LEGEND_CHARACTERS
    assert " ".join(line.strip() for line in first.splitlines()) == long  # wrapped, nothing lost
    assert second == "cnn"
