"""K seeds as one vectorised model against K separate runs of the training loop (the oracle)."""

import re

import pytest
import torch

from attnlab.errors import ConfigError
from attnlab.train import checkpoint, compare, load_run, resolve, train
from attnlab.train.vectorised import ensure_seeds, train_seeds, why_not_vectorised

TRAIN = {"steps": 6, "eval_every": 3, "eval_size": 16, "batch_size": 8, "device": "cpu"}
MEMN2N = {"task": {"name": "babi", "generated_stories": 20}, "model": {"name": "memn2n", "embed_dim": 12}}


def configs(base, seeds=(0, 1, 2), **model):
    over = {"model": model, "train": TRAIN}
    return [resolve(base, {**over, "train": {**TRAIN, "seed": s}}) for s in seeds]


def same_records(a, b):
    """metrics.jsonl records equal but for the wall-clock seconds (the group's, not one run's)."""
    drop = ("seconds",)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x, y = ({k: v for k, v in r.items() if k not in drop} for r in (x, y))
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], float):
                assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-5), key
            else:
                assert x[key] == y[key], key


@pytest.mark.parametrize("scheme, grouped, nil", [("sentence", False, False), ("story", True, False), ("story", True, True)])
def test_each_seed_is_the_run_the_loop_makes_alone(tmp_path, scheme, grouped, nil):
    released = {"encoding": "centred", "empty_slots": "zero", "nil_gradient": True} if nil else {}
    runs = configs(MEMN2N, random_noise=0.2, noise_scheme=scheme, time_in_tables=grouped, **released)  # RN: each seed's RNG
    if grouped:  # each word table clipped with its temporal table (train.clip_each), per seed
        runs = [c.replace("train", clip_each=True, clip_norm=0.05) for c in runs]
    together = train_seeds(runs, [tmp_path / f"v{s}" for s in range(3)], progress=False)
    for seed, config in enumerate(runs):
        alone = train(config, tmp_path / f"a{seed}", progress=False)
        assert together[seed]["step"] == alone["step"] == 6
        same_records(checkpoint.read_metrics(tmp_path / f"v{seed}"), checkpoint.read_metrics(tmp_path / f"a{seed}"))
        mine, theirs = load_run(tmp_path / f"v{seed}").model, load_run(tmp_path / f"a{seed}").model
        for (name, p), q in zip(mine.named_parameters(), theirs.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    first, second = (load_run(tmp_path / f"v{s}").model for s in (0, 1))
    assert not torch.equal(next(first.parameters()), next(second.parameters()))  # seeds really differ
    if grouped:  # the groups took effect: each table clipped alone ends elsewhere
        train(runs[0].replace("model", time_in_tables=False), tmp_path / "apart", progress=False)
        apart = dict(load_run(tmp_path / "apart").model.named_parameters())
        assert not torch.allclose(apart["memory.temporal.0"], dict(first.named_parameters())["memory.temporal.0"])
    if nil:  # the nil rows' gradient took effect in the clip
        train(runs[0].replace("model", nil_gradient=False), tmp_path / "no-nil", progress=False)
        plain = dict(load_run(tmp_path / "no-nil").model.named_parameters())
        assert not torch.allclose(plain["memory.embeddings.1.weight"][1:], dict(first.named_parameters())["memory.embeddings.1.weight"][1:])


def test_a_seed_folder_resumes_like_any_run(tmp_path):
    runs = configs(MEMN2N, seeds=(0, 1))
    train_seeds(runs, [tmp_path / "v0", tmp_path / "v1"], progress=False)
    longer = runs[1].replace("train", steps=9)
    resumed = train(longer, tmp_path / "v1", resume=True, progress=False)
    straight = train(longer, tmp_path / "straight", progress=False)
    assert resumed["loss"] == pytest.approx(straight["loss"], rel=1e-4)
    same_records(checkpoint.read_metrics(tmp_path / "v1"), checkpoint.read_metrics(tmp_path / "straight"))


def test_a_seed_that_reaches_its_target_stops_while_the_others_go_on(tmp_path):
    runs = [c.replace("train", target=0.0) if c.train.seed == 1 else c for c in configs(MEMN2N, seeds=(0, 1))]
    runs = [c.replace("train", target=None) if c.train.seed == 0 else c for c in runs]
    with pytest.raises(ConfigError, match="differ in more than train.seed"):
        train_seeds(runs, [tmp_path / "a", tmp_path / "b"], progress=False)
    runs = [c.replace("train", target=0.0) for c in configs(MEMN2N, seeds=(0, 1))]
    summaries = train_seeds(runs, [tmp_path / "c", tmp_path / "d"], progress=False)
    assert [s["step"] for s in summaries] == [3, 3] and all(s["stopped_early"] for s in summaries)


def test_reasons_not_to_vectorise(tmp_path):
    assert why_not_vectorised(configs(MEMN2N, seeds=(0,)), [tmp_path / "a"]) == "one seed: nothing to stack"
    lstm = {"task": {"name": "copy", "length": 3}, "model": {"name": "lstm"}}
    assert "dropout" in why_not_vectorised(configs(lstm, seeds=(0, 1), dropout=0.1), [tmp_path / "a", tmp_path / "b"])
    assert "linear start" in why_not_vectorised(configs(MEMN2N, seeds=(0, 1), linear_start=True), ["x", "y"])
    scheduled = configs(MEMN2N, seeds=(0, 1), linear_start=True, linear_start_patience=0, linear_start_steps=3)
    assert why_not_vectorised(scheduled, [tmp_path / "a", tmp_path / "b"]) is None
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    reason = why_not_vectorised(configs(MEMN2N, seeds=(0, 1)), [tmp_path / "a", tmp_path / "b"])
    assert reason is not None and "already holds files" in reason
    with pytest.raises(ConfigError, match=re.escape("cannot train the seeds as one model: two runs have the same seed")):
        train_seeds(configs(MEMN2N, seeds=(0, 0)), [tmp_path / "c", tmp_path / "d"])


def test_ensure_seeds_reuses_finished_runs_and_falls_back_one_by_one(tmp_path):
    lstm = {"task": {"name": "copy", "length": 3}, "model": {"name": "lstm"}}
    runs = configs(lstm, seeds=(0, 1), dropout=0.1)  # dropout: trained one by one
    folders = [tmp_path / "a", tmp_path / "b"]
    summaries = ensure_seeds(runs, folders)
    assert summaries == [train(c, tmp_path / f"x{c.train.seed}", progress=False) | {"seconds": s["seconds"]}
                         for c, s in zip(runs, summaries)]
    stamp = (folders[0] / checkpoint.WEIGHTS).stat().st_mtime_ns
    assert ensure_seeds(runs, folders) == summaries
    assert (folders[0] / checkpoint.WEIGHTS).stat().st_mtime_ns == stamp


def test_compare_together_gives_the_rows_of_separate_runs(tmp_path):
    over = {"task": {"generated_stories": "20"}, "model": {"embed_dim": "12"}, "train": TRAIN}
    jobs = compare.plan("babi", ["memn2n"], 2, over, None)
    together = compare.run_all(jobs, tmp_path / "t", progress=False, together=True)
    apart = compare.run_all(jobs, tmp_path / "s", progress=False)
    for a, b in zip(together, apart):
        assert a["name"] == b["name"]
        assert a["test"] == pytest.approx(b["test"], rel=1e-4, abs=1e-5)


def test_ram_seeds_draw_their_own_glimpse_locations(tmp_path):
    ram = {"task": {"name": "digits", "source": "small"}, "model": {"name": "ram", "core_size": 16,
           "glimpse_hidden": 8, "glimpse_dim": 8, "num_glimpses": 2}}
    runs = configs(ram, seeds=(0, 1))
    train_seeds(runs, [tmp_path / "v0", tmp_path / "v1"], progress=False)
    for seed, config in enumerate(runs):
        train(config, tmp_path / f"a{seed}", progress=False)
        same_records(checkpoint.read_metrics(tmp_path / f"v{seed}"), checkpoint.read_metrics(tmp_path / f"a{seed}"))


@pytest.mark.parametrize("name", ["ntm", "dnc"])
def test_machines_with_their_own_backward_refuse_to_stack_rather_than_lose_gradients(tmp_path, name):
    # Their fused path is one autograd.Function, which vmap's batched tensors (requires_grad False)
    # would skip; under vmap they run the eager step, which vmap cannot batch: a ConfigError, and
    # ensure_seeds trains them one by one.
    machine = {"task": {"name": "ntm_copy", "max_length": 3}, "model": {"name": name}}
    with pytest.raises(ConfigError, match=re.escape("cannot train the seeds as one model: torch.vmap")):
        train_seeds(configs(machine, seeds=(0, 1), controller_size=8, memory_size=6, word_size=4),
                    [tmp_path / "a", tmp_path / "b"])  # fmt: skip


@pytest.mark.parametrize("clip_each", [False, True])
def test_seeds_under_sgd_and_a_step_schedule_are_the_runs_the_loop_makes_alone(tmp_path, clip_each):
    sgd = {"optimizer": "sgd", "lr": 0.3, "schedule": "step", "decay_every": 2, "warmup_steps": 0, "weight_decay": 0,
           "clip_norm": 0.05, "clip_each": clip_each}  # a low clip: every step is clipped
    runs = [c.replace("train", **sgd) for c in configs(MEMN2N, seeds=(0, 1))]
    together = train_seeds(runs, [tmp_path / f"v{s}" for s in range(2)], progress=False)
    for seed, config in enumerate(runs):
        alone = train(config, tmp_path / f"a{seed}", progress=False)
        assert together[seed]["step"] == alone["step"] == 6
        mine, theirs = load_run(tmp_path / f"v{seed}").model, load_run(tmp_path / f"a{seed}").model
        for (name, p), q in zip(mine.named_parameters(), theirs.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_a_linear_start_ending_at_a_set_step_is_the_run_the_loop_makes_alone(tmp_path):
    runs = configs(MEMN2N, seeds=(0, 1), linear_start=True, linear_start_patience=0, linear_start_steps=3)
    train_seeds(runs, [tmp_path / f"v{s}" for s in range(2)], progress=False)
    for seed, config in enumerate(runs):
        train(config, tmp_path / f"a{seed}", progress=False)
        records = checkpoint.read_metrics(tmp_path / f"v{seed}")
        assert [r.get("linear_start") for r in records if r["split"] == "val"] == [0.0, 0.0]  # ended at step 3
        same_records(records, checkpoint.read_metrics(tmp_path / f"a{seed}"))
        mine, theirs = load_run(tmp_path / f"v{seed}").model, load_run(tmp_path / f"a{seed}").model
        for (name, p), q in zip(mine.named_parameters(), theirs.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    train(configs(MEMN2N, seeds=(0,))[0], tmp_path / "plain", progress=False)  # no LS phase: other weights
    plain, scheduled = load_run(tmp_path / "plain").model, load_run(tmp_path / "v0").model
    assert max((p - q).abs().max().item() for p, q in zip(plain.parameters(), scheduled.parameters())) > 1e-4


def test_stacked_runs_are_continued_stacked_and_end_as_uninterrupted_runs(tmp_path, monkeypatch):
    runs = configs(MEMN2N, seeds=(0, 1), random_noise=0.2, linear_start=True, linear_start_patience=0,
                   linear_start_steps=6)
    folders = [tmp_path / f"v{s}" for s in range(2)]
    train_seeds(runs, folders, progress=False)  # 6 steps: checkpoints at 3 and 6, the LS phase still on
    longer = [c.replace("train", steps=12) for c in runs]
    # the continuation must not fall back to one run at a time
    monkeypatch.setattr("attnlab.train.vectorised.ensure", lambda *a, **k: pytest.fail("continued one by one"))
    assert why_not_vectorised(longer, folders, resume=True) is None
    continued = ensure_seeds(longer, folders)
    assert continued[0]["seconds"] == continued[1]["seconds"]  # one group's clock
    for seed, config in enumerate(longer):
        straight = train(config, tmp_path / f"a{seed}", progress=False)
        assert continued[seed]["step"] == straight["step"] == 12
        records = checkpoint.read_metrics(folders[seed])
        assert [r.get("linear_start") for r in records if r["split"] == "val"] == [1.0, 0.0, 0.0, 0.0]
        same_records(records, checkpoint.read_metrics(tmp_path / f"a{seed}"))  # the 6-step test record dropped
        mine, theirs = load_run(folders[seed]).model, load_run(tmp_path / f"a{seed}").model
        for (name, p), q in zip(mine.named_parameters(), theirs.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_seeds_whose_checkpoints_are_at_different_steps_are_continued_one_by_one(tmp_path):
    runs = configs(MEMN2N, seeds=(0, 1))
    folders = [tmp_path / "v0", tmp_path / "v1"]
    train_seeds([c.replace("train", steps=3) for c in runs], folders, progress=False)
    train(runs[1], folders[1], resume=True, progress=False)  # seed 1 on to step 6, seed 0 left at 3
    longer = [c.replace("train", steps=9) for c in runs]
    assert why_not_vectorised(longer, folders, resume=True) == "the checkpoints are at different steps (3, 6)"
    assert "holds no checkpoint" in why_not_vectorised(longer, [folders[0], tmp_path / "new"], resume=True)
    continued = ensure_seeds(longer, folders)
    for seed, config in enumerate(longer):
        straight = train(config, tmp_path / f"a{seed}", progress=False)
        assert continued[seed]["loss"] == pytest.approx(straight["loss"], rel=1e-4)
