"""The one progress bar: redrawn on a terminal, a line a minute into a log file."""

from __future__ import annotations

import io

from attnlab.progress import FILE_INTERVAL, on_terminal, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_gets_a_line_a_minute_and_a_terminal_redraws() -> None:
    log, screen = io.StringIO(), Terminal()
    assert not on_terminal(log) and on_terminal(screen)
    with progress_bar(total=10, desc="x", unit="step", file=log) as bar:
        assert bar.mininterval == FILE_INTERVAL
    with progress_bar(total=10, desc="x", unit="step", file=screen) as bar:
        assert bar.mininterval < 1


def test_a_log_keeps_a_line_a_minute_not_one_per_step() -> None:
    log = io.StringIO()
    with progress_bar(total=2000, desc="ram on digits", unit="step", file=log) as bar:
        start = bar.start_t
        bar._time = lambda: start + 0.5 * bar.n  # half a second a step: 2,000 steps in 1,000 seconds
        for _ in range(2000):
            bar.update(1)
    lines = log.getvalue().count("ram on digits")
    assert 1000 / FILE_INTERVAL - 3 <= lines <= 1000 / FILE_INTERVAL + 3, lines


def test_disabled_draws_nothing_and_a_resumed_run_starts_where_it_stopped() -> None:
    log = io.StringIO()
    with progress_bar(total=10, desc="x", unit="step", enabled=False, file=log) as bar:
        bar.update(5)
    assert log.getvalue() == ""
    with progress_bar(total=10, desc="x", unit="step", initial=4, file=log) as bar:
        assert bar.n == 4


def test_a_log_gets_whole_lines_with_messages_between_and_the_end() -> None:
    log = io.StringIO()
    with progress_bar(total=100, desc="dram on sums", unit="step", file=log) as bar:
        start = bar.start_t
        bar._time = lambda: start + 2 * bar.n  # two seconds a step: a line every 30 steps
        for step in range(100):
            bar.update(1)
            if step + 1 == 50:
                bar.write("step 50: test error 9.00%", file=log)
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert "step 50: test error 9.00%" in lines  # a line of its own, not glued to a bar's
    assert lines[-1].startswith("dram on sums: 100%") and "100/100" in lines[-1]  # where it ended, once
    assert sum("100/100" in line for line in lines) == 1
    bars = [line for line in lines if line.startswith("dram on sums")]
    assert 4 <= len(bars) <= 8, bars  # start, every 60 s of 200, after the message, the end


def test_a_last_line_already_written_is_not_written_again() -> None:
    log = io.StringIO()
    with progress_bar(total=10, desc="cnn", unit="step", file=log) as bar:
        bar.update(10)
        bar.set_postfix(loss="0.5")  # a run's last evaluation redraws the finished bar
    finished = [line for line in log.getvalue().splitlines() if "10/10" in line]
    assert len(finished) == 1 and finished[0].endswith("loss=0.5]"), finished
