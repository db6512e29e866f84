import os
import subprocess
import sys

import pytest
import torch

from attnlab.tasks import build_task
from attnlab.train import distributed, load_run, resolve, train

ARGS = ["copy", "--model", "transformer", "--task.length=4", "--model.num_layers=1", "--train.steps=6",
        "--train.eval_every=3", "--train.eval_size=16", "--train.batch_size=8", "--train.device=cpu",
        "--train.seed=3", "--no-progress"]


def test_shards_partition_the_global_batch():
    batch = build_task("copy").sample(6, torch.Generator().manual_seed(0))
    parts = [distributed.shard(batch, distributed.Processes(rank=r, world_size=2)) for r in (0, 1)]
    assert torch.equal(torch.cat([p.inputs for p in parts]).sort(0).values, batch.inputs.sort(0).values)
    assert torch.equal(parts[1].inputs, batch.inputs[1::2])
    from attnlab.errors import ConfigError

    with pytest.raises(ConfigError, match="not divisible by 4 processes"):
        distributed.shard(batch, distributed.Processes(rank=0, world_size=4))


def test_two_torchrun_processes_train_the_same_weights_as_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "attnlab", "train", *ARGS, "--out", str(tmp_path / "two")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("test {") == 1  # only rank 0 reports
    config = resolve({"task": {"name": "copy", "length": 4}, "model": {"name": "transformer", "num_layers": 1}},
                     {"train": {"steps": 6, "eval_every": 3, "eval_size": 16, "batch_size": 8, "device": "cpu",
                                "seed": 3}})
    train(config, tmp_path / "one", progress=False)
    one, two = load_run(tmp_path / "one").model.state_dict(), load_run(tmp_path / "two").model.state_dict()
    for name in one:
        # the gradient all-reduce sums in another order than one process does: equal to float rounding
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5, msg=name)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


@pytest.mark.parametrize(("avx512_bf16", "amx", "slow"), [(False, False, True), (True, False, False), (False, True, False)])
def test_slow_bfloat16_names_a_cpu_without_bfloat16_arithmetic(monkeypatch, avx512_bf16, amx, slow):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    note = distributed.slow_bfloat16(torch.device("cpu"))
    assert (note is not None) == slow
    if slow:
        assert note.startswith("train.precision=bfloat16: this CPU (AVX2) has no AVX-512 BF16 or AMX")
    assert distributed.slow_bfloat16(torch.device("meta")) is None  # only CPUs are probed
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert distributed.slow_bfloat16(torch.device("cpu")) is None  # a torch without the probe: nothing said


def test_train_says_once_when_bfloat16_will_be_slow(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(distributed, "slow_bfloat16", lambda device: f"slow on {device}")
    base = ["--train.steps=2", "--train.eval_every=2", "--train.eval_size=8", "--train.batch_size=4",
            "--train.device=cpu", "--no-progress"]
    from attnlab.cli import main

    main(["train", "copy", "--model", "transformer", "--task.length=4", "--model.num_layers=1", *base,
          "--train.precision=bfloat16", "--out", str(tmp_path / "low")])
    assert capsys.readouterr().err.count("slow on cpu") == 1
    main(["train", "copy", "--model", "transformer", "--task.length=4", "--model.num_layers=1", *base,
          "--out", str(tmp_path / "full")])
    assert "slow on" not in capsys.readouterr().err  # float32: nothing to say
