"""More than one process: `torchrun --nproc_per_node=N -m attnlab train ...`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; we join a process group (gloo on CPU, nccl on
GPU) and wrap the model in DistributedDataParallel. Every process draws the same global batch
from the same generator and keeps its own rows (rank, rank + world, ...), so N processes see
exactly the batch one process would, and DDP's gradient average equals the one-process gradient.
Only rank 0 writes files or shows progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from attnlab.errors import ConfigError
from attnlab.tasks.base import Batch


@dataclass(frozen=True)
class Processes:
    """Where this process stands among the processes of one run."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when there is one; 'cpu', 'cuda', 'cuda:1', 'mps' are checked to be present.

    Raises:
        ConfigError: the device is not a device name, or this machine does not have it.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: {name!r} is not a device (auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"train.device is {name!r} but this machine has no CUDA device")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"train.device is {name!r} but this machine has {count} CUDA device(s): cuda:0..{count - 1}"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device is {name!r} but this machine has no MPS device")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"train.device: {name!r} is not a device (auto, cpu, cuda, cuda:N or mps)")
    return device


def slow_bfloat16(device: torch.device) -> str | None:
    """Why bfloat16 autocast will be slow on device, or None.

    A CPU without AVX-512 BF16 or AMX has no bfloat16 arithmetic; there a training step under autocast
    measured 5-10x slower than in float32 (docs/benchmarks.md, section 5). Other devices, and a torch
    without these probes, get None.
    """
    if device.type != "cpu":
        return None
    try:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        return None
    if native:
        return None
    return (
        f"train.precision=bfloat16: this CPU ({capability}) has no AVX-512 BF16 or AMX, so bfloat16 is "
        "emulated and each step is several times slower than in float32"
    )


def start(device: str = "auto") -> Processes:
    """Join the process group when launched by torchrun; a single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Processes(device=resolve_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Processes(rank=rank, world_size=world_size, device=dev)


def stop(procs: Processes) -> None:
    if procs.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, procs: Processes) -> nn.Module:
    """The model as this process should call it (DDP when distributed)."""
    if not procs.distributed:
        return model
    ids = [procs.device.index] if procs.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def shard(batch: Batch, procs: Processes) -> Batch:
    """This process's rows of the global batch."""
    if not procs.distributed:
        return batch
    if len(batch) % procs.world_size:
        raise ConfigError(f"train.batch_size {len(batch)} is not divisible by {procs.world_size} processes")
    return batch.rows(slice(procs.rank, None, procs.world_size))


def barrier(procs: Processes) -> None:
    if procs.distributed:
        dist.barrier()
