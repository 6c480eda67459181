"""From fitted cost models to a Decision: today's schedule and rule simulated, the tuned point, hysteresis."""

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from controller import schedule
from controller.decision import ESTIMATE_NOTE, Decision, Evidence
from controller.forecast.costmodel import CostModel
from controller.forecast.drift import DRIFT_CV_GAIN
from controller.forecast.state import start_state
from controller.gate.records import summarise
from controller.optimize.errorbudget import ErrorBudget, error_budget, with_budget
from controller.optimize.hysteresis import Observed, why
from controller.optimize.simulate import simulate
from controller.optimize.study import TuningResult, tune
from controller.policy.model import Policy
from controller.rule import PLAIN_CRON, RuleParams
from controller.telemetry.history import History

MIN_HORIZON = timedelta(days=84)


def horizon_for(policy: Policy) -> timedelta:
    """At least 12 weeks, two budget periods, the longest allowed gap plus two SLO windows (so the gate's forced
    retrain is inside) and four SLO windows, in whole days."""
    window_days = policy.slo_window / timedelta(days=1)
    four_windows = timedelta(days=math.ceil(4 * window_days))
    longest_gap = timedelta(days=math.ceil(policy.max_interval / timedelta(days=1) + 2 * window_days))
    return max(MIN_HORIZON, timedelta(days=(2 * policy.budget_period).days), longest_gap, four_windows)


def horizon_start(history: History, tz: ZoneInfo) -> datetime:
    """Midnight after the newest sample: depends on the data, not on the wall clock, so reruns agree."""
    latest = history.latest
    assert latest is not None, "history was checked to be non-empty"
    local = latest.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def _drift_note(model: CostModel) -> str | None:
    effect = model.drift
    if effect is None:
        return ("drift scores are logged but not used: not on every evaluation, or they did not lower the "
                f"cross-validated error by {DRIFT_CV_GAIN:.0%}" if model.drift_logged else None)
    return (f"drift signal used: {effect.slope * 0.1:+.4f} quality per +0.1 drift; the latest drift "
            f"{effect.now:.3g} against {effect.centre:.3g} on average moves the curve by {effect.shift:+.4f} "
            f"(cross-validated MAE {effect.cv_mae:.4f}, {effect.cv_mae_age_only:.4f} by age alone)")


def _evidence(policy: Policy, history: History, model: CostModel, result: TuningResult, seed: int,
              horizon: timedelta, budget: ErrorBudget | None, asked: Policy, window_note: str | None) -> Evidence:
    assert history.earliest is not None and history.latest is not None
    forecaster = model.quality
    return Evidence(
        source=history.source,
        first_sample=history.earliest.isoformat(timespec="minutes"),
        last_sample=history.latest.isoformat(timespec="minutes"),
        trainings=model.trainings,
        evaluations=model.evaluations,
        max_age_days=model.max_age_days,
        cv_mae=model.forecast_mae,
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
        naive_mae=forecaster.naive_mae if forecaster else float("nan"),
        forecast_origins=forecaster.origins if forecaster else 0,
        separated=forecaster.separated if forecaster else False,
        compared_windows=forecaster.compared_windows if forecaster else 0,
        gate_summary=summarise(history.gate_records),
        gate_note=_gate_note(policy, model),
    )


def _gate_note(policy: Policy, model: CostModel) -> str | None:
    if not policy.gate.enabled:
        return None
    if not policy.job.command:
        return ("spec.gate is enabled but spec.job.command is not set: the generated CronJob can only put the gate "
                "in front of an explicit command, so only plain cron schedules were considered")
    if model.quality is None:
        return "the history is too thin for the forecaster, so only plain cron schedules were considered"
    return None


def decide(policy: Policy, history: History, models: Sequence[CostModel], seed: int, trials: int,
           storage: str | None = None, window_note: str | None = None,
           today_rule: RuleParams = PLAIN_CRON) -> Decision:
    """Tune, compare with today's schedule and rule, and apply hysteresis.

    ``models`` holds one cost model per training window greenops may choose, today's first;
    ``today_rule`` is the rule the deployed gate runs (a plain cron when there is none).
    """
    tz = schedule.zone(policy.time_zone)
    start, horizon = horizon_start(history, tz), horizon_for(policy)
    budget = error_budget(history, policy)
    # Without a gate nothing reacts to an overspent budget at run time, so the schedule itself must.
    asked = policy if policy.gate_can_run else with_budget(policy, budget)
    today = models[0]
    state = start_state(history, policy, start)
    current = simulate(schedule.normalise(policy.current_schedule), asked, today, start, horizon,
                       policy.promotion.min_gain, today_rule, state, seed)
    result = tune(asked, models, start, horizon, seed, trials, storage, state, today_rule)
    model = next(m for m in models if m.training_window_days == result.best.training_window_days)
    observed = Observed(budget.observed if budget else None, budget.windows if budget else 0)
    propose, reason = why(asked, current, result.best, observed, today.energy_per_retrain_kwh)
    if budget is not None and budget.spent and not policy.gate_can_run:
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
    evidence = _evidence(policy, history, model, result, seed, horizon, budget, asked, window_note)
    return Decision(policy.name, current, result.best, propose, reason, budget_note, evidence, result.alternatives)
