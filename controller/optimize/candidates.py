"""Cron cadences a Kubernetes CronJob can run, from every hour to once a month.

A candidate is a cadence (a cron template with an ``{hour}`` slot) plus a start hour.
Cadences whose spacing cannot fit the policy's min/max interval are dropped up front.
"""

import itertools
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from controller import schedule
from controller.policy.model import Policy


@dataclass(frozen=True)
class Cadence:
    name: str
    template: str  # "{minute} {hour} ..." ; hourly cadences use {hour} as the offset
    every_hours: int = 0  # > 0 for sub-daily cadences: hours are {hour % n} + k*n


DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")  # cron day-of-week 0..6


def _on_days(name: str, offsets: tuple[int, ...]) -> tuple[Cadence, ...]:
    """One cadence per rotation of ``offsets`` through the week: the weekday is a decision too,
    since grid carbon differs by day (weekends are greener in most grids)."""
    cadences = {}
    for first in range(7):
        days = tuple(sorted((first + offset) % 7 for offset in offsets))
        skipped = sorted(set(range(7)) - set(days))
        label = f"not {DAY_NAMES[skipped[0]]}" if len(skipped) == 1 else ", ".join(DAY_NAMES[d] for d in days)
        cadences[days] = Cadence(f"{name} ({label})", "{minute} {hour} * * " + _cron_days(days))
    return tuple(cadences.values())


def _cron_days(days: tuple[int, ...]) -> str:
    """``(1, 2, 3, 5)`` -> ``1-3,5``: runs of consecutive days as ranges, as people write them."""
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs)


CADENCES = (
    *(Cadence(f"every {n}h", "{minute} {hour}-23/" + str(n) + " * * *", n) for n in (1, 2, 3, 4, 6, 8, 12)),
    Cadence("daily", "{minute} {hour} * * *"),
    *_on_days("6 days a week", (0, 1, 2, 3, 4, 5)),
    Cadence("weekdays", "{minute} {hour} * * 1-5"),
    Cadence("on odd days of the month", "{minute} {hour} */2 * *"),
    Cadence("4 days a week", "{minute} {hour} * * 0,1,3,5"),
    *_on_days("3 days a week", (0, 2, 4)),
    Cadence("every 3rd day of the month (1, 4, 7, ...)", "{minute} {hour} */3 * *"),
    *_on_days("twice a week", (0, 3)),
    *_on_days("weekly", (0,)),
    Cadence("on the 1st, 11th and 21st", "{minute} {hour} 1,11,21 * *"),
    Cadence("on the 1st and 15th", "{minute} {hour} 1,15 * *"),
    Cadence("on the 1st of the month", "{minute} {hour} 1 * *"),
    Cadence("every 2 months (1st)", "{minute} {hour} 1 */2 *"),
    Cadence("quarterly (1st)", "{minute} {hour} 1 */3 *"),
    Cadence("twice a year (1st of Jan and Jul)", "{minute} {hour} 1 */6 *"),
    Cadence("yearly (1st of Jan)", "{minute} {hour} 1 1 *"),
)


def minute_for(policy_name: str) -> int:
    """A stable minute per policy (like Jenkins' H) so retrains do not all start at :00."""
    return zlib.crc32(policy_name.encode()) % 60


def _plain_int(field: str) -> int | None:
    return int(field) if field.isdigit() else None


def start_time_choices(policy: Policy, carbon_varies: bool) -> tuple[int, list[int]]:
    """Minute and candidate start hours.

    When grid intensity varies by hour every allowed hour is a candidate. With a constant
    intensity the start hour changes nothing but the diff, so we keep today's hour and minute
    when they are plain numbers inside allowedHours.
    """
    expr = schedule.normalise(policy.current_schedule)
    minute = _plain_int(expr.split(" ")[0])
    minute = minute if minute is not None else minute_for(policy.name)
    if carbon_varies:
        return minute, sorted(policy.allowed_hours)
    start = datetime(2025, 1, 6, tzinfo=UTC)
    today = schedule.fire_times(expr, schedule.zone("Etc/UTC"), start, start + timedelta(days=7))
    current_hours = sorted({t.hour for t in today} & policy.allowed_hours)
    return minute, current_hours[:1] or sorted(policy.allowed_hours)


def expression(cadence: Cadence, hour: int, minute: int) -> str:
    start = hour % cadence.every_hours if cadence.every_hours else hour
    return cadence.template.format(minute=minute, hour=start)


def fire_hours(cadence: Cadence, hour: int) -> set[int]:
    if cadence.every_hours:
        return set(range(hour % cadence.every_hours, 24, cadence.every_hours))
    return {hour}


@cache
def _gaps(cadence: Cadence) -> tuple[timedelta, timedelta]:
    """Shortest and longest spacing over a year (UTC, hour 0): the cadence's shape."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    span = timedelta(days=14 if cadence.every_hours else 2 * 366)
    times = schedule.fire_times(expression(cadence, 0, 0), schedule.zone("Etc/UTC"), start, start + span)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return min(gaps), max(gaps)


def cadences_within_bounds(policy: Policy) -> list[Cadence]:
    """Cadences whose spacing respects minInterval/maxInterval and that can start in allowed hours."""
    kept = []
    for cadence in CADENCES:
        shortest, longest = _gaps(cadence)
        if shortest < policy.min_interval or longest > policy.max_interval:
            continue
        if any(fire_hours(cadence, hour) <= policy.allowed_hours for hour in policy.allowed_hours):
            kept.append(cadence)
    return kept


def cadence_of(expr: str) -> str:
    """The catalogue cadence ``expr`` is an instance of (any start hour), else the expression itself."""
    fields = expr.split(" ")
    if len(fields) == 5 and fields[0].isdigit():
        for cadence in CADENCES:
            if any(expression(cadence, hour, int(fields[0])) == expr for hour in range(24)):
                return cadence.name
    return expr


def describe(expr: str) -> str:
    """Words for a schedule: ``weekly at 02:30`` for catalogue cadences, else the cron expression."""
    fields = expr.split(" ")
    if len(fields) == 5 and fields[0].isdigit():
        minute = int(fields[0])
        for cadence in CADENCES:
            if cadence.every_hours:
                start = fields[1].split("-")[0]
                if start.isdigit() and expression(cadence, int(start), minute) == expr:
                    return f"{cadence.name} from {int(start):02d}:{minute:02d}"
            elif fields[1].isdigit() and expression(cadence, int(fields[1]), minute) == expr:
                return f"{cadence.name} at {int(fields[1]):02d}:{minute:02d}"
    return f'"{expr}"'
