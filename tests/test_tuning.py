"""Carbon-aware start hours, the stored and warm-started Optuna study, and Optuna against exhaustive search."""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import optuna
import pytest

from controller.forecast.carbon import constant_profile, fit_carbon_profile, hour_of_week
from controller.forecast.costmodel import fit_cost_model
from controller.optimize.decide import decide, horizon_for, horizon_start
from controller.optimize.study import exhaustive, tune
from controller.telemetry.history import History

from .test_decide import END, make_history, make_policy

MONDAY = datetime(2026, 5, 4, tzinfo=UTC)


def hourly(days: int, intensity: Callable[[datetime], float]) -> tuple[tuple[datetime, float], ...]:
    return tuple((MONDAY + timedelta(hours=h), intensity(MONDAY + timedelta(hours=h))) for h in range(days * 24))


def test_profile_resolution_follows_the_data() -> None:
    weekly = fit_carbon_profile(hourly(14, lambda t: 100 + t.weekday() * 10 + t.hour), 250)
    assert weekly.resolution == "hour of week"
    assert weekly.at([MONDAY + timedelta(days=2, hours=5)])[0] == pytest.approx(125)
    daily = fit_carbon_profile(hourly(3, lambda t: 50.0 if t.hour == 3 else 200.0), 250)
    assert daily.resolution == "hour of day" and daily.by_hour_of_week[24 * 6 + 3] == 50
    assert fit_carbon_profile(hourly(1, lambda t: 80.0), 250).resolution == "constant"
    assert fit_carbon_profile(None, 250) == constant_profile(250) and not constant_profile(250).varies
    assert hour_of_week(datetime(2026, 5, 10, 23, tzinfo=UTC)) == 167  # Sunday 23:00


def night_is_green(t: datetime) -> float:
    return 40.0 if 1 <= t.hour <= 4 else 240.0


def green_history(decay: float = 0.002) -> History:
    return replace(make_history(decay), carbon_samples=hourly(28, night_is_green))


def test_start_hour_follows_low_carbon_hours_within_allowed_hours() -> None:
    policy = make_policy(schedule__current="0 12 * * *", schedule__allowedHours=["2-3", "12-18"], gate__enabled=False)
    history = green_history()
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    decision = decide(policy, history, [model], seed=7, trials=200)
    hour = int(decision.proposed.schedule.split(" ")[1])
    assert hour in (2, 3)
    assert decision.carbon_change_percent < decision.energy_change_percent  # greener than the energy cut alone
    assert decision.evidence.carbon_resolution == "hour of week"  # four weeks of samples


def test_an_hour_shift_alone_is_proposed_for_its_carbon_saving() -> None:
    """Same cadence, new hour: 0% energy, -83% carbon clears minSavingPercent."""
    policy = make_policy(schedule__current="0 12 * * *", schedule__minInterval="1d", schedule__maxInterval="1d")
    history = green_history(decay=0.02)
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    decision = decide(policy, history, [model], seed=7, trials=60)
    assert decision.propose and decision.energy_change_percent == 0
    assert decision.carbon_change_percent == pytest.approx(-83.3, abs=0.5)
    assert "83% carbon" in decision.reason


def test_study_is_stored_reused_and_warm_started(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    policy, history = make_policy(), green_history()
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    start = horizon_start(history, ZoneInfo("Etc/UTC"))
    first = tune(policy, [model], start, horizon_for(policy), 7, 40, storage)
    again = tune(policy, [model], start, horizon_for(policy), 7, 40, storage)
    assert again.best == first.best and again.trials == first.trials == 40 and not first.warm_started
    names = optuna.get_all_study_names(storage)
    assert len(names) == 1 and names[0].startswith("greenops.fraud-detector.")
    later = tune(policy, [model], start + timedelta(days=1), horizon_for(policy), 7, 40, storage)
    assert later.warm_started
    study = optuna.load_study(study_name=sorted(set(optuna.get_all_study_names(storage)) - set(names))[0],
                              storage=storage)
    assert study.trials[0].params == {"cadence": "daily", "hour": 2}  # today's schedule is always a candidate
    assert study.trials[1].params == optuna.load_study(study_name=names[0], storage=storage).user_attrs["best"]


def test_unopenable_storage_is_a_clear_transient_error() -> None:
    from controller.errors import TransientError

    policy, history = make_policy(), make_history(0.002)
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    with pytest.raises(TransientError, match=r"cannot open the Optuna storage postgresql://\*\*\*@db.invalid/x"):
        tune(policy, [model], END, horizon_for(policy), 7, 10, "postgresql://bot:s3cret-pw@db.invalid/x")


def test_optuna_matches_exhaustive_search_with_a_tenth_of_the_evaluations() -> None:
    policy = make_policy(schedule__maxInterval="30d", gate__enabled=False)
    history = green_history(decay=0.004)
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    start, horizon = horizon_start(history, ZoneInfo("Etc/UTC")), horizon_for(policy)
    full = exhaustive(policy, [model], start, horizon)
    searched = tune(policy, [model], start, horizon, 7, full.space // 10)
    assert full.trials == full.space >= 200 and searched.trials <= full.space // 10
    assert searched.best.energy_kwh_per_period <= full.best.energy_kwh_per_period * 1.01
    assert searched.best.carbon_kg_per_period <= full.best.carbon_kg_per_period * 1.01


def test_a_space_smaller_than_the_trials_is_searched_exhaustively() -> None:
    # constant carbon: today's hour only, 36 cadences, a plain cron
    policy, history = make_policy(gate__enabled=False), make_history(0.004)
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    start, horizon = horizon_start(history, ZoneInfo("Etc/UTC")), horizon_for(policy)
    searched, full = tune(policy, [model], start, horizon, 7, 80), exhaustive(policy, [model], start, horizon, seed=7)
    assert searched.trials == searched.space == full.space < 80 and searched.best == full.best
