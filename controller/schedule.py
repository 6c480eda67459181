"""Cron expressions as Kubernetes CronJobs run them: parsing and expansion to fire times.

Kubernetes uses the standard 5-field syntax plus ``@daily``-style macros and ``?``;
cronsim implements the 5-field semantics (including DST) and we translate the rest.
"""

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
    fields[2] = "*" if fields[2] == "?" else fields[2]
    fields[4] = "*" if fields[4] == "?" else fields[4]
    text = " ".join(fields)
    try:
        cronsim.CronSim(text, datetime(2000, 1, 1))
    except cronsim.CronSimError as err:
        raise CronError(f"{expression!r} is not a valid cron expression: {err}") from err
    return text


def zone(name: str) -> ZoneInfo:
    """Resolve an IANA time zone name or raise CronError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise CronError(f"unknown time zone {name!r}; use an IANA name such as Etc/UTC or Europe/Paris") from err


def fire_times(expression: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Every time ``expression`` fires in ``[start, end)``, evaluated in ``tz``."""
    return list(_iterate(normalise(expression), tz, start, end))


def _iterate(expression: str, tz: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    local_start = (start - timedelta(seconds=1)).astimezone(tz)
    for moment in cronsim.CronSim(expression, local_start):
        if moment >= end:
            return
        if moment >= start:
            yield moment
