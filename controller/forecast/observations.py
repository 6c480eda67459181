"""Evaluations as the forecaster reads them: which window each scores, the version's age, who served.

Several versions scored on the same window (production plus shadow evaluations, logged moments apart)
share a window index. The serving version of a window is the youngest one that was ready by the
window's middle; the others are shadows (inference only).
"""

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from controller.telemetry.history import History

SAME_WINDOW_SECONDS = 300  # evaluations of one window logged this close together are the same window


@dataclass(frozen=True)
class Observations:
    """Evaluations of known versions, oldest window first: age at mid-window (days), quality, training
    index, drift score (NaN when not logged), time (epoch seconds), window index (0 = oldest) and whether
    the version served that window."""

    ages: np.ndarray
    qualities: np.ndarray
    groups: np.ndarray
    drifts: np.ndarray
    times: np.ndarray
    windows: np.ndarray
    serving: np.ndarray

    @property
    def window_count(self) -> int:
        return int(self.windows.max()) + 1 if len(self.windows) else 0

    def serving_qualities(self) -> np.ndarray:
        """The serving version's quality on each window, oldest first."""
        return np.asarray(self.qualities[self.serving])


def _window_index(times: np.ndarray) -> np.ndarray:
    """Consecutive indices for distinct window-end times, merging stamps less than SAME_WINDOW_SECONDS apart."""
    if not len(times):
        return np.zeros(0, dtype=int)
    order = np.argsort(times, kind="stable")
    starts_new = np.concatenate([[False], np.diff(times[order]) > SAME_WINDOW_SECONDS])
    index = np.empty(len(times), dtype=int)
    index[order] = np.cumsum(starts_new)
    return index


def _serving_flags(ages: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """True for the youngest version of each window (ages are all >= 0 here, ready by mid-window)."""
    flags = np.zeros(len(ages), dtype=bool)
    if not len(ages):
        return flags
    order = np.lexsort((ages, windows))
    first = np.concatenate([[True], windows[order][1:] != windows[order][:-1]])
    flags[order[first]] = True
    return flags


def observe(history: History, window: timedelta) -> Observations:
    """The evaluations whose model version is known and was ready by the window's middle."""
    ready = {t.version: t.finished_at for t in history.trainings}
    index = {t.version: number for number, t in enumerate(history.trainings)}
    rows = []
    for evaluation in history.evaluations:
        finished = ready.get(evaluation.version)
        if finished is None:
            continue
        age = (evaluation.at - window / 2 - finished) / timedelta(days=1)
        if age >= 0:
            drift = evaluation.drift if evaluation.drift is not None else np.nan
            rows.append((age, evaluation.quality, index[evaluation.version], drift, evaluation.at.timestamp()))
    columns = np.asarray(rows, dtype=float).reshape(-1, 5).T
    windows = _window_index(columns[4])
    order = np.lexsort((columns[0], windows))
    ages, qualities, groups, drifts, times = (c[order] for c in columns)
    windows = windows[order]
    return Observations(ages, qualities, groups.astype(int), drifts, times, windows, _serving_flags(ages, windows))
