"""The progress bar of every long loop: training steps, seeds trained together, image features.

    with progress_bar(total=1000, desc="ram on digits", unit="step") as bar:
        for step in range(1000):
            ...
            bar.update(1)

On a terminal it redraws in place several times a second. Written to a file or a pipe (a
training run's log, `nohup ... > run.log`), every redraw would be text kept forever: a three-hour
run at three steps a second left megabytes of bars, all on one line, since a redraw only returns
the carriage. There it prints a whole line (`LogLines`) at most every `FILE_INTERVAL` seconds and
one when it ends, so a log shows the run's pace, line by line, beside what else the run says
(`bar.write(...)`: a line of its own, never glued to a bar's).
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


class LogLines(tqdm):
    """A tqdm bar for a file or a pipe: each display is a whole line ending in a newline, nothing is
    erased (a file cannot be), and the last state is written when it closes."""

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is not None:  # tqdm clearing or blanking the line: nothing to take back in a file
            return False
        self.fp.write(f"{self}\n")
        self.fp.flush()
        self.logged_n = self.n
        return True

    def clear(self, nolock: bool = False) -> None:
        """Nothing to clear: a bar's line in a file is finished."""

    def moveto(self, n: int) -> None:
        """Lines in a file stay where they were written."""

    def close(self) -> None:
        if not self.disable and self.n != getattr(self, "logged_n", None):
            self.display()  # where it ended
        super().close()


def progress_bar(*, total: int, desc: str, unit: str, initial: int = 0, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar that leaves the screen when done and writes a line a minute into files (`LogLines`).

    Args:
        total: steps (or items) the loop will take in all.
        desc: what is being done, e.g. "ram on digits".
        unit: what one step is ("step", "img").
        initial: steps already done (a resumed run).
        enabled: False draws nothing (a worker process, or the caller asked for quiet).
        kwargs: any other tqdm option, e.g. `file=` for another stream.
    """
    stream = kwargs.get("file")
    terminal = on_terminal(stream)
    interval = 0.1 if terminal else FILE_INTERVAL
    kwargs.setdefault("mininterval", interval)
    kwargs.setdefault("maxinterval", max(interval, 10.0))
    return (tqdm if terminal else LogLines)(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
        **kwargs,
    )
