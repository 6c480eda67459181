"""Cost model + Optuna decision on synthetic histories: deterministic, bounded, honest when infeasible."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from controller.decision import Forecast
from controller.errors import StalledError
from controller.forecast.costmodel import fit_cost_model
from controller.optimize.choose import choose
from controller.optimize.decide import decide
from controller.optimize.hysteresis import Observed, why
from controller.optimize.space import rule_choices
from controller.policy.model import Policy, policy_from_data
from controller.rule import PLAIN_CRON
from controller.telemetry.history import Evaluation, History, TrainingRun

from .conftest import PROJECT

END = datetime(2026, 6, 1, tzinfo=UTC)


def make_policy(**spec_overrides: Any) -> Policy:
    data = yaml.safe_load((PROJECT / "policies" / "fraud-detector.yaml").read_text())
    for dotted, value in spec_overrides.items():
        node = data["spec"]
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return policy_from_data(data, Path("policies/fraud-detector.yaml"))


def make_history(decay_per_day: float, days: int = 60, energy: float = 1.0, shadow_days: int = 14,
                 seed: int = 3) -> History:
    """Daily retrains at 02:00; each version evaluated daily: quality = 0.95 - decay * age + noise."""
    rng = np.random.default_rng(seed)
    start = END - timedelta(days=days)
    trainings, evaluations = [], []
    for day in range(days):
        ready = start + timedelta(days=day, hours=2, minutes=20)
        trainings.append(TrainingRun(str(day), ready, 1200.0, energy * rng.uniform(0.9, 1.1), 0.95))
        for age in range(1, shadow_days + 1):
            at = start + timedelta(days=day + age)
            if at <= END:
                quality = 0.95 - decay_per_day * (at - timedelta(hours=12) - ready).total_seconds() / 86400
                evaluations.append(Evaluation(str(day), at, float(quality + rng.normal(0, 0.004))))
    return History("fraud-detector", "synthetic", tuple(trainings), tuple(evaluations))


def run(policy: Policy, history: History, seed: int = 7) -> Any:
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, seed, 250.0)
    return decide(policy, history, [model], seed=seed, trials=60)


def test_same_inputs_same_decision() -> None:
    policy, history = make_policy(), make_history(0.004)
    assert run(policy, history) == run(policy, history)


def test_stable_model_gets_a_cheaper_schedule_within_bounds() -> None:
    policy = make_policy(schedule__minInterval="1d", schedule__maxInterval="10d")
    decision = run(policy, make_history(0.002))
    assert decision.propose and decision.budget_note is None
    proposed = decision.proposed
    assert proposed.retrains_per_month < decision.current.retrains_per_month / 2
    assert proposed.min_gap_hours >= 24 and proposed.max_gap_hours <= 240
    assert proposed.compliance_lower >= policy.slo_compliance
    assert decision.energy_change_percent < -50


def test_fast_decay_keeps_retraining_often() -> None:
    decision = run(make_policy(slo__target=0.935), make_history(0.012))
    assert decision.proposed.max_gap_hours <= 24  # models older than ~1.2 days miss 0.935
    assert decision.proposed.compliance_lower >= 0.95


def test_infeasible_budget_slo_priority_says_what_the_slo_needs() -> None:
    policy = make_policy(slo__target=0.93, budget__energyKWh=5)
    decision = run(policy, make_history(0.012))
    assert decision.budget_note is not None and decision.budget_note.startswith("infeasible: keeping 0.93")
    assert "budget is 5 kWh" in decision.budget_note
    assert decision.proposed.compliance_lower >= 0.95
    assert decision.proposed.energy_kwh_per_period > 5


def test_infeasible_budget_budget_priority_stays_within_budget() -> None:
    policy = make_policy(slo__target=0.93, budget__energyKWh=8, priority="budget")
    decision = run(policy, make_history(0.012))
    assert decision.budget_note is not None and "Priority budget" in decision.budget_note
    assert decision.proposed.energy_kwh_per_period <= 8


def test_unobserved_ages_are_never_bet_on() -> None:
    """History only shows models up to 3 days old: no proposal may leave a model older than that."""
    policy = make_policy(schedule__maxInterval="30d", slo__target=0.5)
    decision = run(policy, make_history(0.0005, shadow_days=3))
    assert decision.proposed.max_gap_hours <= 3 * 24


def test_hysteresis_and_observe_mode() -> None:
    history = make_history(0.002)
    strict = run(make_policy(proposal__minSavingPercent=100), history)
    assert not strict.propose and "minSavingPercent" in strict.reason
    observe = run(make_policy(proposal__mode="observe"), history)
    assert not observe.propose and "observe" in observe.reason


def test_thin_history_falls_back_to_a_conservative_prior() -> None:
    """Three days of daily retrains, each model seen at age 0.4 d only: nothing sparser than daily is chosen."""
    history = make_history(0.002, days=3, shadow_days=1)
    model = fit_cost_model(history, 0.9, timedelta(days=1), 0, 250.0)
    assert model.prior is not None and "thin history" in model.prior and model.max_age_days < 1
    assert model.quality is None and model.prior_meet is not None  # no forecaster pretending to know more
    decision = run(make_policy(), history)
    assert "conservative prior" in decision.reason and decision.evidence.prior == model.prior
    assert not decision.propose and "too thin to justify retraining more often" in decision.reason
    assert decision.proposed.max_gap_hours <= 24  # never sparser than what was seen


def test_nothing_to_go_on_stalls_with_what_to_do() -> None:
    unversioned = make_history(0.002)
    orphans = tuple(Evaluation("unknown", e.at, e.quality) for e in unversioned.evaluations)
    with pytest.raises(StalledError, match="no evaluations of a known model version"):
        fit_cost_model(History("fraud-detector", "synthetic", unversioned.trainings, orphans), 0.9,
                       timedelta(days=1), 0, 250.0)
    empty = History("fraud-detector", "synthetic", (), ())
    with pytest.raises(StalledError, match=r"no finished training runs tagged greenops\.policy=fraud-detector"):
        fit_cost_model(empty, 0.9, timedelta(days=1), 0, 250.0)


def test_missing_energy_stalls() -> None:
    history = make_history(0.002)
    no_energy = tuple(TrainingRun(t.version, t.finished_at, t.duration_s, None, None) for t in history.trainings)
    with pytest.raises(StalledError, match="energy"):
        fit_cost_model(History(history.policy, "synthetic", no_energy, history.evaluations), 0.9,
                       timedelta(days=1), 0, 250.0)


def test_daily_schedule_across_dst_respects_a_one_day_minimum() -> None:
    """Clocks change on 2026-03-29 in Paris: real gaps are 23 h, and a daily job is still daily."""
    policy = make_policy(schedule__timeZone="Europe/Paris", schedule__minInterval="1d", slo__target=0.935)
    history = make_history(0.012)
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    from controller.optimize.simulate import simulate

    forecast = simulate("0 2 * * *", policy, model, datetime(2026, 3, 1, tzinfo=UTC), timedelta(days=84))
    assert forecast.min_gap_hours == 23 and forecast.max_gap_hours == 24
    assert forecast.bound_violations == ()


def test_overspent_error_budget_raises_the_bar_of_a_plain_cron() -> None:
    """Production missed the target in 4 of the last 30 windows (86.7%): without a gate to react at run time,
    the next schedule must reach 93.3%."""
    from dataclasses import replace

    from controller.optimize.errorbudget import error_budget, serving_qualities

    policy = make_policy(slo__target=0.9, slo__compliance=0.9, gate__enabled=False)
    history = make_history(0.002)
    serving = serving_qualities(history, policy.slo_window)
    assert len(serving) == 60 and min(serving) > 0.93  # the fresh model serves each window, and it is good
    failing_days = {e.at for e in history.evaluations[-30 * 14:]}
    failing = sorted(failing_days)[-4:]
    worse = tuple(replace(e, quality=0.5) if e.at in failing else e for e in history.evaluations)
    spent = replace(history, evaluations=worse)
    budget = error_budget(spent, policy)
    assert budget is not None and budget.observed == pytest.approx(26 / 30) and budget.spent
    assert budget.required == pytest.approx(0.9 + (0.9 - 26 / 30))
    decision = run(policy, spent)
    assert ("observed compliance 86.7% over the last 30 windows is below the SLO's 90%: the error budget is "
            "spent, so the next schedule must reach 93.3%") in decision.reason
    assert decision.evidence.observed_compliance == pytest.approx(26 / 30)
    assert decision.evidence.required_compliance == pytest.approx(0.9 + (0.9 - 26 / 30))
    relaxed = run(policy, history)
    assert relaxed.proposed.energy_kwh_per_period <= decision.proposed.energy_kwh_per_period


def test_a_current_schedule_outside_the_bounds_is_fixed() -> None:
    """Today's 10-day gaps break maxInterval 7d: proposed even though compliance would be the same."""
    policy = make_policy(schedule__current="0 2 1,11,21 * *", schedule__maxInterval="7d", slo__target=0.8)
    decision = run(policy, make_history(0.0, shadow_days=14))
    assert decision.propose and "today's schedule breaks the policy's bounds (longest gap" in decision.reason
    assert decision.proposed.max_gap_hours <= 7 * 24 + 1


