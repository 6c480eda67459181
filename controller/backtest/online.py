"""greenops itself, replayed online: at each reconcile it refits and retunes on the past only.

It sees what a deployed controller would see through MLflow: its own retrains (time, measured
energy) and, per evaluation window, the quality of the serving model and of the previous model
versions still within maxInterval (shadow evaluations, inference only), plus the carbon intensity
of the past four weeks. It starts from the policy's current schedule and only switches when the
product's own decision logic (cost model, Optuna, hysteresis) proposes a change.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from controller import schedule
from controller.backtest.data import day_time
from controller.backtest.timeline import Outcome, Retrain, Setup, row_correctness, score, serving_days
from controller.decision import Decision, percent_change
from controller.errors import StalledError
from controller.forecast.costmodel import CostModel
from controller.forecast.state import start_state
from controller.forecast.windows import fit_window_models
from controller.gate.verdict import fallback, fit_for_gate, gate_decision, next_fire, serving_age
from controller.optimize.choose import COMPLIANCE_RESOLUTION, objective_value
from controller.optimize.decide import decide, horizon_for, horizon_start
from controller.optimize.study import carbon_ceiling, exhaustive
from controller.policy.model import Policy
from controller.rule import PLAIN_CRON, RuleParams
from controller.telemetry.history import CarbonSamples, Evaluation, History, TrainingRun

CARBON_LOOKBACK_HOURS = 28 * 24
SHADOW_VERSIONS = 3  # older versions scored in shadow on each window even when older than maxInterval
Progress = Callable[[Iterable[int], str], Iterator[int]]


@dataclass(frozen=True)
class OnlineSettings:
    reconcile_days: int
    lookback_days: int
    seed: int
    trials: int
    check_search_every: int  # compare with exhaustive search every N reconciles (0: never)


def _trainings(setup: Setup, served: list[int], since: int) -> tuple[TrainingRun, ...]:
    """greenops's retrains as MLflow would show them. A retrain serves from the start of its day (the
    replay's grain), so that is when it is recorded as finished, whatever its start hour, and with no
    duration: the measured CPU seconds would shift predicted ages the replay does not shift, and make
    decisions depend on timing noise."""
    runs = []
    for day in served:
        if day >= since:
            trained = setup.bank[day]
            runs.append(TrainingRun(str(day), day_time(setup.stream, day), None, trained.energy_kwh, None))
    return tuple(runs)


def _shadowed(setup: Setup, served: list[int], serving: int, first: int, last: int) -> list[int]:
    """The older versions kept in shadow on a window: those younger than maxInterval, and the last
    SHADOW_VERSIONS before the serving one whatever their age (as far as the bank has their predictions)."""
    older = [v for v in served if v < serving and v <= first]
    recent = set(older[-SHADOW_VERSIONS:])
    return [v for v in older if (v in recent or last - v <= setup.max_interval_days + setup.window_days)
            and last - v <= setup.bank.horizon_days]


def _evaluations(setup: Setup, served: list[int], until: int, since: int) -> tuple[Evaluation, ...]:
    """Per ended window: the production quality (rows as actually served), under the version serving at
    the window's middle, and shadow evaluations of the older versions kept, on rows they did not train on."""
    starts, evaluations = setup.bank.starts, []
    production = row_correctness(setup, served, until)
    for window in range(setup.window_of_day(max(since, setup.first_day)), setup.window_of_day(until)):
        first = setup.first_day + window * setup.window_days
        last = first + setup.window_days
        at = day_time(setup.stream, last)
        serving = max(v for v in served if v <= first + setup.window_days / 2)
        rows = production[starts[first] - starts[setup.first_day]:starts[last] - starts[setup.first_day]]
        if len(rows):
            evaluations.append(Evaluation(str(serving), at, float(rows.mean())))
        for version in _shadowed(setup, served, serving, first, last):
            offset = starts[first] - starts[version]
            rows = setup.bank[version].correct[offset:offset + starts[last] - starts[first]]
            if len(rows):
                evaluations.append(Evaluation(str(version), at, float(rows.mean())))
    return tuple(evaluations)


def _carbon(setup: Setup, day: int) -> CarbonSamples:
    hours = range(max(0, day * 24 - CARBON_LOOKBACK_HOURS), day * 24)
    start = day_time(setup.stream, 0)
    return tuple((start + timedelta(hours=h), setup.carbon_at(0, h)) for h in hours)


def history_until(setup: Setup, policy: Policy, retrains: list[Retrain], day: int, lookback_days: int) -> History:
    served = [d for d in serving_days(setup, [r.day for r in retrains]) if d < day]
    since = day - lookback_days
    return History(policy.name, "backtest replay", _trainings(setup, served, since - setup.max_interval_days),
                   _evaluations(setup, served, day, since), _carbon(setup, day))


def _fires(setup: Setup, expression: str, first: int, last: int) -> list[tuple[int, datetime]]:
    """(day, moment) of every fire of ``expression`` in days [first, last), in time order."""
    start = day_time(setup.stream, 0)
    times = schedule.fire_times(expression, schedule.zone("Etc/UTC"), day_time(setup.stream, first),
                                day_time(setup.stream, last))
    return [((moment.astimezone(UTC) - start).days, moment.astimezone(UTC)) for moment in times]


