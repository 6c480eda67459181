"""Drift signals as a cost-model feature: when recent windows drift more than usual, expect lower quality.

A drift score logged per evaluation window (e.g. PSI of the window's inputs, a detector's statistic)
enters the model additively: quality = f(age) + slope * (drift - centre). The forecast holds drift at
its recent level, so a drifting period shifts the whole curve down and asks for more frequent
retrains. The signal is used only when it lowers the cross-validated error by DRIFT_CV_GAIN:
a score that explains nothing must not move decisions.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DRIFT_CV_GAIN = 0.01
RECENT_EVALUATION_TIMES = 3
FOLDS = 5

CurveFit = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (ages, qualities, at ages) -> fitted


@dataclass(frozen=True)
class DriftEffect:
    slope: float  # quality per unit of drift
    centre: float  # mean drift over the history
    now: float  # mean drift of the latest evaluations: the level the forecast assumes
    cv_mae: float  # of age + drift
    cv_mae_age_only: float  # on the same folds

    @property
    def shift(self) -> float:
        """How far the recent drift moves the quality curve."""
        return self.slope * (self.now - self.centre)

    def remove(self, qualities: np.ndarray, drifts: np.ndarray) -> np.ndarray:
        """Qualities as if every window had drifted by the average amount."""
        return qualities - self.slope * (drifts - self.centre)


def _slope(ages: np.ndarray, qualities: np.ndarray, drifts: np.ndarray, curve: CurveFit) -> tuple[float, float]:
    """One backfitting step: the age curve first, then the drift slope on what it leaves."""
    centre = float(drifts.mean())
    residuals = qualities - curve(ages, qualities, ages)
    spread = drifts - centre
    variance = float(spread @ spread)
    return (float(spread @ residuals) / variance if variance > 0 else 0.0), centre


def _cv_maes(ages: np.ndarray, qualities: np.ndarray, drifts: np.ndarray, curve: CurveFit,
             seed: int) -> tuple[float, float]:
    """Cross-validated mean absolute error by age alone and by age + drift, on the same folds."""
    order = np.random.default_rng(seed).permutation(len(ages))
    age_only, with_drift = [], []
    for test in np.array_split(order, FOLDS):
        train = np.setdiff1d(order, test)
        age_only.append(np.abs(qualities[test] - curve(ages[train], qualities[train], ages[test])))
        slope, centre = _slope(ages[train], qualities[train], drifts[train], curve)
        adjusted = qualities[train] - slope * (drifts[train] - centre)
        predicted = curve(ages[train], adjusted, ages[test]) + slope * (drifts[test] - centre)
        with_drift.append(np.abs(qualities[test] - predicted))
    return float(np.mean(np.concatenate(age_only))), float(np.mean(np.concatenate(with_drift)))


def fit_drift_effect(ages: np.ndarray, qualities: np.ndarray, drifts: np.ndarray, times: np.ndarray,
                     curve: CurveFit, seed: int) -> DriftEffect | None:
    """The drift effect, or None when some evaluation has no drift score or drift does not help."""
    if len(drifts) < 2 * FOLDS or np.isnan(drifts).any() or np.ptp(drifts) == 0:
        return None
    age_only, with_drift = _cv_maes(ages, qualities, drifts, curve, seed)
    if not with_drift < age_only * (1 - DRIFT_CV_GAIN):
        return None
    slope, centre = _slope(ages, qualities, drifts, curve)
    latest = np.unique(times)[-RECENT_EVALUATION_TIMES:]
    return DriftEffect(slope, centre, float(drifts[np.isin(times, latest)].mean()), with_drift, age_only)
