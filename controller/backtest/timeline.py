"""What a plan of retrain days yields on the stream: per-window quality, energy, carbon, compliance.

Every strategy is scored by the same function on the same trained models, so differences come
from when they retrain, nothing else. Every strategy is held to the policy's maxInterval: a model
is replaced when it reaches that age, whatever the strategy would have done.
"""

from dataclasses import dataclass, field

import numpy as np

from controller.backtest.data import Stream
from controller.backtest.learners import ModelBank

NOON = 12


@dataclass(frozen=True)
class Setup:
    """The replay's fixed frame: windows, bounds and the carbon series aligned to stream hours."""

    stream: Stream
    bank: ModelBank
    first_day: int  # first served day: the initial model is trained on the days before it
    window_days: int
    max_interval_days: int
    target: float
    compliance: float
    carbon_hourly: np.ndarray  # gCO2e/kWh for stream hour 0, 1, ...; wraps around
    allowed_hours: frozenset[int] = frozenset(range(24))  # UTC hours when greenops may start a retrain

    @property
    def windows(self) -> int:
        return (self.stream.days - self.first_day) // self.window_days

    @property
    def last_day(self) -> int:
        """End (exclusive) of the scored period: whole windows only."""
        return self.first_day + self.windows * self.window_days

    def window_of_day(self, day: int) -> int:
        return (day - self.first_day) // self.window_days

    def carbon_at(self, day: int, hour: int) -> float:
        return float(self.carbon_hourly[(day * 24 + hour) % len(self.carbon_hourly)])


@dataclass(frozen=True)
class Retrain:
    day: int
    hour: int = NOON


@dataclass(frozen=True)
class Outcome:
    """One strategy's replay."""

    strategy: str
    retrains: tuple[Retrain, ...]  # after the initial model
    window_quality: np.ndarray
    energy_kwh: float
    carbon_kg: float
    compliance: float
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def quality_mean(self) -> float:
        return float(np.nanmean(self.window_quality))

    @property
    def quality_p10(self) -> float:
        return float(np.nanquantile(self.window_quality, 0.10))

    def loss(self) -> float:
        """Quality lost over the run, in windows: the sum of (1 - quality) over windows with rows."""
        return float(np.nansum(1 - self.window_quality))


def serving_days(setup: Setup, retrain_days: list[int]) -> list[int]:
    """Retrain days as served, with the maxInterval cap applied (the initial model is day first_day)."""
    served, last = [setup.first_day], setup.first_day
    for day in sorted(set(retrain_days)):
        while day - last > setup.max_interval_days:
            last += setup.max_interval_days
            served.append(last)
        if setup.first_day < day < setup.last_day and day > last:
            served.append(day)
            last = day
    while setup.last_day - last > setup.max_interval_days:
        last += setup.max_interval_days
        served.append(last)
    return served


def row_correctness(setup: Setup, served: list[int], until_day: int | None = None) -> np.ndarray:
    """Whether the serving model got each row right, for the rows of [first_day, until_day)."""
    starts, end = setup.bank.starts, until_day if until_day is not None else setup.last_day
    pieces = []
    for day, following in zip(served, [*served[1:], end], strict=False):  # nothing served yet: no rows
        if day >= end:
            break
        rows = starts[min(following, end)] - starts[day]
        pieces.append(setup.bank[day].correct[:rows])
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=bool)


def window_means(setup: Setup, correct: np.ndarray, first_day: int, count: int) -> np.ndarray:
    """Mean of ``correct`` (rows from ``first_day`` on) over ``count`` consecutive windows starting that day;
    NaN for a window without rows (a gap in a timestamped stream)."""
    starts = setup.bank.starts
    bounds = [starts[first_day + w * setup.window_days] - starts[first_day] for w in range(count + 1)]
    cumulative = np.concatenate([[0.0], np.cumsum(correct[:bounds[-1]], dtype=float)])
    sums = cumulative[bounds[1:]] - cumulative[bounds[:-1]]
    sizes = np.diff(bounds)
    return np.where(sizes > 0, sums / np.maximum(sizes, 1), np.nan)


def window_quality(setup: Setup, correct: np.ndarray) -> np.ndarray:
    """Quality of every scored window, from the serving models' correctness since ``first_day``."""
    return window_means(setup, correct, setup.first_day, setup.windows)


def score(setup: Setup, strategy: str, retrains: list[Retrain], **extra: object) -> Outcome:
    """Replay ``retrains`` (capped by maxInterval) and measure quality, energy and carbon."""
    hours = {r.day: r.hour for r in retrains}
    served = serving_days(setup, [r.day for r in retrains])
    quality = window_quality(setup, row_correctness(setup, served))
    done = tuple(Retrain(day, hours.get(day, NOON)) for day in served[1:])
    energy = sum(setup.bank[r.day].energy_kwh for r in done)
    carbon = sum(setup.bank[r.day].energy_kwh * setup.carbon_at(r.day, r.hour) for r in done) / 1000
    observed = quality[~np.isnan(quality)]
    compliance = float((observed >= setup.target).mean()) if len(observed) else 0.0
    return Outcome(strategy, done, quality, energy, carbon, compliance, dict(extra))


def carbon_shift(setup: Setup, outcome: Outcome) -> dict[str, float]:
    """gCO2e (kWh-weighted) that the start hours saved against noon on the same retrain days (``saved``), what
    the greenest allowed hour of each of those days would have saved (``possible``: hindsight, the physical
    limit of moving a retrain within its day), and what the best single start hour for all of them would
    have saved (``fixed``: the limit of any cron with one start hour, also in hindsight)."""
    saved = possible = 0.0
    by_hour = dict.fromkeys(setup.allowed_hours, 0.0)
    for retrain in outcome.retrains:
        energy = setup.bank[retrain.day].energy_kwh
        noon = setup.carbon_at(retrain.day, NOON)
        intensity = {hour: setup.carbon_at(retrain.day, hour) for hour in setup.allowed_hours}
        saved += energy * (noon - setup.carbon_at(retrain.day, retrain.hour))
        possible += energy * (noon - min(intensity.values()))
        for hour, value in intensity.items():
            by_hour[hour] += energy * (noon - value)
    return {"saved": saved, "possible": possible, "fixed": max(by_hour.values(), default=0.0)}