def test_the_thin_history_prior_counts_older_failures_against_younger_ages() -> None:
    from controller.forecast.costmodel import _prior_meet

    ages = np.arange(1.0, 11.0)
    meets = _prior_meet(ages, np.where(ages <= 5, 0.95, 0.5), np.array([0.5, 3.0, 6.0, 10.0, 12.0]), 0.9)[0]
    assert meets[0] == pytest.approx(0.5) and meets[1] == pytest.approx(3 / 8)
    assert meets[2] == meets[3] == meets[4] == 0.0


def test_priority_budget_is_enforced_even_when_the_slo_cannot_be_kept() -> None:
    """Daily retrains cost 30 kWh against a budget of 6: with priority budget the cheaper schedule is proposed."""
    policy = make_policy(slo__target=0.935, budget__energyKWh=6, priority="budget", gate__enabled=False,
                         schedule__minInterval="1d")
    decision = run(policy, make_history(0.012))
    assert decision.propose and "priority budget: the budget wins" in decision.reason
    assert decision.proposed.energy_kwh_per_period <= 6 < decision.current.energy_kwh_per_period


def test_no_retrains_are_added_to_a_healthy_model() -> None:
    """Production met the SLO in every recent window and today's forecast agrees: no proposal adds energy,
    even when the pessimistic bound alone would ask for it."""
    policy = make_policy(slo__compliance=0.95)
    current = Forecast("0 2 * * *", 30, 30, 5, 0.97, 0.94, 0.92, 0.9, 24, 24, ())
    denser = Forecast("0 2-23/12 * * *", 60, 60, 10, 0.99, 0.98, 0.93, 0.91, 12, 12, ())
    propose, reason = why(policy, current, denser, Observed(1.0, 30))
    assert not propose and "does not add retrains to a healthy model" in reason
    at_risk = Forecast("0 2 * * *", 30, 30, 5, 0.93, 0.90, 0.92, 0.9, 24, 24, ())
    assert why(policy, at_risk, denser, Observed(1.0, 30))[0]  # the forecast itself says the SLO is at risk


