"""Grid carbon intensity by hour of week, learned from the intensity history.

Retrains are short and can move in time, so what matters is the intensity at the hour a
retrain starts. Hour of week captures both the daily cycle (solar, evening peak) and weekends;
with less than two weeks of data we fall back to hour of day, then to the plain mean.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from controller.telemetry.history import CarbonSamples

HOURS_PER_WEEK = 168
MIN_SAMPLES_PER_BIN = 2


@dataclass(frozen=True)
class CarbonProfile:
    """gCO2e/kWh for each UTC hour of the week (Monday 00:00 is hour 0)."""

    by_hour_of_week: tuple[float, ...]
    resolution: str  # "hour of week" | "hour of day" | "constant"
    samples: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.by_hour_of_week))

    @property
    def varies(self) -> bool:
        return max(self.by_hour_of_week) > min(self.by_hour_of_week)

    def at(self, moments: list[datetime]) -> np.ndarray:
        """Intensity at each moment (timezone-aware)."""
        table = np.asarray(self.by_hour_of_week)
        return table[[hour_of_week(m) for m in moments]] if moments else np.zeros(0)


def hour_of_week(moment: datetime) -> int:
    utc = moment.astimezone(UTC)
    return utc.weekday() * 24 + utc.hour


def constant_profile(intensity: float) -> CarbonProfile:
    return CarbonProfile((float(intensity),) * HOURS_PER_WEEK, "constant", 0)


def _bin_means(keys: np.ndarray, values: np.ndarray, bins: int) -> np.ndarray | None:
    counts = np.bincount(keys, minlength=bins)
    if counts.min() < MIN_SAMPLES_PER_BIN:
        return None
    return np.asarray(np.bincount(keys, weights=values, minlength=bins) / counts)


def fit_carbon_profile(samples: CarbonSamples | None, constant: float) -> CarbonProfile:
    """The finest profile the samples support; the policy's constant when there are none."""
    if not samples:
        return constant_profile(constant)
    weekly = np.asarray([hour_of_week(t) for t, _ in samples])
    values = np.asarray([v for _, v in samples], dtype=float)
    by_week = _bin_means(weekly, values, HOURS_PER_WEEK)
    if by_week is not None:
        return CarbonProfile(tuple(float(v) for v in by_week), "hour of week", len(values))
    by_day = _bin_means(weekly % 24, values, 24)
    if by_day is not None:
        return CarbonProfile(tuple(float(by_day[h % 24]) for h in range(HOURS_PER_WEEK)), "hour of day", len(values))
    return CarbonProfile((float(values.mean()),) * HOURS_PER_WEEK, "constant", len(values))
