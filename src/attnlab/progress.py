"""The progress bar of every long loop: training steps, seeds trained together, image features.

    with progress_bar(total=1000, desc="ram on digits", unit="step") as bar:
        for step in range(1000):
            ...
            bar.update(1)

On a terminal it redraws in place several times a second. Written to a file or a pipe (a
training run's log, `nohup ... > run.log`), every redraw would be a new line of text kept forever:
a three-hour run at three steps a second left megabytes of bars. There it prints at most one line
every `FILE_INTERVAL` seconds, so a log shows the run's pace without burying what else it says.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm import tqdm

FILE_INTERVAL = 60.0  # seconds between lines when the bar is not drawn on a terminal


def on_terminal(stream: IO[str] | None = None) -> bool:
    """Whether `stream` (standard error by default, where bars go) is a terminal that redraws a line."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(*, total: int, desc: str, unit: str, initial: int = 0, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar that leaves the screen when done and writes a line a minute into files.

    Args:
        total: steps (or items) the loop will take in all.
        desc: what is being done, e.g. "ram on digits".
        unit: what one step is ("step", "img").
        initial: steps already done (a resumed run).
        enabled: False draws nothing (a worker process, or the caller asked for quiet).
        kwargs: any other tqdm option, e.g. `file=` for another stream.
    """
    stream = kwargs.get("file")
    interval = 0.1 if on_terminal(stream) else FILE_INTERVAL
    kwargs.setdefault("mininterval", interval)
    kwargs.setdefault("maxinterval", max(interval, 10.0))
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
        **kwargs,
    )
