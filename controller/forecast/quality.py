"""Quality forecaster: a hard period (every model does badly) is told apart from a stale model.

An evaluation is the quality of model version v on evaluation window j. The forecaster fits

    quality(v, j) = effect(j) + age_curve(age of v at the middle of j) + noise

where ``effect(j)`` is shared by every version scored on window j (how hard that window was) and
``age_curve`` is monotone decreasing (isotonic), learnt from versions of different ages scored on the
same windows: production and shadow evaluations side by side. That is what separates the two: in a
hard period the serving model and the older shadows drop together (the effect moves, the curve does
not), while a stale model drops against younger ones on the same window. Without shadow evaluations
(one version per window) the two cannot be told apart; the curve is then fitted by age alone and
``separated`` says so.

Window effects follow an AR(1) process around their mean, so the next window's effect is forecast
from the latest one; the spread of the one-step forecast errors of the serving model's quality gives
the chance that a window misses the SLO. The forecaster also scores itself on the history (rolling
origin: refit on the past of each origin, forecast the next window) so a reviewer sees how good its
forecasts have been.
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from controller.estimators import Curve, decreasing_curve

BACKFIT_ROUNDS = 6
MIN_COMPARED_WINDOWS = 5  # windows scored on two versions or more before the age curve is trusted
MAX_PERSISTENCE = 0.95
ROLLING_ORIGINS = 8
MIN_ORIGIN_WINDOWS = 6  # windows a rolling-origin fit needs before its first forecast


@dataclass(frozen=True)
class Scored:
    """Evaluations with a known version: age (days, at mid-window), quality, window index (0 = oldest
    window, in time order), version index, and whether that version served the window."""

    ages: np.ndarray
    qualities: np.ndarray
    windows: np.ndarray
    versions: np.ndarray
    serving: np.ndarray

    def take(self, keep: np.ndarray) -> "Scored":
        return Scored(self.ages[keep], self.qualities[keep], self.windows[keep], self.versions[keep],
                      self.serving[keep])


@dataclass(frozen=True, eq=False)
class QualityForecaster:
    """The fitted model: the age curve on a grid, the window-effect process and the forecast errors."""

    grid_step_days: float
    age_curves: np.ndarray  # (replicates, grid): the point fit first, then bootstrap replicates by version
    effects: np.ndarray  # effect of each window, oldest first
    effect_mean: float
    persistence: float  # AR(1) coefficient of the window effects, in [0, MAX_PERSISTENCE]
    innovations: np.ndarray  # AR(1) residuals of the effects, to simulate future windows
    noise: np.ndarray  # residuals of single evaluations around effect + curve, sorted
    spread: np.ndarray  # residuals of single evaluations around the mean effect + curve
    errors: np.ndarray  # one-step forecast errors of the serving model's quality, sorted
    separated: bool  # shadow evaluations let the curve be learnt apart from the window effects
    compared_windows: int  # windows scored on two versions or more
    forecast_mae: float  # rolling-origin mean absolute error of the one-step forecast (NaN: too short)
    naive_mae: float  # the same for "next window = last window's serving quality", for comparison
    origins: int  # forecasts behind forecast_mae

    @property
    def age_curve(self) -> np.ndarray:
        return np.asarray(self.age_curves[0])

    @property
    def latest_effect(self) -> float:
        return float(self.effects[-1]) if len(self.effects) else self.effect_mean

    def next_effect(self, latest: float | np.ndarray, steps: float | np.ndarray = 1) -> np.ndarray:
        """Forecast effect ``steps`` windows after a window whose effect was ``latest``."""
        decay = np.power(self.persistence, np.maximum(steps, 0))
        return np.asarray(self.effect_mean + decay * (np.asarray(latest) - self.effect_mean))

    @cached_property
    def _padded(self) -> np.ndarray:
        """The curves flattened, each with its last value repeated once: interpolation never reads past a row."""
        return np.hstack([self.age_curves, self.age_curves[:, -1:]]).ravel()

    def curve(self, ages_days: np.ndarray | float, replicate: np.ndarray | int = 0) -> np.ndarray:
        """Age curve at ``ages_days`` (linear between grid points, flat beyond the grid); ``replicate`` picks the
        bootstrap replicate per element (broadcast with the ages). Called millions of times by the simulator."""
        width = self.age_curves.shape[1]
        position = np.multiply(ages_days, 1 / self.grid_step_days, dtype=float)
        position = np.clip(position, 0, width - 1, out=position if position.ndim else None)
        low = position.astype(np.intp)  # non-negative, so truncation is the floor
        index = low + np.multiply(replicate, width + 1)
        left = self._padded[index]
        return np.asarray(left + (self._padded[index + 1] - left) * (position - low))

    def spread_quantile(self, share: float) -> float:
        """Quantile of a single evaluation's quality around the mean curve (window effect plus noise)."""
        return float(np.quantile(self.spread, share)) if len(self.spread) else 0.0

    @cached_property
    def _error_cdf(self) -> tuple[np.ndarray, np.ndarray]:
        """The forecast errors' distribution function, linear between samples: a small change of the forecast
        changes the probability a little, never by nothing (steps would hide a fresh model's small gain)."""
        errors = self.errors
        spread = max(float(np.ptp(errors)), 1e-6) if len(errors) else 1e-6
        points = np.concatenate([[errors[0] - spread / len(errors)], errors, [errors[-1] + spread / len(errors)]])
        shares = np.concatenate([[0.0], (np.arange(len(errors)) + 0.5) / len(errors), [1.0]])
        return points, shares

    def miss_probability(self, expected: np.ndarray, target: float) -> np.ndarray:
        """P(quality < target) for a forecast ``expected``, from the one-step forecast errors."""
        points, shares = self._error_cdf
        return np.asarray(np.interp(target - np.asarray(expected, dtype=float), points, shares))


