"""Readers and generators of real and synthetic datasets: bAbI, parallel text, MNIST, digit canvases,
Flickr8k and captioned digit scenes."""

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
from attnlab.data.flickr8k import CaptionedImage, flickr8k_folder, load_image, read_flickr8k, tokenize_caption
from attnlab.data.mnist import load_mnist, load_small_digits, mnist_available, read_idx
from attnlab.data.scenes import Scenes, make_scenes, patch_features

__all__ = [
    "GENERATED_TASKS",
    "BabiExample",
    "BabiTensors",
    "CaptionedImage",
    "Scenes",
    "Vocabulary",
    "clutter",
    "flickr8k_folder",
    "generate_babi",
    "load_image",
    "load_mnist",
    "load_small_digits",
    "load_task",
    "make_scenes",
    "mnist_available",
    "parse_babi",
    "patch_features",
    "read_babi",
    "read_flickr8k",
    "read_idx",
    "task_file",
    "to_tensors",
    "tokenize",
    "tokenize_caption",
    "translate",
]
