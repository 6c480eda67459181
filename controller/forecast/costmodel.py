"""The learned cost model: what a fresh model buys (the quality forecaster), what a retrain costs.

Fitted per policy from its own history. The quality forecaster (``quality``) separates hard periods
from stale models and says how likely a window is to miss the SLO given the serving model's age and
the latest window's effect; the simulator and the run-time rule both read it. Ages beyond what the
history covers are treated as unknown (a certain SLO miss): the optimiser never bets on
extrapolation. With too little history the model says so and falls back to a conservative prior: the
observed share of windows that met the SLO at each age or younger, with no spread and nothing beyond
the oldest age seen, and no run-time rule (every fire retrains).
A drift score logged with the evaluations enters when it improves the cross-validated fit
(``drift``): the curves are then held at the recent drift level.
"""

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from controller.errors import StalledError
from controller.estimators import decreasing_curve_at
from controller.forecast.carbon import CarbonProfile, fit_carbon_profile
from controller.forecast.drift import DriftEffect, fit_drift_effect
from controller.forecast.observations import Observations, observe
from controller.forecast.quality import QualityForecaster, Scored, fit_quality_forecaster
from controller.telemetry.history import History

MIN_EVALUATIONS = 20
MIN_TRAININGS = 3
CURVE_REPLICATES = 8  # bootstrap replicates of the age curve: the spread behind the compliance lower bound
GRID_STEP_DAYS = 1 / 24


@dataclass(frozen=True, eq=False)
class CostModel:
    """Curves over a grid of model ages (days), the quality forecaster, and per-retrain cost figures."""

    age_grid_days: np.ndarray
    quality_mean: np.ndarray  # expected quality by age, in a window of average difficulty
    quality_p10: np.ndarray  # 10th percentile of a window's quality by age
    max_age_days: float
    energy_per_retrain_kwh: float
    energy_samples: int
    retrain_duration: timedelta
    evaluations: int
    trainings: int
    carbon: CarbonProfile
    energy_estimated: bool
    quality: QualityForecaster | None  # None on thin history (the prior below applies)
    prior_meet: np.ndarray | None = None  # thin history: P(window meets the SLO | age), pessimistic
    prior: str | None = None  # why the conservative prior replaced the forecaster, if it did
    energy_per_deploy_kwh: float = 0.0
    deploy_energy_samples: int = 0  # 0: the policy's declared figure (or 0 kWh), not a measurement
    training_window_days: float | None = None  # the data window these curves were learnt with, when known
    drift: DriftEffect | None = None  # set when a logged drift signal improved the fit
    drift_logged: bool = False

    @property
    def carbon_intensity_g_per_kwh(self) -> float:
        return self.carbon.mean

    @property
    def forecast_mae(self) -> float:
        return self.quality.forecast_mae if self.quality else float("nan")

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


def _scored(seen: Observations, qualities: np.ndarray) -> Scored:
    return Scored(seen.ages, qualities, seen.windows, seen.groups, seen.serving)


def fit_cost_model(history: History, target: float, window: timedelta, seed: int,
                   default_carbon_intensity: float, declared_deploy_energy_kwh: float | None = None,
                   training_window_days: float | None = None, score_itself: bool = True,
                   replicates: int = CURVE_REPLICATES) -> CostModel:
    """Fit the forecaster (or the conservative prior on thin data); stall when there is nothing to go on.

    ``score_itself=False`` skips the forecaster's rolling-origin score and ``replicates=1`` its bootstrap:
    the gate needs neither, only the point fit.
    """
    if not history.trainings:
        raise StalledError(
            f"no finished training runs tagged greenops.policy={history.policy} and greenops.kind=training in "
            f"{history.source}; tag the model's retraining runs as described in the README (Telemetry contract)")
    seen = observe(history, window)
    ages = seen.ages
    if len(ages) == 0:
        raise StalledError(
            f"no evaluations of a known model version of {history.policy} in {history.source}; log production "
            "quality per evaluation window with the model_version that served it (README, Telemetry contract)")
    energy, energy_samples = _energy(history)
    prior = _thin_history_reason(history, len(ages), energy_samples)
    drift = None if prior else fit_drift_effect(ages, seen.qualities, seen.drifts, seen.times, decreasing_curve_at,
                                                seed)
    # With a drift effect the curves are fitted to drift-neutral qualities, then moved to today's drift.
    qualities = drift.remove(seen.qualities, seen.drifts) if drift else seen.qualities
    shift = drift.shift if drift else 0.0
    # A window's evaluation covers the model from the window's start to its end: ages up to the
    # end were observed, though the curves are fitted at the window's middle.
    half_window = window / timedelta(days=1) / 2
    max_age = float(ages.max() if prior else np.quantile(ages, 0.98)) + half_window
    grid = np.arange(0.0, max_age + GRID_STEP_DAYS, GRID_STEP_DAYS)
    durations = [t.duration_s for t in history.trainings if t.duration_s is not None]
    deploy_energy, deploy_samples = _deploy_energy(history, declared_deploy_energy_kwh)
    forecaster = None if prior else fit_quality_forecaster(_scored(seen, qualities), grid, replicates, seed,
                                                           score_itself, shift)
    if forecaster is None:
        mean_curve = p10_curve = decreasing_curve_at(ages, qualities, grid)
    else:
        mean_curve = forecaster.age_curve + forecaster.effect_mean
        p10_curve = mean_curve + forecaster.spread_quantile(0.10)
    return CostModel(
        age_grid_days=grid,
        quality_mean=mean_curve,
        quality_p10=p10_curve,
        max_age_days=max_age,
        energy_per_retrain_kwh=energy,
        energy_samples=energy_samples,
        retrain_duration=timedelta(seconds=float(np.median(durations)) if durations else 0.0),
        evaluations=len(ages),
        trainings=len(history.trainings),
        carbon=fit_carbon_profile(history.carbon_samples, default_carbon_intensity),
        energy_estimated=history.energy_estimated,
        quality=forecaster,
        prior_meet=_prior_meet(ages, qualities, grid, target)[0] if prior else None,
        prior=prior,
        energy_per_deploy_kwh=deploy_energy,
        deploy_energy_samples=deploy_samples,
        training_window_days=training_window_days,
        drift=drift,
        drift_logged=bool(np.isfinite(seen.drifts).any()),
    )
