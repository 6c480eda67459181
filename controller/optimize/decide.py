"""From a fitted cost model to a Decision: baseline, tuned schedule, hysteresis."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from controller import schedule
from controller.costmodel import CostModel
from controller.decision import ESTIMATE_NOTE, Decision, Evidence, Forecast, percent_change
from controller.optimize.simulate import simulate
from controller.optimize.study import tune
from controller.policy.model import Policy
from controller.telemetry.history import History

MIN_HORIZON = timedelta(days=84)


def horizon_for(policy: Policy) -> timedelta:
    """At least 12 weeks, and at least two budget periods, in whole days."""
    return max(MIN_HORIZON, timedelta(days=(2 * policy.budget_period).days))


def horizon_start(history: History, tz: ZoneInfo) -> datetime:
    """Midnight after the newest sample: depends on the data, not on the wall clock, so reruns agree."""
    latest = history.latest
    assert latest is not None, "history was checked to be non-empty"
    local = latest.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def _why(policy: Policy, current: Forecast, proposed: Forecast) -> tuple[bool, str]:
    if schedule.normalise(policy.current_schedule) == proposed.schedule:
        return False, "the current schedule is already the best one found"
    at_risk = current.compliance_lower < policy.slo_compliance or bool(current.bound_violations)
    if at_risk and proposed.compliance_lower > current.compliance_lower:
        return True, (f"the current schedule puts the SLO at risk (predicted compliance "
                      f"{current.compliance_lower:.1%} < {policy.slo_compliance:.0%})")
    if proposed.compliance_lower < policy.slo_compliance:
        return False, (f"no schedule within the bounds is predicted to keep the SLO, and none does better "
                       f"than today's {current.compliance_lower:.1%}")
    energy = -percent_change(current.energy_kwh_per_period, proposed.energy_kwh_per_period)
    carbon = -percent_change(current.carbon_kg_per_period, proposed.carbon_kg_per_period)
    if max(energy, carbon) >= policy.min_saving_percent:
        return True, f"saves {energy:.0f}% energy and {carbon:.0f}% carbon while keeping the SLO"
    return False, (f"the best schedule saves only {energy:.0f}% energy and {carbon:.0f}% carbon "
                   f"(minSavingPercent is {policy.min_saving_percent:g})")


def decide(policy: Policy, history: History, model: CostModel, seed: int, trials: int,
           storage: str | None = None) -> Decision:
    """Tune, compare with today's schedule, and apply hysteresis (gain in energy or carbon)."""
    tz = schedule.zone(policy.time_zone)
    start, horizon = horizon_start(history, tz), horizon_for(policy)
    current = simulate(schedule.normalise(policy.current_schedule), policy, model, start, horizon)
    result = tune(policy, model, start, horizon, seed, trials, storage)
    propose, reason = _why(policy, current, result.best)
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
    )
    return Decision(policy.name, current, result.best, propose, reason, budget_note, evidence)
