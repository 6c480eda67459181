"""The quality forecaster and the run-time rule on synthetic histories with known answers."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from controller.forecast.costmodel import fit_cost_model
from controller.forecast.quality import QualityForecaster
from controller.optimize.decide import horizon_for, horizon_start, start_state
from controller.optimize.simulate import simulate
from controller.rule import (
    BUDGET_WINDOWS,
    MAX_BOOST_DEBT,
    PLAIN_CRON,
    RuleParams,
    Situation,
    allowed_misses,
    budget_debt,
    budget_padding,
    decide_now,
)
from controller.schedule import zone
from controller.telemetry.history import Evaluation, History, TrainingRun

from .test_decide import make_policy

END = datetime(2026, 6, 1, tzinfo=UTC)


def hard_period_history(decay: float, shadows: bool = True, days: int = 80, seed: int = 4,
                        end: datetime = END) -> History:
    """Daily retrains; quality = 0.95 + effect(window) - decay * age + noise, where every version scored on
    a window shares its effect: windows 40-54 are a hard period (-0.12 for fresh and old models alike)."""
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days)
    effect = {d: (-0.12 if 40 <= d < 55 else 0.0) for d in range(days + 15)}
    trainings, evaluations = [], []
    for day in range(days):
        ready = start + timedelta(days=day, hours=2)
        trainings.append(TrainingRun(str(day), ready, 600.0, 1.0, 0.95))
        for age in range(1, (10 if shadows else 2)):
            window = day + age
            at = start + timedelta(days=window)
            if at > end:
                continue
            mid_age = (at - timedelta(hours=12) - ready) / timedelta(days=1)
            quality = 0.95 + effect[window] - decay * mid_age + rng.normal(0, 0.003)
            evaluations.append(Evaluation(str(day), at, float(quality)))
    return History("fraud-detector", "synthetic", tuple(trainings), tuple(evaluations))


def forecaster_of(history: History, target: float = 0.9) -> QualityForecaster:
    model = fit_cost_model(history, target, timedelta(days=1), 7, 250.0)
    assert model.quality is not None
    return model.quality


def test_a_hard_period_is_not_mistaken_for_staleness() -> None:
    """Fresh and old models drop together for 15 windows: the age curve keeps the true 0.004/day decay and
    the drop lands in the window effects."""
    forecaster = forecaster_of(hard_period_history(0.004))
    assert forecaster.separated and forecaster.compared_windows > 60
    slope = (forecaster.curve(0.5) - forecaster.curve(8.5)) / 8
    assert float(slope) == pytest.approx(0.004, abs=0.0008)
    hard = forecaster.effects[40:54]
    assert float(np.mean(hard) - np.mean(forecaster.effects[:35])) == pytest.approx(-0.12, abs=0.01)


def test_without_shadow_evaluations_the_forecaster_says_it_cannot_separate() -> None:
    forecaster = forecaster_of(hard_period_history(0.004, shadows=False))
    assert not forecaster.separated and forecaster.compared_windows == 0


def test_the_forecaster_scores_itself_on_the_history() -> None:
    forecaster = forecaster_of(hard_period_history(0.004))
    assert forecaster.origins >= 6
    assert 0 < forecaster.forecast_mae < 0.05 and np.isfinite(forecaster.naive_mae)


def situation(age: float, effect: float, debt: float = 0.0, to_next: float = 1.0, cost: float = 1.0) -> Situation:
    return Situation(serving_age_days=age, fresh_age_days=-0.01, latest_effect=effect, days_since_latest=0.1,
                     debt=debt, cost_ratio=cost, days_to_next_fire=to_next, window_days=1.0, max_age_days=30.0)


def test_the_rule_skips_hard_periods_and_easy_ones_and_retrains_in_between() -> None:
    """Decay 0.01/day, target 0.9: with an average window a 6-day-old model sits at the target, so a fresh
    one avoids misses; when every model misses (hard) or every model meets (easy), a retrain buys nothing."""
    forecaster = forecaster_of(hard_period_history(0.01), target=0.9)
    rule = RuleParams(threshold=0.05)
    mean = forecaster.effect_mean
    in_between = decide_now(rule, forecaster, situation(6.0, mean), 0.9)
    hard = decide_now(rule, forecaster, situation(6.0, mean - 0.3), 0.9)
    easy = decide_now(rule, forecaster, situation(6.0, mean + 0.3), 0.9)
    assert bool(in_between.retrain) and float(in_between.value) > 0.3
    assert not bool(hard.retrain) and float(hard.value) < 0.01
    assert not bool(easy.retrain) and float(easy.value) < 0.01


def test_the_error_budget_moves_the_bar_and_max_interval_forces_a_retrain() -> None:
    """Budget left discounts the value; an overspent budget raises it, boundedly (the price is the tuned
    one), so a hard period's nothing stays nothing."""
    forecaster = forecaster_of(hard_period_history(0.01), target=0.9)
    rule, mean = RuleParams(threshold=0.2), forecaster.effect_mean
    calm = decide_now(rule, forecaster, situation(1.5, mean), 0.9)
    left = decide_now(rule, forecaster, situation(1.5, mean, debt=-0.5), 0.9)
    over = decide_now(rule, forecaster, situation(1.5, mean, debt=0.5), 0.9)
    spent = decide_now(rule, forecaster, situation(1.5, mean, debt=2.0), 0.9)
    assert float(left.value) == pytest.approx(float(calm.value) * np.exp(-0.5))
    assert float(over.value) == pytest.approx(float(calm.value) * np.exp(0.5))
    assert float(spent.value) == pytest.approx(float(calm.value) * np.exp(MAX_BOOST_DEBT))
    assert float(spent.price) == pytest.approx(0.2)
    assert not bool(calm.retrain) and bool(spent.retrain)
    hard = decide_now(rule, forecaster, situation(1.5, mean - 0.5, debt=2.0), 0.9)
    assert float(hard.value) < 1e-3 and not bool(hard.retrain)
    old = decide_now(rule, forecaster, situation(29.5, mean + 0.3), 0.9)
    assert bool(old.retrain) and bool(old.forced)
    assert bool(decide_now(PLAIN_CRON, forecaster, situation(0.1, mean + 0.3), 0.9).retrain)


