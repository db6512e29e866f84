"""Error against schedule length: a power law fitted to one recipe's runs at several lengths, and the
length at which it puts a target.

A run's final error falls with the length of its schedule (each run a whole schedule: warm-up, the
decay to its own end), and over a few doublings it falls about as a power of the length:

    error(steps) = a * steps ** -b        (a straight line in log-log: log e = log a - b log steps)

`fit_power_law` takes (steps, error) pairs, one per schedule length (a mean over seeds where there are
several), and fits log a and b by least squares in log-log; with two lengths the line passes through
both. `PowerLaw.steps_for(target)` inverts it: the schedule that the fit says reaches the target. It is
an extrapolation, as good as the law holds beyond the longest run, so it says which run to try, not
what it will give.

    law = fit_power_law([(10000, 0.060), (43000, 0.0368)])
    law.b                  # 0.335: each doubling of the schedule multiplies the error by 2 ** -0.335 (0.79)
    law.at(86000)          # 0.0292
    law.steps_for(0.025)   # ~136,000
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PowerLaw:
    """error = a * steps ** -b."""

    a: float  # the error the law gives one step
    b: float  # the exponent: each doubling of the steps multiplies the error by 2 ** -b
    points: tuple[tuple[float, float], ...]  # the (steps, error) pairs it was fitted to, shortest first

    def at(self, steps: float) -> float:
        """The error the law gives a schedule of `steps`."""
        return self.a * steps**-self.b

    def steps_for(self, target: float) -> float:
        """The schedule length at which the law reaches `target` (inf when the error does not fall with
        the length, b <= 0: no length does)."""
        if not target > 0:
            raise ValueError(f"steps_for: the target error must be positive, got {target}")
        return (self.a / target) ** (1 / self.b) if self.b > 0 else math.inf


def fit_power_law(points: list[tuple[float, float]]) -> PowerLaw:
    """Least squares in log-log through (steps, error) pairs at two or more schedule lengths.

    Raises:
        ValueError: fewer than two distinct lengths, or a length or error that is not positive.
    """
    for steps, error in points:
        if not (steps > 0 and error > 0):
            raise ValueError(f"fit_power_law: steps and error must be positive, got ({steps}, {error})")
    if len({steps for steps, _ in points}) < 2:
        raise ValueError(f"fit_power_law: needs runs at two or more schedule lengths, got {sorted(points)}")
    xs = [math.log(steps) for steps, _ in points]
    ys = [math.log(error) for _, error in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return PowerLaw(a=math.exp(my - slope * mx), b=-slope, points=tuple(sorted(points)))