def _compared(scored: Scored) -> int:
    """Windows on which two or more versions were scored."""
    counts = np.bincount(scored.windows)
    return int(np.count_nonzero(counts >= 2))


def backfit(scored: Scored, windows: int) -> tuple[Curve, np.ndarray]:
    """Alternate the age curve (on quality minus window effect) and the window effects (mean of quality
    minus curve over the versions scored on the window). A window scored on one version only gets the
    whole residual as its effect, so it informs the effect, never the curve."""
    effects = np.zeros(windows)
    counts = np.maximum(np.bincount(scored.windows, minlength=windows), 1)
    curve = decreasing_curve(scored.ages, scored.qualities)
    for _ in range(BACKFIT_ROUNDS):
        residual = scored.qualities - curve.predict(scored.ages)
        effects = np.bincount(scored.windows, weights=residual, minlength=windows) / counts
        curve = decreasing_curve(scored.ages, scored.qualities - effects[scored.windows])
    return curve, effects


def _age_only(scored: Scored, windows: int) -> tuple[Curve, np.ndarray]:
    """No shadow evaluations: the curve by age alone; each window's effect is what the curve leaves."""
    curve = decreasing_curve(scored.ages, scored.qualities)
    residual = scored.qualities - curve.predict(scored.ages)
    counts = np.maximum(np.bincount(scored.windows, minlength=windows), 1)
    return curve, np.bincount(scored.windows, weights=residual, minlength=windows) / counts


def _fit_curve(scored: Scored, windows: int) -> tuple[Curve, np.ndarray, bool]:
    separated = _compared(scored) >= MIN_COMPARED_WINDOWS
    curve, effects = backfit(scored, windows) if separated else _age_only(scored, windows)
    return curve, effects, separated


def _persistence(effects: np.ndarray) -> tuple[float, float, np.ndarray]:
    """AR(1) around the mean: (mean, coefficient, innovations)."""
    mean = float(effects.mean()) if len(effects) else 0.0
    centred = effects - mean
    if len(effects) < 4 or not np.any(centred[:-1]):
        return mean, 0.0, centred
    coefficient = float(centred[:-1] @ centred[1:] / (centred[:-1] @ centred[:-1]))
    coefficient = float(np.clip(coefficient, 0.0, MAX_PERSISTENCE))
    return mean, coefficient, centred[1:] - coefficient * centred[:-1]


def _serving_rows(scored: Scored) -> np.ndarray:
    """Row of the serving version's evaluation of each window (-1: no production evaluation), by window."""
    rows = np.full(int(scored.windows.max()) + 1 if len(scored.windows) else 0, -1)
    serving = np.flatnonzero(scored.serving)
    rows[scored.windows[serving]] = serving
    return rows


