"""What the tour may spend: every section's steps, evaluation sizes, batch sizes and task sizes.

Two budgets: FULL (`attnlab tour`, `make tour`: under ten minutes on two cores) and QUICK
(`attnlab tour --quick` and the tests: a few steps per run, a smoke test, not results). A section
reads only its own part (`budget.babi`, ...) and never writes a number of steps itself.

    Budget.of(quick=True).families.long_range.overrides(seed=0)
    # {'steps': 4, 'eval_every': 2, 'eval_size': 16, 'batch_size': 16, 'lr': 0.003, 'seed': 0}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Train:
    """The train.* overrides of one section's runs; None leaves attnlab.train.TrainConfig's default."""

    steps: int  # optimizer steps
    eval_every: int  # validate (and checkpoint) every this many steps
    eval_size: int  # validation and test examples
    batch_size: int | None = None  # examples per step
    lr: float | None = None  # peak learning rate
    warmup_steps: int | None = None  # linear warm-up steps
    clip_norm: float | None = None  # gradient norm clipping
    weight_decay: float | None = None  # AdamW decoupled weight decay
    target: float | None = None  # stop early once the task's metric reaches this on validation
    path: str | None = None  # train.path: "compiled" where a family's compiled step pays for its compiling
    guide_steps: int | None = None  # train.guide_steps: a glimpse model's guided start
    guide_every: int | None = None  # train.guide_every: after it, one step in this many guided too

    def overrides(self, seed: int) -> dict[str, Any]:
        """The train section of compare.plan's overrides: every field that is set, and the seed."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**{k: v for k, v in values.items() if v is not None}, "seed": seed}


@dataclass(frozen=True)
class Families:
    """Every family on long_range (at three distances) and on reverse."""

    long_range: Train
    reverse: Train


@dataclass(frozen=True)
class Copy:
    """A decoder-only LM learns to copy."""

    train: Train


@dataclass(frozen=True)
class Translation:
    """Four families on the generated language pair."""

    train: Train
    pairs: int  # sentence pairs generated (task.toy_pairs)
    scored: int | None  # test sentences decoded for BLEU; None: all of them


@dataclass(frozen=True)
class Babi:
    """MemN2N on generated bAbI-style stories."""

    train: Train
    stories: int | None  # generated stories per task (task.generated_stories); None: the task's default
    story_len: int | None  # sentences per generated story (task.generated_story_len); None: the default


@dataclass(frozen=True)
class Machines:
    """The NTM and an LSTM on copy, the NTM on associative recall."""

    copy: Train
    recall: Train
    tested: int  # test episodes per longer length


@dataclass(frozen=True)
class Glimpse:
    """RAM and a CNN on cluttered digits."""

    ram: Train
    cnn: Train


@dataclass(frozen=True)
class Captioning:
    """Show, Attend and Tell on generated digit scenes."""

    train: Train
    scenes: int  # training scenes generated (task.scenes; val and test a quarter as many each)
    scored: int  # test scenes decoded to score where the digit words look


@dataclass(frozen=True)
class Pretrained:
    """The MiniLM probes, and attnlab's own small encoder trained on generated twins."""

    own_steps: int  # training steps of the own encoder; 0 skips it


@dataclass(frozen=True)
class Budget:
    """One tour's budget, section by section."""

    name: str  # "quick" or "full"
    progress: bool  # print each run as it finishes
    lanes: int  # sections trained at once, each in its own process with a share of the cores
    families: Families
    copy: Copy
    translation: Translation
    babi: Babi
    machines: Machines
    glimpse: Glimpse
    captioning: Captioning
    pretrained: Pretrained

    @staticmethod
    def of(*, quick: bool) -> Budget:
        """QUICK or FULL."""
        return QUICK if quick else FULL


def _smoke(batch_size: int, eval_size: int = 16, **values: Any) -> Train:
    """A quick run: 4 steps, validated twice."""
    return Train(steps=4, eval_every=2, eval_size=eval_size, batch_size=batch_size, **values)


QUICK = Budget(
    name="quick",
    progress=False,
    lanes=1,
    families=Families(long_range=_smoke(16, lr=3e-3), reverse=_smoke(16, lr=3e-3)),
    copy=Copy(train=_smoke(16, lr=3e-3)),
    translation=Translation(train=_smoke(16), pairs=200, scored=50),
    babi=Babi(train=_smoke(16, eval_size=1000, lr=0.01, warmup_steps=0, clip_norm=40), stories=25, story_len=10),
    machines=Machines(copy=_smoke(8), recall=_smoke(8), tested=16),
    glimpse=Glimpse(ram=_smoke(8), cnn=_smoke(8)),
    captioning=Captioning(train=_smoke(8), scenes=40, scored=8),
    pretrained=Pretrained(own_steps=4),
)

FULL = Budget(
    name="full",
    progress=True,
    lanes=2,
    families=Families(
        long_range=Train(steps=300, eval_every=100, eval_size=256, target=0.99, lr=3e-3),
        reverse=Train(steps=300, eval_every=100, eval_size=256, target=0.99, lr=3e-3),
    ),
    copy=Copy(train=Train(steps=800, eval_every=100, eval_size=256, target=0.99, lr=3e-3)),
    translation=Translation(
        train=Train(steps=500, eval_every=250, eval_size=200, batch_size=64, lr=3e-3, warmup_steps=100),
        pairs=20000,
        scored=None,
    ),
    babi=Babi(
        train=Train(steps=6000, eval_every=500, eval_size=2000, batch_size=32, lr=0.01, warmup_steps=0, clip_norm=40),
        stories=None,
        story_len=None,
    ),
    machines=Machines(
        copy=Train(
            steps=3000,
            eval_every=250,
            eval_size=128,
            batch_size=32,
            lr=3e-3,
            warmup_steps=50,
            clip_norm=10,
            weight_decay=0,
            target=0.05,
            path="compiled",
        ),
        recall=Train(
            steps=400,
            eval_every=200,
            eval_size=128,
            batch_size=32,
            lr=3e-3,
            warmup_steps=50,
            clip_norm=10,
            weight_decay=0,
        ),
        tested=256,
    ),
    glimpse=Glimpse(
        ram=Train(
            steps=1500,
            eval_every=750,
            eval_size=1000,
            batch_size=64,
            lr=1e-3,
            warmup_steps=100,
            clip_norm=5,
            guide_steps=300,
            guide_every=4,
        ),
        cnn=Train(steps=600, eval_every=300, eval_size=1000, batch_size=64, lr=1e-3, warmup_steps=100, clip_norm=5),
    ),
    captioning=Captioning(
        train=Train(steps=1000, eval_every=500, eval_size=250, batch_size=64, lr=3e-3, warmup_steps=50, clip_norm=5),
        scenes=4000,
        scored=250,
    ),
    pretrained=Pretrained(own_steps=500),
)
