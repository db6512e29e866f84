"""What a run's trainer.safetensors holds, and putting it back: the weights, the optimizer's state,
every random generator (the data's, torch's, Python's and numpy's) and the loop's own state.

A resumed run restores all of it, so it ends bit for bit as one never interrupted
(attnlab.train.loop). The file itself is written and read by attnlab.train.checkpoint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from attnlab.errors import RunError
from attnlab.train import checkpoint


def _unique_state(model: nn.Module) -> dict[str, Tensor]:
    """The state dict without the second name of tied tensors (safetensors stores each once)."""
    seen, out = set(), {}
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tensor.shape, tensor.stride())
        if key not in seen:
            seen.add(key)
            out[name] = tensor
    return out


@dataclass
class GlobalRNG:
    """The global generators `seed_everything` seeds: torch's, Python's and numpy's states."""

    torch: Tensor
    python: tuple[Any, ...]
    numpy: tuple[Any, ...]

    @staticmethod
    def capture() -> GlobalRNG:
        numpy_state: Any = np.random.get_state()  # the legacy tuple (name, keys, pos, has_gauss, gauss)
        return GlobalRNG(torch.get_rng_state(), random.getstate(), numpy_state)

    def restore(self) -> None:
        torch.set_rng_state(self.torch)
        random.setstate(self.python)
        np.random.set_state(self.numpy)


def trainer_state(
    model: nn.Module,
    opt_state: dict[str, Any],
    data_gen: torch.Generator,
    state: dict[str, Any],
    rng: GlobalRNG,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """What trainer.safetensors holds: weights, the optimizer's state_dict, the RNG states and `state`."""
    tensors = {f"model.{k}": v for k, v in _unique_state(model).items()}
    for index, entries in opt_state["state"].items():
        for name, value in entries.items():
            tensors[f"optim.{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng.torch"] = rng.torch
    tensors["rng.data"] = data_gen.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    np_state: Any = rng.numpy  # the legacy tuple (name, keys, pos, has_gauss, gauss)
    meta = {
        **state,
        "param_groups": opt_state["param_groups"],
        "rng_python": [rng.python[0], list(rng.python[1]), rng.python[2]],
        "rng_numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, meta


def restore_trainer(
    folder: Path, model: nn.Module, opt: torch.optim.Optimizer, data_gen: torch.Generator
) -> dict[str, Any]:
    """Load trainer.safetensors into model, opt, data_gen and the global RNGs; the saved state (step, best, ...)."""
    tensors, meta = checkpoint.load_trainer(folder)
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    checkpoint.check_shapes(folder / checkpoint.TRAINER, {k: tuple(v.shape) for k, v in weights.items()}, model)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = set(missing) - (set(model.state_dict()) - set(_unique_state(model)))
    if missing or unexpected:
        raise RunError(f"{folder / checkpoint.TRAINER}: weights do not match the model")
    opt_state: dict[str, Any] = {"state": {}, "param_groups": meta.pop("param_groups")}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            opt_state["state"].setdefault(int(index), {})[name] = value
    opt.load_state_dict(opt_state)
    torch.set_rng_state(tensors["rng.torch"])
    data_gen.set_state(tensors["rng.data"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    version, inner, gauss = meta.pop("rng_python")
    random.setstate((version, tuple(inner), gauss))
    name, keys, *rest = meta.pop("rng_numpy")
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    return meta
