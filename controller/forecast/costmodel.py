"""The learned cost model: how quality decays with model age, and what a retrain costs.

Fitted per policy from its own history. Quality curves are monotone in age (isotonic
regression, and a monotone quantile model for p10); the chance that one evaluation window
meets the SLO comes from the mean curve and the residual spread, with bootstrap replicates,
so the simulator can report a pessimistic (lower-bound) compliance instead of a point guess.
Ages beyond what the history covers are treated as unknown (probability 0 of meeting the
SLO): the optimiser never bets on extrapolation. With too little history the model says so and
falls back to a conservative prior: the observed share of windows that met the SLO at each age
or younger, with no bootstrap spread and nothing beyond the oldest age seen.
A drift score logged with the evaluations enters when it improves the cross-validated fit
(``drifteffect``): the curves are then held at the recent drift level.
"""

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import KFold, cross_val_predict

from controller.errors import StalledError
from controller.forecast.carbon import CarbonProfile, fit_carbon_profile
from controller.forecast.drift import DriftEffect, fit_drift_effect
from controller.telemetry.history import History

MIN_EVALUATIONS = 20
MIN_TRAININGS = 3
BOOTSTRAP_REPLICATES = 40
GRID_STEP_DAYS = 1 / 24


@dataclass(frozen=True, eq=False)
class CostModel:
    """Curves over a grid of model ages (days) plus per-retrain cost figures."""

    age_grid_days: np.ndarray
    quality_mean: np.ndarray
    quality_p10: np.ndarray
    meet_probability: np.ndarray  # shape (replicates, grid): P(window meets SLO | age)
    max_age_days: float
    energy_per_retrain_kwh: float
    energy_samples: int
    retrain_duration: timedelta
    evaluations: int
    trainings: int
    cv_mae: float
    carbon: CarbonProfile
    energy_estimated: bool
    prior: str | None = None  # why the conservative prior replaced the fitted curves, if it did
    energy_per_deploy_kwh: float = 0.0
    deploy_energy_samples: int = 0  # 0: the policy's declared figure (or 0 kWh), not a measurement
    training_window_days: float | None = None  # the data window these curves were learnt with, when known
    drift: DriftEffect | None = None  # set when a logged drift signal improved the fit
    drift_logged: bool = False

    @property
    def carbon_intensity_g_per_kwh(self) -> float:
        return self.carbon.mean

    def age_for_gain(self, gain: float) -> float:
        """The youngest serving-model age (days) at which a fresh retrain is expected to beat it by ``gain``:
        a promotion gate of ``gain`` deploys retrains only from that age on (inf: never within known ages)."""
        if gain <= 0:
            return 0.0
        reached = np.flatnonzero(self.quality_mean[0] - self.quality_mean >= gain - 1e-12)
        return float(self.age_grid_days[reached[0]]) if len(reached) else float("inf")

    def at(self, curve: np.ndarray, ages_days: np.ndarray) -> np.ndarray:
        """Interpolate ``curve`` at ``ages_days``; unknown ages (beyond the data) give NaN."""
        values = np.interp(ages_days, self.age_grid_days, curve)
        return np.where(ages_days <= self.max_age_days, values, np.nan)


@dataclass(frozen=True)
class Observations:
    """Evaluations of known model versions: age at mid-window (days), quality, training index,
    drift score (NaN when not logged) and time (epoch seconds)."""

    ages: np.ndarray
    qualities: np.ndarray
    groups: np.ndarray
    drifts: np.ndarray
    times: np.ndarray


def evaluation_ages(history: History, window: timedelta) -> Observations:
    """The evaluations whose model version is known, with the age of that version at mid-window."""
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
    return Observations(columns[0], columns[1], columns[2].astype(int), columns[3], columns[4])


