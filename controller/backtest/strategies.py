"""The baselines users pick today, and the hindsight oracle.

All of them decide at day grain from what has been observed so far (except the hindsight ones,
which are labelled so): a trigger that fires on day d retrains at the start of day d + 1.
"""

from collections.abc import Callable

import numpy as np
from river import drift

from controller.backtest.timeline import (
    NOON,
    Outcome,
    Retrain,
    Setup,
    row_correctness,
    score,
    serving_days,
    window_means,
    window_quality,
)


def fixed(setup: Setup, every_days: int, name: str | None = None) -> Outcome:
    days = list(range(setup.first_day + every_days, setup.last_day, every_days))
    return score(setup, name or f"every {every_days} days", [Retrain(d) for d in days], every_days=every_days)


def best_fixed_in_hindsight(setup: Setup) -> Outcome:
    """The cheapest every-k-days cadence that met the SLO, k up to maxInterval (k = 1 if none did)."""
    for k in range(setup.max_interval_days, 0, -1):
        outcome = fixed(setup, k, f"best fixed in hindsight (every {k} d)")
        if outcome.compliance >= setup.compliance:
            return outcome
    return fixed(setup, 1, "best fixed in hindsight (every 1 d)")


def _triggered(setup: Setup, name: str, fires: Callable[[int, np.ndarray], bool],
               restart: Callable[[], None] = lambda: None, **extra: object) -> Outcome:
    """Walk day by day; ``fires(day, correct_rows_of_that_day)`` asks for a retrain on the next day.

    Every day's rows reach ``fires``; ``restart`` runs after every retrain, the maxInterval cap's included.
    """
    starts, last, retrains = setup.bank.starts, setup.first_day, []
    for day in range(setup.first_day, setup.last_day - 1):
        rows = setup.bank[last].correct[starts[day] - starts[last]:starts[day + 1] - starts[last]]
        fired = fires(day, rows)
        if fired or day + 1 - last >= setup.max_interval_days:  # the cap, as score() applies it
            last = day + 1
            retrains.append(Retrain(last))
            restart()
    return score(setup, name, retrains, **extra)


def _window_ends(setup: Setup, day: int) -> bool:
    return (day + 1 - setup.first_day) % setup.window_days == 0


def accuracy_threshold(setup: Setup) -> Outcome:
    """Retrain when the evaluation window that just ended fell below the SLO target."""
    today: list[np.ndarray] = []

    def fires(day: int, rows: np.ndarray) -> bool:
        today.append(rows)
        if not _window_ends(setup, day):
            return False
        window = np.concatenate(today)
        today.clear()
        return bool(len(window)) and float(window.mean()) < setup.target

    return _triggered(setup, "accuracy threshold", fires)


class _Adwin:
    """river's ADWIN behind a typed face (river ships no type hints)."""

    def __init__(self, delta: float) -> None:
        self.delta = delta
        self.reset()

    def reset(self) -> None:
        self._detector = drift.ADWIN(delta=self.delta)  # type: ignore[no-untyped-call]

    def changed(self, errors: np.ndarray) -> bool:
        detected = False
        for error in errors:
            self._detector.update(bool(error))  # type: ignore[no-untyped-call]
            detected = detected or bool(self._detector.drift_detected)
        return detected


def adwin(setup: Setup, delta: float = 0.002) -> Outcome:
    """Retrain when ADWIN (river) detects a change in the serving model's error stream; then start afresh."""
    detector = _Adwin(delta)
    return _triggered(setup, "ADWIN drift trigger", lambda day, rows: detector.changed(~rows), detector.reset,
                      delta=delta)


class _Staleness:
    """CARA-style bookkeeping: quality lost since the model's first window, against a retrain's cost."""

    def __init__(self, setup: Setup, alpha: float) -> None:
        self.setup, self.alpha = setup, alpha
        self.today: list[np.ndarray] = []
        self.reference: float | None = None
        self.accumulated = 0.0

    def fires(self, day: int, rows: np.ndarray) -> bool:
        self.today.append(rows)
        if not _window_ends(self.setup, day):
            return False
        window = np.concatenate(self.today)
        self.today = []
        if not len(window):
            return False
        quality = float(window.mean())
        if self.reference is None:
            self.reference = quality
        self.accumulated += max(0.0, self.reference - quality)
        return self.accumulated > self.alpha

    def restart(self) -> None:
        self.reference, self.accumulated = None, 0.0