def test_a_short_history_starts_on_budget() -> None:
    """Windows before the data are assumed on plan: no debt from padding, whatever the compliance."""
    for compliance in (0.8, 0.9, 0.99):
        assert float(budget_debt(sum(budget_padding(compliance, 0)), compliance)) == pytest.approx(0.0)
        five_misses = 5 + sum(budget_padding(compliance, 6))
        assert float(budget_debt(five_misses, compliance)) == pytest.approx(
            (five_misses - allowed_misses(compliance)) / allowed_misses(compliance))
    assert budget_padding(0.9, BUDGET_WINDOWS + 3) == []


def test_a_retrain_at_a_dirty_hour_must_buy_more() -> None:
    forecaster = forecaster_of(hard_period_history(0.01), target=0.9)
    rule, mean = RuleParams(threshold=0.1), forecaster.effect_mean
    green, dirty = (decide_now(rule, forecaster, situation(1.5, mean, cost=c), 0.9) for c in (0.5, 2.0))
    assert float(green.value) == pytest.approx(float(dirty.value))
    assert bool(green.retrain) and not bool(dirty.retrain) and float(dirty.price) == pytest.approx(0.2)


def test_the_cost_objective_prices_quality_gained() -> None:
    forecaster = forecaster_of(hard_period_history(0.01), target=0.9)
    verdict = decide_now(RuleParams(threshold=0.03, objective="cost"), forecaster, situation(4.0, 0.0), 0.9)
    assert float(verdict.value) == pytest.approx(0.04, abs=0.006) and bool(verdict.retrain)


def test_a_gated_daily_check_retrains_only_when_it_pays_off() -> None:
    """Quality does not decay at all: the gate retrains only when it must, and keeps the SLO. It must every
    8-9 days: the history shows models up to 9 days old, and older ones are never bet on."""
    policy = make_policy(schedule__maxInterval="10d", slo__target=0.9)
    history = hard_period_history(0.0)
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    start, horizon = horizon_start(history, zone("Etc/UTC")), horizon_for(policy)
    state = start_state(history, policy, start)
    plain = simulate("0 2 * * *", policy, model, start, horizon, 0.0, PLAIN_CRON, state, 7)
    gated = simulate("0 2 * * *", policy, model, start, horizon, 0.0, RuleParams(0.01), state, 7)
    assert plain.retrains_per_month == pytest.approx(30, abs=1)
    assert 3 <= gated.retrains_per_month <= 4 and gated.checks_per_month == plain.checks_per_month
    assert gated.compliance == pytest.approx(plain.compliance, abs=0.01)
    assert gated.energy_kwh_per_period < plain.energy_kwh_per_period / 5
    again = simulate("0 2 * * *", policy, model, start, horizon, 0.0, RuleParams(0.01), state, 7)
    assert again == gated  # seeded: the same inputs give the same figures
