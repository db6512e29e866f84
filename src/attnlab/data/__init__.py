"""Readers and generators of real and synthetic datasets: bAbI, parallel text, MNIST and digit canvases."""

from attnlab.data.babi import (
    BabiExample,
    BabiTensors,
    Vocabulary,
    load_task,
    parse_babi,
    read_babi,
    task_file,
    to_tensors,
    tokenize,
)
from attnlab.data.babi_generator import GENERATED_TASKS, generate_babi
from attnlab.data.canvas import clutter, translate
from attnlab.data.mnist import load_mnist, load_small_digits, mnist_available, read_idx

__all__ = [
    "GENERATED_TASKS",
    "BabiExample",
    "BabiTensors",
    "Vocabulary",
    "clutter",
    "generate_babi",
    "load_mnist",
    "load_small_digits",
    "load_task",
    "mnist_available",
    "parse_babi",
    "read_babi",
    "read_idx",
    "task_file",
    "to_tensors",
    "tokenize",
    "translate",
]
