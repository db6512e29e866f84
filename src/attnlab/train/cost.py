"""What one forward pass costs: multiply-adds counted by PyTorch, and the measured time per example.

    multiply_adds(model, images[:1])            # convolutions and matrix products of one image
    seconds_per_example(model, images, repeats=7)

Multiply-adds are torch.utils.flop_counter.FlopCounterMode's FLOPs halved: it counts the matrix
products and convolutions (a multiply and an add each), not the elementwise work, the pooling or the
gathers. Both run the model in eval mode without gradients and restore its mode afterwards.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


def multiply_adds(model: nn.Module, *inputs: Tensor) -> int:
    """Multiply-adds of model(*inputs) (all of the batch in inputs), eval mode, no gradient."""
    counter = FlopCounterMode(display=False)
    was_training = model.training
    try:
        with torch.no_grad(), counter:
            model.eval()(*inputs)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def seconds_per_example(model: nn.Module, inputs: Tensor, repeats: int = 7) -> float:
    """Median wall seconds of model(inputs) over `repeats` calls after one warm-up, divided by len(inputs)."""
    if repeats < 1:
        raise ValueError(f"seconds_per_example: repeats must be >= 1; got {repeats}")
    was_training = model.training
    times = []
    try:
        with torch.no_grad():
            model.eval()(inputs)  # warm-up
            for _ in range(repeats):
                start = time.perf_counter()
                model(inputs)
                times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times) / len(inputs)
