"""Durations such as ``30d``, ``6h`` or ``1d12h`` as used in policies."""

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)([mhdw])")
_WHOLE = re.compile(r"^(\d+[mhdw])+$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 24 * 60, "w": 7 * 24 * 60}
_MAX_MINUTES = 100 * 366 * 24 * 60


class DurationError(ValueError):
    """A duration string that cannot be used."""


def is_duration_syntax(text: str) -> bool:
    return bool(_WHOLE.fullmatch(text))


def parse_duration(text: str) -> timedelta:
    """Parse ``<number><unit>`` parts (m, h, d, w) into a positive timedelta."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise DurationError(f"{text!r} is not a duration; write e.g. 30d, 6h or 1d12h (units m, h, d, w)")
    minutes = sum(int(n) * _UNIT_MINUTES[unit] for n, unit in _PART.findall(text))
    if minutes == 0:
        raise DurationError(f"{text!r} is zero; a duration must be positive")
    if minutes > _MAX_MINUTES:
        raise DurationError(f"{text!r} is far too long; write at most a few years")
    return timedelta(minutes=minutes)


def format_days(days: float) -> str:
    """``30.0`` -> ``30d``, ``1.5`` -> ``1d12h``: a window logged in days, as policies write it."""
    return format_duration(timedelta(days=days))


def format_duration(value: timedelta) -> str:
    """Render a timedelta compactly (``3d``, ``6h``, ``1d12h``) for humans."""
    minutes = int(value.total_seconds() // 60)
    parts = []
    for unit, size in (("d", 24 * 60), ("h", 60), ("m", 1)):
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0m"