def cara(setup: Setup, alpha: float) -> Outcome:
    """Cost-aware trigger in the spirit of CARA (Mahadevan & Mathioudakis, 2024).

    Staleness cost accumulates per window as the drop of quality below the model's first
    window after deployment; retrain when it exceeds alpha, the cost of one retrain in the
    same units as C_alpha (windows of lost quality).
    """
    staleness = _Staleness(setup, alpha)
    return _triggered(setup, f"CARA-style (alpha={alpha:g})", staleness.fires, staleness.restart, alpha=alpha)


def _quality_table(setup: Setup, gap: int) -> np.ndarray:
    """q[k, j]: quality of window k + j served by the model trained at the start of window k."""
    table = np.full((setup.windows, gap), np.nan)
    for k in range(setup.windows):
        day = setup.first_day + k * setup.window_days
        span = min(gap, setup.windows - k)
        table[k, :span] = window_means(setup, setup.bank[day].correct, day, span)
    return table


def oracle(setup: Setup) -> Outcome:
    """Least energy that meets the SLO compliance, by dynamic programming over window starts (hindsight).

    State: (window where the serving model was trained, windows failed so far); transitions try
    every next retrain within maxInterval. Exact at this grain: retrains happen at window starts.
    """
    gap = max(1, setup.max_interval_days // setup.window_days)
    table = _quality_table(setup, gap)
    fails = (table < setup.target).astype(int)  # NaN (no rows, or beyond the last window) never fails
    scored = int(np.count_nonzero(~np.isnan(table[:, 0])))  # windows with rows: the compliance denominator
    n, allowed = setup.windows, int(np.floor((1 - setup.compliance) * scored + 1e-9))
    cost = np.array([setup.bank[setup.first_day + k * setup.window_days].energy_kwh if k else 0.0
                     for k in range(n)])
    best = np.full((n + 1, allowed + 1), np.inf)  # best[k, f]: least energy with a model trained at window k
    best[0, 0] = 0.0
    parent: dict[tuple[int, int], tuple[int, int]] = {}
    for k in range(n):
        for f in map(int, np.flatnonzero(np.isfinite(best[k]))):
            failed = 0
            for j in range(1, min(gap, n - k) + 1):
                failed += fails[k, j - 1]
                if f + failed > allowed:
                    break
                nxt, energy = k + j, best[k, f] + (cost[k + j] if k + j < n else 0.0)
                if energy < best[nxt, f + failed]:
                    best[nxt, f + failed] = energy
                    parent[(nxt, f + failed)] = (k, f)
    return _replay_oracle(setup, best, parent, "oracle (hindsight)")


def _replay_oracle(setup: Setup, best: np.ndarray, parent: dict[tuple[int, int], tuple[int, int]],
                   name: str) -> Outcome:
    n = setup.windows
    if not np.isfinite(best[n]).any():  # no plan meets the SLO even retraining every window
        return score(setup, name, [Retrain(setup.first_day + k * setup.window_days) for k in range(1, n)])
    state = (n, int(np.argmin(best[n])))
    starts = []
    while state in parent:
        state = parent[state]
        starts.append(state[0])
    days = [setup.first_day + k * setup.window_days for k in sorted(starts) if k > 0]
    return score(setup, name, [Retrain(d, NOON) for d in days])


def oracle_cost(setup: Setup, alpha: float, mean_energy: float) -> float:
    """Least C_alpha in hindsight (same grain as ``oracle``): the lower bound for the alpha sweep."""
    gap = max(1, setup.max_interval_days // setup.window_days)
    table = _quality_table(setup, gap)
    loss = np.where(np.isnan(table), 0.0, 1 - table)  # windows without rows lose nothing
    n = setup.windows
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    for k in range(n):
        retrain = alpha * setup.bank[setup.first_day + k * setup.window_days].energy_kwh / mean_energy if k else 0.0
        accumulated = best[k] + retrain
        for j in range(1, min(gap, n - k) + 1):
            accumulated += loss[k, j - 1]
            best[k + j] = min(best[k + j], accumulated)
    return float(best[n])


def daily_window_quality(setup: Setup) -> np.ndarray:
    """Per-window quality of retraining every day: the reference of ``--slo auto``."""
    served = serving_days(setup, list(range(setup.first_day + 1, setup.last_day)))
    return window_quality(setup, row_correctness(setup, served))