def test_the_cost_objective_minimises_c_alpha_and_says_so() -> None:
    """alpha 5: a retrain is worth five windows of lost quality, so greenops retrains rarely though the SLO
    would ask for more; alpha 0.001 keeps retraining."""
    history = make_history(0.004)
    dear = run(make_policy(objective={"kind": "cost", "alpha": 5}, schedule__minInterval="1d"), history)
    cheap = run(make_policy(objective={"kind": "cost", "alpha": 0.001}, schedule__minInterval="1d"), history)
    assert dear.propose and "C_alpha (alpha 5)" in dear.reason
    assert dear.proposed.retrains_per_month < 8 < cheap.proposed.retrains_per_month


def test_the_merge_request_shows_the_rule_and_the_alternatives() -> None:
    from controller.gitops import mr

    policy = make_policy(schedule__minInterval="1d", schedule__maxInterval="10d")
    decision = run(policy, make_history(0.002))
    body = mr.body(policy, decision)
    assert decision.proposed.rule.gated and len(decision.alternatives) == 3
    assert "| At each fire | retrain at every fire (plain cron) | retrain when a fresh model buys" in body
    assert "**Alternatives considered**" in body and body.count("| check ") + body.count("| retrain ") >= 3
    assert "rolling origin" in body and "hard periods are not taken for stale models" in body
    assert mr.title(policy, decision).startswith("greenops(fraud-detector): check daily at 02:00, retrain when")


def _point(schedule: str, energy: float, compliance: float, lower: float) -> Forecast:
    return Forecast(schedule, energy, energy, energy / 10, compliance, lower, 0.8, 0.7, 24.0, 24.0, ())


def test_out_of_reach_slo_takes_the_cheapest_schedule_as_compliant_within_the_uncertainty() -> None:
    """A hard period: no schedule reaches 90%; daily is the most compliant (lower bound 80%), weekly is as good
    within the forecast's uncertainty (expected 81%), monthly is not (expected 78%)."""
    policy = make_policy()
    daily, weekly, monthly = (_point("0 2 * * *", 30.0, 0.83, 0.80), _point("0 2 * * 1", 4.0, 0.81, 0.77),
                              _point("0 2 1 * *", 1.0, 0.78, 0.70))
    best, note = choose([daily, weekly, monthly], policy)
    assert best is weekly
    assert note is not None and "the best predicted compliance is 80.0%" in note and "expected 81.0%" in note
    best, note = choose([daily, monthly], policy)
    assert best is daily and note is not None and note.endswith("or give the model more history.")


def test_a_cheaper_schedule_as_good_within_the_uncertainty_is_proposed_when_the_slo_is_out_of_reach() -> None:
    policy = make_policy()
    daily, weekly, monthly = (_point("0 2 * * *", 30.0, 0.83, 0.80), _point("0 2 * * 1", 4.0, 0.81, 0.77),
                              _point("0 2 1 * *", 1.0, 0.78, 0.70))
    propose, reason = why(policy, daily, weekly, Observed(None, 0))
    assert propose and "and its expected 81.0% is as good as today's 80.0% within the forecast's uncertainty" in reason
    propose, reason = why(policy, daily, monthly, Observed(None, 0))
    assert not propose and "none does better than today's 80.0%" in reason


def test_the_cost_rule_prices_a_retrain_in_shares_of_alpha() -> None:
    """A retrain worth alpha = 10 windows of quality must be searchable at prices near 10, not only up to 1."""
    history = make_history(0.004)
    model = fit_cost_model(history, 0.9, timedelta(days=1), 7, 250.0)
    for alpha in (0.01, 10.0):
        policy = make_policy(objective={"kind": "cost", "alpha": alpha})
        prices = [r.threshold for r in rule_choices(policy, [model], PLAIN_CRON).values() if r.threshold is not None]
        assert min(prices) == pytest.approx(alpha * 0.003) and max(prices) == pytest.approx(alpha * 3)
