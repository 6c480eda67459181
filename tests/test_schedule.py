"""Cron handling as Kubernetes does it, and the candidate cadences."""

from datetime import UTC, datetime, timedelta

import pytest

from controller import schedule
from controller.optimize.candidates import CADENCES, describe, expression
from controller.policy.durations import DurationError, format_duration, parse_duration


def test_macros_and_question_marks() -> None:
    assert schedule.normalise("@daily") == "0 0 * * *"
    assert schedule.normalise(" 15  3 ? * MON-FRI ") == "15 3 * * MON-FRI"


@pytest.mark.parametrize("bad", ["0 2 * *", "61 * * * *", "CRON_TZ=UTC 0 2 * * *", "@fortnightly"])
def test_invalid_expressions(bad: str) -> None:
    with pytest.raises(schedule.CronError):
        schedule.normalise(bad)


def test_fire_times_follow_the_time_zone_across_dst() -> None:
    paris = schedule.zone("Europe/Paris")
    start = datetime(2025, 3, 29, tzinfo=UTC)
    fires = schedule.fire_times("30 1 * * *", paris, start, start + timedelta(days=3))
    assert [f.astimezone(UTC).hour for f in fires] == [0, 0, 23, 23]  # 01:30 CET, then CEST from 31 March


def test_fire_times_are_half_open() -> None:
    utc = schedule.zone("Etc/UTC")
    start = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)
    fires = schedule.fire_times("0 2 * * *", utc, start, start + timedelta(days=2))
    assert fires == [start, start + timedelta(days=1)]


def test_every_candidate_is_valid_cron_and_described_in_words() -> None:
    for cadence in CADENCES:
        expr = expression(cadence, 5, 7)
        assert schedule.normalise(expr) == expr
        assert describe(expr).startswith(cadence.name)
    assert describe("0 */8 * * *") == '"0 */8 * * *"'


def test_durations() -> None:
    assert parse_duration("1d12h") == timedelta(hours=36)
    assert format_duration(timedelta(hours=36)) == "1d12h"
    for bad in ("0d", "30 days", "1y", ""):
        with pytest.raises(DurationError):
            parse_duration(bad)