def _one_step_errors(scored: Scored, curve: Curve, effects: np.ndarray, mean: float,
                     persistence: float) -> np.ndarray:
    """Serving quality of each window minus its forecast from the previous window's effect."""
    rows = _serving_rows(scored)
    errors = []
    for window in range(1, len(rows)):
        row = rows[window]
        if row < 0:
            continue
        forecast = mean + persistence * (effects[window - 1] - mean) + curve.predict(scored.ages[row:row + 1])[0]
        errors.append(scored.qualities[row] - forecast)
    return np.sort(np.asarray(errors, dtype=float))


def rolling_origin(scored: Scored, windows: int) -> tuple[float, float, int]:
    """Mean absolute error of one-step forecasts made from the past only, at up to ROLLING_ORIGINS origins
    spread over the second half of the history; and that of the naive forecast (last serving quality)."""
    rows = _serving_rows(scored)
    candidates = [w for w in range(max(MIN_ORIGIN_WINDOWS, windows // 2), windows) if rows[w] >= 0 and rows[w - 1] >= 0]
    if not candidates:
        return float("nan"), float("nan"), 0
    origins = [candidates[int(i)] for i in np.unique(np.linspace(0, len(candidates) - 1, ROLLING_ORIGINS).round())]
    errors, naive = [], []
    for origin in origins:
        past = scored.take(scored.windows < origin)
        curve, effects, _ = _fit_curve(past, origin)
        mean, persistence, _ = _persistence(effects)
        row = rows[origin]
        forecast = mean + persistence * (effects[origin - 1] - mean) + curve.predict(scored.ages[row:row + 1])[0]
        errors.append(abs(scored.qualities[row] - forecast))
        naive.append(abs(scored.qualities[row] - scored.qualities[rows[origin - 1]]))
    return float(np.mean(errors)), float(np.mean(naive)), len(origins)


def _replicate_curves(scored: Scored, windows: int, grid: np.ndarray, point: np.ndarray, replicates: int,
                      seed: int, separated: bool) -> np.ndarray:
    """The point curve, then curves refitted on versions resampled with replacement (all evaluations of a
    version together: they are correlated, and resampling them one by one would overstate confidence)."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(scored.versions == v) for v in np.unique(scored.versions)]
    curves = [point]
    for _ in range(replicates - 1):
        sample = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        resampled = scored.take(sample)
        fit = backfit(resampled, windows)[0] if separated else _age_only(resampled, windows)[0]
        curves.append(np.asarray(fit.predict(grid), dtype=float))
    return np.vstack(curves)


def fit_quality_forecaster(scored: Scored, grid: np.ndarray, replicates: int, seed: int,
                           score_itself: bool = True, shift: float = 0.0) -> QualityForecaster:
    """Fit the forecaster on ``scored`` (window indices 0..n-1 in time order); ``grid`` is evenly spaced
    from 0. ``score_itself=False`` skips the rolling-origin score (the gate does not need it). ``shift``
    moves every window effect (a drift level held at its recent value)."""
    windows = int(scored.windows.max()) + 1
    curve, effects, separated = _fit_curve(scored, windows)
    mean, persistence, innovations = _persistence(effects)
    errors = _one_step_errors(scored, curve, effects, mean, persistence)
    if not len(errors):  # a single window: the spread of its evaluations is all there is
        errors = np.sort(scored.qualities - curve.predict(scored.ages))
    noise = np.sort(scored.qualities - effects[scored.windows] - curve.predict(scored.ages))
    point = np.asarray(curve.predict(grid), dtype=float)
    mae, naive, origins = rolling_origin(scored, windows) if score_itself else (float("nan"),) * 2 + (0,)
    return QualityForecaster(
        grid_step_days=float(grid[1] - grid[0]) if len(grid) > 1 else 1.0,
        age_curves=_replicate_curves(scored, windows, grid, point, replicates, seed, separated),
        effects=effects + shift, effect_mean=mean + shift, persistence=persistence, innovations=innovations,
        noise=noise, spread=scored.qualities - mean - curve.predict(scored.ages), errors=errors,
        separated=separated, compared_windows=_compared(scored),
        forecast_mae=mae, naive_mae=naive, origins=origins)