def _isotonic(ages: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The monotone decreasing quality-vs-age curve fitted to (ages, values), evaluated at ``grid``."""
    model = IsotonicRegression(increasing=False, out_of_bounds="clip")
    return np.asarray(model.fit(ages, values).predict(grid), dtype=float)


def _quantile_curve(ages: np.ndarray, qualities: np.ndarray, grid: np.ndarray, seed: int) -> np.ndarray:
    model = HistGradientBoostingRegressor(
        loss="quantile", quantile=0.1, monotonic_cst=[-1], max_iter=150,
        min_samples_leaf=max(5, len(ages) // 20), random_state=seed)
    model.fit(ages.reshape(-1, 1), qualities)
    return np.asarray(model.predict(grid.reshape(-1, 1)), dtype=float)


def _meet_curve(ages: np.ndarray, qualities: np.ndarray, grid: np.ndarray, target: float) -> np.ndarray:
    """P(quality >= target | age): the monotone mean curve plus the pooled residual distribution.

    Pooling residuals over all ages uses every sample to estimate the noise, where a per-age
    proportion would be overconfident (40 passes out of 40 is not a certainty).
    """
    model = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(ages, qualities)
    residuals = np.sort(qualities - model.predict(ages))
    needed = target - np.asarray(model.predict(grid), dtype=float)
    passing = len(residuals) - np.searchsorted(residuals, needed, side="left")
    return np.asarray(passing / len(residuals), dtype=float)


def _meet_replicates(ages: np.ndarray, qualities: np.ndarray, groups: np.ndarray, grid: np.ndarray,
                     target: float, seed: int) -> np.ndarray:
    """The full-data curve first, then bootstrap replicates for a lower confidence bound.

    Resampling is by model version (all evaluations of one retrain together): evaluations of
    the same model are correlated, and resampling them one by one would overstate confidence.
    """
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    replicates = [_meet_curve(ages, qualities, grid, target)]
    for _ in range(BOOTSTRAP_REPLICATES - 1):
        sample = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        replicates.append(_meet_curve(ages[sample], qualities[sample], grid, target))
    return np.vstack(replicates)


def _cv_mae(ages: np.ndarray, qualities: np.ndarray, seed: int) -> float:
    folds = KFold(n_splits=5, shuffle=True, random_state=seed)
    model = IsotonicRegression(increasing=False, out_of_bounds="clip")
    predicted = cross_val_predict(model, ages, qualities, cv=folds)
    return float(mean_absolute_error(qualities, predicted))


def _energy(history: History) -> tuple[float, int]:
    """Mean energy per retrain; with fewer than MIN_TRAININGS measurements the largest one (conservative)."""
    values = [t.energy_kwh for t in history.trainings if t.energy_kwh is not None and t.energy_kwh >= 0]
    if not values:
        raise StalledError(
            f"none of the {len(history.trainings)} training runs of {history.policy} in {history.source} "
            "has an energy figure; log energy_kwh (or set spec.telemetry.energy.metric) on the training runs, "
            "or check that the energy query covers them")
    return (float(np.mean(values)) if len(values) >= MIN_TRAININGS else float(max(values))), len(values)


def _deploy_energy(history: History, declared: float | None) -> tuple[float, int]:
    """Mean logged energy per deploy; without any, the policy's declared figure, else 0."""
    values = [t.deploy_energy_kwh for t in history.trainings
              if t.deploy_energy_kwh is not None and t.deploy_energy_kwh >= 0]
    if values:
        return float(np.mean(values)), len(values)
    return (declared or 0.0), 0


def _prior_meet(ages: np.ndarray, qualities: np.ndarray, grid: np.ndarray, target: float) -> np.ndarray:
    """P(meet | age) on thin data, pessimistic by construction: at each age, the worst share of windows
    that met the target among the evaluations at that age *or older* (so a failure at any older age
    counts against every younger one); the youngest ages get the share over all evaluations."""
    order = np.argsort(ages)
    met = (qualities[order] >= target).astype(float)
    tail_share = np.cumsum(met[::-1])[::-1] / np.arange(len(met), 0, -1)
    pessimistic = np.minimum.accumulate(tail_share)
    index = np.searchsorted(ages[order], grid, side="right") - 1
    return pessimistic[np.clip(index, 0, None)].reshape(1, -1)


def _thin_history_reason(history: History, evaluations: int, energy_samples: int) -> str | None:
    if len(history.trainings) >= MIN_TRAININGS and evaluations >= MIN_EVALUATIONS \
            and energy_samples >= MIN_TRAININGS:
        return None
    return (f"thin history: {len(history.trainings)} training runs ({energy_samples} with energy) and "
            f"{evaluations} evaluations with a known model version, below the {MIN_TRAININGS} and "
            f"{MIN_EVALUATIONS} needed to fit; a conservative prior is used (no model older than any seen so "
            "far, the largest energy measured)")


def fit_cost_model(history: History, target: float, window: timedelta, seed: int,
                   default_carbon_intensity: float, declared_deploy_energy_kwh: float | None = None,
                   training_window_days: float | None = None) -> CostModel:
    """Fit the curves (or the conservative prior on thin data); stall when there is nothing to go on."""
    if not history.trainings:
        raise StalledError(
            f"no finished training runs tagged greenops.policy={history.policy} and greenops.kind=training in "
            f"{history.source}; tag the model's retraining runs as described in the README (Telemetry contract)")
    seen = evaluation_ages(history, window)
    ages, groups = seen.ages, seen.groups
    if len(ages) == 0:
        raise StalledError(
            f"no evaluations of a known model version of {history.policy} in {history.source}; log production "
            "quality per evaluation window with the model_version that served it (README, Telemetry contract)")
    energy, energy_samples = _energy(history)
    prior = _thin_history_reason(history, len(ages), energy_samples)
    drift = None if prior else fit_drift_effect(ages, seen.qualities, seen.drifts, seen.times, _isotonic, seed)
    # With a drift effect the curves are fitted to drift-neutral qualities, then moved to today's drift.
    qualities = drift.remove(seen.qualities, seen.drifts) if drift else seen.qualities
    shift = drift.shift if drift else 0.0
    # A window's evaluation covers the model from the window's start to its end: ages up to the
    # end were observed, though the curves are fitted at the window's middle.
    half_window = window / timedelta(days=1) / 2
    max_age = float(ages.max() if prior else np.quantile(ages, 0.98)) + half_window
    grid = np.arange(0.0, max_age + GRID_STEP_DAYS, GRID_STEP_DAYS)
    durations = [t.duration_s for t in history.trainings if t.duration_s is not None]
    mean_curve = _isotonic(ages, qualities, grid) + shift
    deploy_energy, deploy_samples = _deploy_energy(history, declared_deploy_energy_kwh)
    return CostModel(
        age_grid_days=grid,
        quality_mean=mean_curve,
        quality_p10=mean_curve if prior else _quantile_curve(ages, qualities, grid, seed) + shift,
        meet_probability=(_prior_meet(ages, qualities, grid, target) if prior
                          else _meet_replicates(ages, qualities, groups, grid, target - shift, seed)),
        max_age_days=max_age,
        energy_per_retrain_kwh=energy,
        energy_samples=energy_samples,
        retrain_duration=timedelta(seconds=float(np.median(durations)) if durations else 0.0),
        evaluations=len(ages),
        trainings=len(history.trainings),
        cv_mae=float("nan") if prior else drift.cv_mae if drift else _cv_mae(ages, qualities, seed),
        carbon=fit_carbon_profile(history.carbon_samples, default_carbon_intensity),
        energy_estimated=history.energy_estimated,
        prior=prior,
        energy_per_deploy_kwh=deploy_energy,
        deploy_energy_samples=deploy_samples,
        training_window_days=training_window_days,
        drift=drift,
        drift_logged=bool(np.isfinite(seen.drifts).any()),
    )
