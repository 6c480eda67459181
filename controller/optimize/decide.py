"""From a fitted cost model to a Decision: baseline, tuned schedule, hysteresis."""

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from controller import schedule
from controller.decision import ESTIMATE_NOTE, Decision, Evidence, Forecast, percent_change
from controller.forecast.costmodel import CostModel
from controller.forecast.drift import DRIFT_CV_GAIN
from controller.optimize.errorbudget import error_budget, with_budget
from controller.optimize.simulate import simulate
from controller.optimize.study import COMPLIANCE_RESOLUTION, tune
from controller.policy.model import Policy
from controller.telemetry.history import History

MIN_HORIZON = timedelta(days=84)


def horizon_for(policy: Policy) -> timedelta:
    """At least 12 weeks, two budget periods, two of the longest allowed gaps and four SLO windows, in whole days."""
    four_windows = timedelta(days=math.ceil(4 * policy.slo_window / timedelta(days=1)))
    return max(MIN_HORIZON, timedelta(days=(2 * policy.budget_period).days),
               timedelta(days=(2 * policy.max_interval).days), four_windows)


def horizon_start(history: History, tz: ZoneInfo) -> datetime:
    """Midnight after the newest sample: depends on the data, not on the wall clock, so reruns agree."""
    latest = history.latest
    assert latest is not None, "history was checked to be non-empty"
    local = latest.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def _why(policy: Policy, current: Forecast, proposed: Forecast) -> tuple[bool, str]:
    """Hysteresis: propose only for a real gain in compliance, or enough saving without losing compliance."""
    if current.settings == proposed.settings:
        return False, "the current schedule is already the best one found"
    need, slack = policy.slo_compliance, COMPLIANCE_RESOLUTION
    if current.bound_violations and not proposed.bound_violations \
            and proposed.compliance_lower >= current.compliance_lower - slack:
        return True, f"today's schedule breaks the policy's bounds ({'; '.join(current.bound_violations)})"
    at_risk = current.compliance_lower < need or bool(current.bound_violations)
    if at_risk and proposed.compliance_lower > current.compliance_lower + slack:
        return True, (f"the current schedule puts the SLO at risk (predicted compliance "
                      f"{current.compliance_lower:.1%} < {need:.1%})")
    out_of_reach = proposed.compliance_lower < need
    if out_of_reach and proposed.compliance_lower < current.compliance_lower - slack:
        return False, (f"no schedule within the bounds is predicted to keep the SLO, and none does better "
                       f"than today's {current.compliance_lower:.1%}")
    energy = -percent_change(current.energy_kwh_per_period, proposed.energy_kwh_per_period)
    carbon = -percent_change(current.carbon_kg_per_period, proposed.carbon_kg_per_period)
    keeping = (f"no schedule within the bounds is predicted to keep the SLO (best {proposed.compliance_lower:.1%} "
               f"< {need:.1%}) and this one is as good as today's (within {slack:.1%})" if out_of_reach
               else "keeping the SLO")
    if max(energy, carbon) >= policy.min_saving_percent:
        return True, f"{_savings(energy, carbon)} while {keeping}"
    return False, (f"the best schedule {_savings(energy, carbon)}, below minSavingPercent "
                   f"{policy.min_saving_percent:g}; {keeping.replace('keeping', 'it keeps')}")


def _savings(energy: float, carbon: float) -> str:
    """``saves 33% energy and 46% carbon``; changes under half a percent are left out."""
    figures = ((energy, "energy"), (carbon, "carbon"))
    saved = [f"{v:.0f}% {what}" for v, what in figures if v >= 0.5]
    costs = [f"{-v:.0f}% more {what}" for v, what in figures if v <= -0.5]
    text = [f"saves {' and '.join(saved)}"] * bool(saved) + [f"costs {' and '.join(costs)}"] * bool(costs)
    return ", ".join(text) or "saves nothing"


def _drift_note(model: CostModel) -> str | None:
    effect = model.drift
    if effect is None:
        return ("drift scores are logged but not used: not on every evaluation, or they did not lower the "
                f"cross-validated error by {DRIFT_CV_GAIN:.0%}" if model.drift_logged else None)
    return (f"drift signal used: {effect.slope * 0.1:+.4f} quality per +0.1 drift; the latest drift "
            f"{effect.now:.3g} against {effect.centre:.3g} on average moves the curve by {effect.shift:+.4f} "
            f"(cross-validated MAE {effect.cv_mae:.4f}, {effect.cv_mae_age_only:.4f} by age alone)")


def decide(policy: Policy, history: History, models: Sequence[CostModel], seed: int, trials: int,
           storage: str | None = None, window_note: str | None = None) -> Decision:
    """Tune, compare with today's schedule, and apply hysteresis (gain in energy or carbon).

    ``models`` holds one cost model per training window greenops may choose, today's first.
    """
    tz = schedule.zone(policy.time_zone)
    start, horizon = horizon_start(history, tz), horizon_for(policy)
    budget = error_budget(history, policy)
    asked = with_budget(policy, budget)
    today = models[0]
    current = simulate(schedule.normalise(policy.current_schedule), asked, today, start, horizon,
                       policy.promotion.min_gain)
    result = tune(asked, models, start, horizon, seed, trials, storage)
    model = next(m for m in models if m.training_window_days == result.best.training_window_days)
    propose, reason = _why(asked, current, result.best)
    if budget is not None and budget.spent:
        reason = f"{reason}; {budget.describe(policy)}"
    if propose and today.prior and result.best.energy_kwh_per_period > current.energy_kwh_per_period:
        propose, reason = False, (f"{reason}, but the history is too thin to justify retraining more often; "
                                  "keeping today's schedule until there is enough data")
    if propose and policy.mode == "observe":
        propose, reason = False, f"{reason}; proposal.mode is observe, so no merge request"
    budget_note = result.budget_note
    if model.prior:
        reason = f"{reason} (thin history: conservative prior)"
    if model.energy_estimated:
        reason = f"{reason} (energy {ESTIMATE_NOTE})"
        budget_note = budget_note and f"{budget_note} (energy {ESTIMATE_NOTE})"
    assert history.earliest is not None and history.latest is not None
    evidence = Evidence(
        source=history.source,
        first_sample=history.earliest.isoformat(timespec="minutes"),
        last_sample=history.latest.isoformat(timespec="minutes"),
        trainings=model.trainings,
        evaluations=model.evaluations,
        max_age_days=model.max_age_days,
        cv_mae=model.cv_mae,
        energy_per_retrain_kwh=model.energy_per_retrain_kwh,
        trials=result.trials,
        seed=seed,
        horizon_days=horizon.days,
        carbon_intensity_g_per_kwh=model.carbon_intensity_g_per_kwh,
        energy_estimated=model.energy_estimated,
        carbon_resolution=model.carbon.resolution,
        search_space=result.space,
        search_seconds=result.seconds,
        prior=model.prior,
        observed_compliance=budget.observed if budget else None,
        observed_windows=budget.windows if budget else 0,
        required_compliance=asked.slo_compliance,
        energy_per_deploy_kwh=model.energy_per_deploy_kwh,
        deploy_energy_samples=model.deploy_energy_samples,
        window_note=window_note,
        drift_note=_drift_note(model),
    )
    return Decision(policy.name, current, result.best, propose, reason, budget_note, evidence)
