import math

import pytest

from attnlab.train.scaling import fit_power_law


def test_recovers_a_power_law_exactly():
    points = [(steps, 3.0 * steps**-0.4) for steps in (1000, 4000, 16000, 64000)]
    law = fit_power_law(points[::-1])  # any order
    assert law.a == pytest.approx(3.0) and law.b == pytest.approx(0.4)
    assert law.points == tuple(points)  # shortest first
    assert law.at(256000) == pytest.approx(3.0 * 256000**-0.4)
    assert law.steps_for(3.0 * 256000**-0.4) == pytest.approx(256000)


def test_two_lengths_fix_the_line_through_both():
    law = fit_power_law([(10000, 0.06), (43000, 0.0368)])
    assert law.at(10000) == pytest.approx(0.06) and law.at(43000) == pytest.approx(0.0368)
    assert law.b == pytest.approx(math.log(0.06 / 0.0368) / math.log(4.3))
    assert 43000 < law.steps_for(0.025) < 10**6  # below the longest run's error: a longer schedule


def test_least_squares_between_points_off_the_line():
    # log-log points (0, 0), (1, -1), (2, -1): slope -1/2 through their mean (1, -2/3)
    e = math.e
    law = fit_power_law([(1.0, 1.0), (e, 1 / e), (e * e, 1 / e)])
    assert law.b == pytest.approx(0.5)
    assert math.log(law.a) == pytest.approx(-2 / 3 + 0.5)


def test_an_error_that_does_not_fall_is_never_reached():
    law = fit_power_law([(1000, 0.05), (2000, 0.06)])
    assert law.b < 0 and law.steps_for(0.01) == math.inf


@pytest.mark.parametrize(
    "points, message",
    [([(1000, 0.1)], "two or more schedule lengths"), ([(1000, 0.1), (1000, 0.2)], "two or more"),
     ([(1000, 0.0), (2000, 0.1)], "must be positive"), ([(-5, 0.1), (2000, 0.1)], "must be positive")],
)
def test_bad_points_are_named(points, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(points)


def test_target_must_be_positive():
    with pytest.raises(ValueError, match="target error must be positive"):
        fit_power_law([(1000, 0.1), (2000, 0.05)]).steps_for(0)
