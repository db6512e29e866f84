"""Readers and generators of real and synthetic datasets (bAbI so far)."""

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

__all__ = [
    "GENERATED_TASKS",
    "BabiExample",
    "BabiTensors",
    "Vocabulary",
    "generate_babi",
    "load_task",
    "parse_babi",
    "read_babi",
    "task_file",
    "to_tensors",
    "tokenize",
]
