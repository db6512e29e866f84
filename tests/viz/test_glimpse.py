"""Drawing glimpse paths: read back from a trace, one panel per image, squares where the patches were."""

import pytest
import torch
from matplotlib.patches import Rectangle

from attnlab.core import capture
from attnlab.glimpse import RAM, RAMConfig, pixel_centres
from attnlab.viz.glimpse import draw_glimpses, glimpse_figure, glimpse_paths


def traced_run(b=5):
    torch.manual_seed(0)
    model = RAM(RAMConfig(glimpse_size=4, num_scales=2, num_glimpses=3, glimpse_hidden=8, glimpse_dim=8,
                          core_size=8), num_classes=4)
    images = torch.rand(b, 1, 20, 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), capture(model) as trace:
        out = model.train()(images)  # sampled locations: each image's path differs
    return images, out, trace


def test_glimpse_paths_are_the_traced_locations():
    _, out, trace = traced_run()
    locations, meta = glimpse_paths(trace)
    torch.testing.assert_close(locations, out.locations)
    assert meta == {"glimpse_size": 4, "num_scales": 2, "scale_factor": 2, "path": ""}
    with capture(torch.nn.Linear(2, 2)) as empty:
        pass
    with pytest.raises(ValueError, match="no 'glimpse' records"):
        glimpse_paths(empty)


def test_draws_a_png_with_one_panel_per_image(tmp_path):
    images, out, trace = traced_run()
    locations, meta = glimpse_paths(trace)
    meta.pop("path")
    predictions = out.logits.argmax(-1).tolist()
    boxes = torch.tensor([[2, 3, 5, 6]] * 5)
    path = draw_glimpses(images, locations, tmp_path / "figs" / "glimpses.png", labels=[0, 1, 2, 3, 0],
                         predictions=predictions, boxes=boxes, columns=2, **meta)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    fig = glimpse_figure(images, locations, labels=[0, 1, 2, 3, 0], predictions=predictions, boxes=boxes,
                         columns=2, **meta)
    axes = fig.axes
    assert len(axes) == 5
    centres = pixel_centres(locations, 20, 20)  # (5, 3, 2)
    for i, ax in enumerate(axes):
        line = ax.lines[0]
        assert list(line.get_xdata()) == centres[i, :, 1].tolist()
        assert list(line.get_ydata()) == centres[i, :, 0].tolist()
        squares = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(squares) == 3 * 2 + 1  # a square per glimpse and scale, and the box
        assert sorted({p.get_width() for p in squares}) == [4, 6, 8]
        assert [t.get_text() for t in ax.texts] == ["1", "2", "3"]
        assert ax.get_title() == f"{[0, 1, 2, 3, 0][i]} / {predictions[i]}"


def test_draw_run_draws_a_ram_runs_glimpse_paths(tmp_path):
    from attnlab.train import load_run, resolve, train
    from attnlab.viz.runs import draw_run

    config = resolve({"task": {"name": "digits", "source": "small", "setting": "translated", "size": 40},
                      "model": {"name": "ram", "num_glimpses": 3, "glimpse_hidden": 8, "glimpse_dim": 8, "core_size": 8},
                      "train": {"steps": 2, "eval_every": 2, "eval_size": 8, "batch_size": 4}})
    train(config, tmp_path / "run", progress=False)
    paths = draw_run(load_run(tmp_path / "run"), tmp_path / "viz", examples=2)
    assert [p.name for p in paths] == ["glimpses.png", "glimpses.txt"]
    assert paths[0].stat().st_size > 1000 and paths[1].read_text().count("answer:") == 4  # at least 4 drawn


def test_dram_glimpses_are_coloured_by_the_label_they_served(tmp_path):
    from attnlab.glimpse import DRAM, DRAMConfig

    torch.manual_seed(0)
    model = DRAM(DRAMConfig(glimpse_size=4, num_scales=2, glimpses_per_label=2, glimpse_hidden=8, feature_dim=8,
                            core_size=8, context_size=4, context_hidden=8), num_classes=10, num_labels=2)
    images = torch.rand(3, 1, 20, 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), capture(model) as trace:
        out = model.train()(images)
    locations, meta = glimpse_paths(trace)
    torch.testing.assert_close(locations, out.locations)
    assert meta["labels"] == [0, 0, 1, 1]
    meta.pop("path")
    labels = meta.pop("labels")
    boxes = torch.tensor([[[0, 0, 5, 5], [10, 10, 5, 5]]] * 3)  # (3, 2, 4): both objects outlined
    fig = glimpse_figure(images, locations, glimpse_labels=labels, boxes=boxes, **meta)
    for ax in fig.axes:
        squares = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(squares) == 4 * 2 + 2  # a square per glimpse and scale, and both boxes
        colours = [tuple(t.get_color()) for t in ax.texts]  # the numbers 1..4, coloured by label
        assert colours[0] == colours[1] and colours[2] == colours[3] and colours[0] != colours[2]
    with pytest.raises(ValueError, match="glimpse_labels must hold g=4 labels"):
        glimpse_figure(images, locations, glimpse_labels=[0, 1], **meta)
    path = draw_glimpses(images, locations, tmp_path / "dram.png", glimpse_labels=labels, **meta)
    assert path.stat().st_size > 1000


def test_draw_run_draws_a_dram_run_on_digit_pairs(tmp_path, monkeypatch):
    import attnlab.viz.glimpse as module
    from attnlab.train import load_run, resolve, train
    from attnlab.viz.runs import draw_run

    figures = []  # the figure drawn, kept to read its titles
    monkeypatch.setattr(module, "glimpse_figure", lambda *a, **k: figures.append(glimpse_figure(*a, **k)) or figures[-1])

    config = resolve({"task": {"name": "digit_pairs", "source": "small", "size": 56, "answer": "digits"},
                      "model": {"name": "dram", "glimpses_per_label": 2, "glimpse_hidden": 8, "feature_dim": 8,
                                "core_size": 8, "context_hidden": 8},
                      "train": {"steps": 2, "eval_every": 2, "eval_size": 8, "batch_size": 4}})
    train(config, tmp_path / "run", progress=False)
    paths = draw_run(load_run(tmp_path / "run"), tmp_path / "viz", examples=2)
    assert [p.name for p in paths] == ["glimpses.png", "glimpses.txt"]
    assert paths[0].stat().st_size > 1000 and paths[1].read_text().count("answer:") == 4
    lines = paths[1].read_text().splitlines()  # each pair named as the task names it, "3+7", in both files
    named = {key: [line.split(": ")[1] for line in lines if line.startswith(key)] for key in ("answer", "predicted")}
    assert [ax.get_title() for ax in figures[0].axes] == [f"{a} / {p}" for a, p in zip(*named.values(), strict=True)]
    assert all(len(a) == 3 and a[1] == "+" for a in named["answer"])
