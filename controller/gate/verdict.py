"""One gate decision from a policy's history: the situation now, the rule's verdict, and why.

The same function decides in `greenops gate` (from live telemetry) and in `greenops backtest` (from
the replayed history), so the backtest measures the code that runs in production.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from controller import schedule
from controller.forecast.costmodel import CostModel
from controller.forecast.state import start_state
from controller.forecast.windows import fit_todays_window
from controller.policy.durations import format_days
from controller.policy.model import Policy
from controller.rule import RuleParams, Situation, budget_debt, decide_now
from controller.telemetry.history import History

DAY = timedelta(days=1)
GATE_REPLICATES = 1  # the gate needs the point fit only


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided at ``at`` and why; ``by`` is rule, maxInterval, cron (no rule) or fallback."""

    at: datetime
    retrain: bool
    by: str
    reason: str
    serving_age_days: float | None = None
    value: float | None = None
    price: float | None = None
    debt: float | None = None

    @property
    def word(self) -> str:
        return "retrain" if self.retrain else "skip"


def next_fire(expression: str, time_zone: str, now: datetime) -> datetime:
    """The first fire of ``expression`` strictly after ``now`` (searching up to two years ahead)."""
    zone = schedule.zone(time_zone)
    for years in (1, 2):
        upcoming = schedule.fire_times(expression, zone, now + timedelta(seconds=1), now + timedelta(days=366 * years))
        if upcoming:
            return upcoming[0]
    return now + timedelta(days=366 * 2)


def fit_for_gate(policy: Policy, history: History, seed: int) -> CostModel:
    """Today's training window's cost model as reconcile fits it, minus what only the merge request needs
    (self-scoring, bootstrap replicates)."""
    return fit_todays_window(history, policy, seed, score_itself=False, replicates=GATE_REPLICATES)


def situation_at(policy: Policy, history: History, model: CostModel, now: datetime, following: datetime) -> Situation:
    """What the rule sees now: the serving model's age, the latest window's effect, the error budget."""
    state = start_state(history, policy, now)
    forecaster = model.quality
    return Situation(
        serving_age_days=state.serving_age_days,
        fresh_age_days=-model.retrain_duration / DAY,
        latest_effect=forecaster.latest_effect if forecaster else 0.0,
        days_since_latest=state.days_since_latest,
        debt=float(budget_debt(state.budget_misses(policy.slo_compliance), policy.slo_compliance)),
        cost_ratio=float(model.carbon.at([now])[0]) / (model.carbon.mean or 1.0),
        days_to_next_fire=(following - now) / DAY,
        window_days=policy.slo_window / DAY,
        max_age_days=min(policy.max_interval / DAY, model.max_age_days))


def _reason(policy: Policy, rule: RuleParams, situation: Situation, retrain: bool, forced: bool,
            value: float, price: float) -> tuple[str, str]:
    age = format_days(float(situation.serving_age_days))
    if forced:
        limit = format_days(situation.max_age_days)
        return "maxInterval", (f"the serving model is {age} old; waiting for the next fire would make it older than "
                               f"{limit} (maxInterval, or the oldest age the history has seen)")
    unit = "expected SLO misses avoided" if rule.objective == "slo" else "windows of quality gained"
    compared = "exceeds" if retrain else "does not exceed"
    budget = f", error-budget debt {float(situation.debt):+.2f}" if rule.objective == "slo" else ""
    return "rule", (f"a fresh model buys {value:.4f} {unit} until the next fire, which {compared} the price "
                    f"{price:.4f} (serving model {age} old{budget})")


def plain_cron(now: datetime) -> GateDecision:
    return GateDecision(now, True, "cron", "no gated rule: every fire retrains (a plain cron)")


def gate_decision(policy: Policy, history: History, rule: RuleParams, expression: str, now: datetime,
                  seed: int = 0, model: CostModel | None = None) -> GateDecision:
    """Retrain now or skip, by ``rule`` on the schedule ``expression``. Raises StalledError (from the fit) when
    the history cannot support a decision, so the caller applies the policy's fallback."""
    if not rule.gated:
        return plain_cron(now)
    model = model or fit_for_gate(policy, history, seed)
    following = next_fire(expression, policy.time_zone, now)
    situation = situation_at(policy, history, model, now, following)
    if model.quality is None:
        return GateDecision(now, True, "cron", f"{model.prior}; the rule needs more history, so every fire retrains",
                            float(situation.serving_age_days))
    verdict = decide_now(rule, model.quality, situation, policy.slo_target)
    retrain, forced = bool(verdict.retrain), bool(verdict.forced)
    value, price = float(np.asarray(verdict.value)), float(np.asarray(verdict.price))
    by, reason = _reason(policy, rule, situation, retrain, forced, value, price)
    return GateDecision(now, retrain, by, reason, float(situation.serving_age_days), value, price,
                        float(situation.debt))


def fallback(policy: Policy, problem: str, now: datetime, serving_age_days: float | None,
             days_to_next_fire: float = 0.0) -> GateDecision:
    """The policy's ``gate.onTelemetryError`` when the telemetry cannot be read or used. With ``skip`` a retrain
    still happens when waiting for the next fire would leave the serving model older than maxAgeOnError (never
    more than maxInterval)."""
    gate = policy.gate
    if gate.on_telemetry_error == "retrain":
        return GateDecision(now, True, "fallback", f"cannot decide ({problem}); onTelemetryError: retrain",
                            serving_age_days)
    limit = min(gate.max_age_on_error or policy.max_interval, policy.max_interval)
    if serving_age_days is not None and (serving_age_days + days_to_next_fire) * DAY > limit:
        return GateDecision(now, True, "fallback", f"cannot decide ({problem}); onTelemetryError: skip, but the "
                            f"serving model is {format_days(serving_age_days)} old and would pass maxAgeOnError "
                            f"{format_days(limit / DAY)} before the next fire", serving_age_days)
    known = f"the serving model is {format_days(serving_age_days)} old" if serving_age_days is not None \
        else "the serving model's age is unknown"
    return GateDecision(now, False, "fallback", f"cannot decide ({problem}); onTelemetryError: skip ({known})",
                        serving_age_days)


def serving_age(history: History | None, now: datetime) -> float | None:
    """Days since the newest training run finished, when any is known."""
    if history is None:
        return None
    done = [t.finished_at for t in history.trainings if t.finished_at <= now]
    return (now - max(done)) / DAY if done else None

