"""Tasks by registry name: every module is imported here so that `TASKS` lists them all.

Families: copy/reverse/sort (sequences), associative recall, induction heads and selective
copying (recall), the adding problem (adding), a long-range dependency of set distance
(long_range), ListOps from the Long Range Arena (listops), bAbI question answering (babi),
translation (translate) and the NTM's copy, repeat copy, associative recall and priority sort on
bit vectors (algorithmic), and digits to classify from MNIST, centred, translated or in clutter
(digits).
"""

from attnlab.models.registry import PAD, TaskSpec
from attnlab.tasks import adding, listops, long_range, recall, sequences  # noqa: F401  (fill TASKS)
from attnlab.tasks import pronouns  # noqa: F401  (Winograd-style twins, attnlab.tasks.pronouns)
from attnlab.tasks import babi  # noqa: F401  (bAbI question answering, attnlab.tasks.babi)
from attnlab.tasks import translation  # noqa: F401  (translation, attnlab.tasks.translation)
from attnlab.tasks import algorithmic  # noqa: F401  (the NTM's bit-vector tasks, attnlab.tasks.algorithmic)
from attnlab.tasks import digits  # noqa: F401  (MNIST digits, centred/translated/cluttered, attnlab.tasks.digits)
from attnlab.tasks.base import TASKS, Batch, Task, build_task

__all__ = ["PAD", "TASKS", "Batch", "Task", "TaskSpec", "build_task"]
