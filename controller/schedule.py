"""Cron expressions as Kubernetes CronJobs run them: parsing and expansion to fire times.

Kubernetes uses the standard 5-field syntax plus ``@daily``-style macros and ``?``;
cronsim implements the 5-field semantics (including DST) and we translate the rest.
"""

import bisect
import functools
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cronsim

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


_MONTHS = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_WEEKDAYS = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
# (name, lowest, highest, names, whether "?" is allowed) as Kubernetes' parser (robfig/cron) defines them
_FIELDS: tuple[tuple[str, int, int, dict[str, int], bool], ...] = (
    ("minute", 0, 59, {}, False), ("hour", 0, 23, {}, False), ("day of month", 1, 31, {}, True),
    ("month", 1, 12, _MONTHS, False), ("day of week", 0, 6, _WEEKDAYS, True))
_PART = re.compile(r"^(?P<base>\*|\?|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>[0-9]+))?$")


class CronError(ValueError):
    """A cron expression or time zone that a Kubernetes CronJob cannot run."""


def normalise(expression: str) -> str:
    """Return the 5-field form of ``expression`` or raise CronError."""
    text = " ".join(expression.split())
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        raise CronError("time zones inside the schedule are rejected by Kubernetes; use schedule.timeZone")
    text = _MACROS.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise CronError(f"{expression!r} has {len(fields)} fields; a CronJob schedule has 5 (minute hour "
                        "day-of-month month day-of-week) or is a macro such as @daily")
    for text_field, spec in zip(fields, _FIELDS, strict=True):
        _check_field(text_field, *spec)
    fields[2] = "*" if fields[2] == "?" else fields[2]
    fields[4] = "*" if fields[4] == "?" else fields[4]
    text = " ".join(fields)
    try:
        cronsim.CronSim(text, datetime(2000, 1, 1))
    except cronsim.CronSimError as err:
        raise CronError(f"{expression!r} is not a valid cron expression: {err}") from err
    return text


def _check_field(text: str, name: str, low: int, high: int, names: dict[str, int], question: bool) -> None:
    """Reject what Kubernetes rejects (L, W, #, day-of-week 7, values out of range), which cronsim accepts."""
    for part in text.split(","):
        match = _PART.match(part)
        if not match or (match["base"] == "?" and not question):
            raise CronError(f"{name} field {text!r}: {part!r} is not valid in a Kubernetes CronJob (use numbers, "
                            "names, *, ranges a-b, steps /n and lists)")
        for value in match["base"].split("-") if match["base"] not in "*?" else ():
            number = int(value) if value.isdigit() else names.get(value.upper())
            if number is None:
                raise CronError(f"{name} field {text!r}: {value!r} is neither a number nor a "
                                f"{'name such as ' + next(iter(names)) if names else 'valid value'}")
            if not low <= number <= high:
                raise CronError(f"{name} field {text!r}: {value!r} is outside {low}-{high}")
        if match["step"] is not None and not 1 <= int(match["step"]) <= high - low + 1:
            raise CronError(f"{name} field {text!r}: step /{match['step']} must be 1-{high - low + 1}")


def zone(name: str) -> ZoneInfo:
    """Resolve an IANA time zone name or raise CronError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:
        raise CronError(f"unknown time zone {name!r}; use an IANA name such as Etc/UTC or Europe/Paris") from err


def fire_times(expression: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Every time ``expression`` fires in ``[start, end)``, evaluated in ``tz``.

    Expanded one calendar year at a time and remembered: the optimiser simulates the same
    schedules over and over (every trial, every reconcile), and sparse schedules are slow to
    expand because the cron iterator walks hour by hour to the next match.
    """
    normalised = normalise(expression)
    found: list[datetime] = []
    for year in range(start.astimezone(tz).year, end.astimezone(tz).year + 1):
        times = _fires_in_year(normalised, tz.key, year)
        found.extend(times[bisect.bisect_left(times, start):bisect.bisect_left(times, end)])
    return found


@functools.lru_cache(maxsize=8192)  # a year of an hourly schedule is ~0.5 MB; most are daily or sparser (~20 kB)
def _fires_in_year(expression: str, tz_name: str, year: int) -> tuple[datetime, ...]:
    tz = ZoneInfo(tz_name)
    first, last = datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz)
    return tuple(_iterate(expression, tz, first, last))


def _iterate(expression: str, tz: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    local_start = (start - timedelta(seconds=1)).astimezone(tz)
    for moment in cronsim.CronSim(expression, local_start):
        if moment >= end:
            return
        if moment >= start:
            yield moment
