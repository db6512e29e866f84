"""Tasks by registry name: every module is imported here so that `TASKS` lists them all.

Families: copy/reverse/sort (sequences), associative recall, induction heads and selective
copying (recall), the adding problem (adding), a long-range dependency of set distance
(long_range), ListOps from the Long Range Arena (listops), bAbI question answering (babi),
translation (translate) and the NTM's copy, repeat copy, associative recall and priority sort on
bit vectors (algorithmic), digits to classify from MNIST, centred, translated or in clutter
(digits), two cluttered digits to name as an unordered pair or a sum (digit_pairs), and
captions of images, generated digit scenes or Flickr8k's photographs (caption).
"""

from attnlab.spec import PAD, TaskSpec
from attnlab.tasks import (  # noqa: F401  (fill TASKS)
    adding,
    algorithmic,  # the NTM's bit-vector tasks
    babi,  # bAbI question answering
    captioning,  # Show, Attend and Tell's captions
    digit_pairs,  # two digits in clutter: their unordered pair or sum (DRAM)
    digits,  # MNIST digits, centred/translated/cluttered
    listops,
    long_range,
    pronouns,  # Winograd-style twins
    recall,
    sequences,
    translation,
)
from attnlab.tasks.base import TASKS, Batch, Task, build_task

__all__ = ["PAD", "TASKS", "Batch", "Task", "TaskSpec", "build_task"]