@dataclass
class _Gate:
    """The gate at every fire of the replay, deciding from the history as it stood then (refitted whenever
    a window ended or a retrain happened since the last fit)."""

    setup: Setup
    policy: Policy
    settings: "OnlineSettings"
    counts: dict[str, int]
    cached: tuple[tuple[int, int], CostModel, History] | None = None

    def decide(self, retrains: list[Retrain], rule: RuleParams, expression: str, day: int,
               moment: datetime) -> bool:
        served = serving_days(self.setup, [r.day for r in retrains])
        key = (self.setup.window_of_day(day), max(d for d in served if d < day) if day > served[0] else served[0])
        if self.cached is None or self.cached[0] != key:
            history = history_until(self.setup, self.policy, retrains, day, self.settings.lookback_days)
            try:
                model = fit_for_gate(self.policy, history, self.settings.seed)
            except StalledError as err:  # what `greenops gate` does then: the policy's onTelemetryError
                wait = (next_fire(expression, self.policy.time_zone, moment) - moment) / timedelta(days=1)
                verdict = fallback(self.policy, str(err), moment, serving_age(history, moment), wait)
                self.counts["fallback"] = self.counts.get("fallback", 0) + 1
                return verdict.retrain
            self.cached = (key, model, history)
        _, model, history = self.cached
        verdict = gate_decision(self.policy, history, rule, expression, moment, self.settings.seed, model)
        label = verdict.by if verdict.retrain else "skip"
        self.counts[label] = self.counts.get(label, 0) + 1
        return verdict.retrain


def _search_check(policy: Policy, history: History, models: Sequence[CostModel], decision: Decision,
                  today: RuleParams, seed: int) -> dict[str, object]:
    """Optuna's pick against simulating every point of the same space, on the decision's own terms:
    at least as compliant (within the resolution) and the objective (energy, carbon) within a gap."""
    asked = replace(policy, slo_compliance=decision.evidence.required_compliance)  # what decide() searched for
    start = horizon_start(history, schedule.zone("Etc/UTC"))
    full = exhaustive(asked, models, start, horizon_for(asked), start_state(history, asked, start), today, seed)
    ceiling = carbon_ceiling(models)
    found, best = objective_value(decision.proposed, ceiling), objective_value(full.best, ceiling)
    feasible_too = full.budget_note is not None or decision.budget_note is None
    as_compliant = decision.proposed.compliance_lower >= full.best.compliance_lower - COMPLIANCE_RESOLUTION
    return {"optuna_trials": decision.evidence.trials, "space": full.space,
            "optuna_seconds": decision.evidence.search_seconds, "exhaustive_seconds": full.seconds,
            "objective_gap_percent": percent_change(best, found),
            "as_compliant": bool(as_compliant and feasible_too)}


def _record(day: int, decision: Decision, model: CostModel) -> dict[str, object]:
    """One reconcile, for the JSON: the schedule and rule that run next and what they were predicted to achieve."""
    runs = decision.proposed if decision.propose else decision.current
    return {"day": day, "schedule": runs.schedule, "rule": runs.rule.describe(), "changed": decision.propose,
            "reason": decision.reason,
            "prior": model.prior is not None, "predicted_compliance": runs.compliance,
            "predicted_compliance_lower": runs.compliance_lower}


def greenops_online(setup: Setup, policy: Policy, settings: OnlineSettings, progress: Progress) -> Outcome:
    """Reconcile every ``reconcile_days`` (refit, retune schedule and rule); between reconciles the gate
    decides at every fire of the schedule in force, as `greenops gate` would."""
    expression, rule = schedule.normalise(policy.current_schedule), PLAIN_CRON
    retrains: list[Retrain] = []
    decisions: list[dict[str, object]] = []
    checks: list[dict[str, object]] = []
    gate = _Gate(setup, policy, settings, {})
    days = range(setup.first_day, setup.last_day, settings.reconcile_days)
    for number, day in enumerate(progress(days, "greenops online")):
        history = history_until(setup, policy, retrains, day, settings.lookback_days)
        try:
            current = replace(policy, current_schedule=expression)
            windows = fit_window_models(history, current, settings.seed)  # as reconcile fits them
            model = windows.models[0]
            decision = decide(current, history, windows.models, settings.seed, settings.trials, None, windows.note,
                              rule)
        except StalledError as err:
            decisions.append({"day": day, "schedule": expression, "changed": False, "reason": str(err)})
        else:
            if settings.check_search_every and number % settings.check_search_every == 0:
                checks.append(_search_check(current, history, windows.models, decision, rule, settings.seed))
            if decision.propose:
                expression, rule = decision.proposed.schedule, decision.proposed.rule
            decisions.append(_record(day, decision, model))
        taken: set[int] = set()
        for fire_day, moment in _fires(setup, expression, day, min(day + settings.reconcile_days, setup.last_day)):
            if fire_day not in taken and gate.decide(retrains, rule, expression, fire_day, moment):
                retrains.append(Retrain(fire_day, moment.hour))
                taken.add(fire_day)
    return score(setup, "greenops", retrains, decisions=decisions, search_checks=checks, gate=gate.counts)


def at_noon(setup: Setup, outcome: Outcome) -> Outcome:
    """The same retrain days started at noon: what choosing the start hour saved in carbon."""
    return score(setup, "greenops, same days at noon", [Retrain(r.day) for r in outcome.retrains])
