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
