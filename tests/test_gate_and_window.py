"""The promotion gate and the training-data window as decision variables, on synthetic cases with known answers."""

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from controller.errors import StalledError
from controller.forecast.costmodel import fit_cost_model
from controller.forecast.windows import fit_window_models
from controller.gitops import mr
from controller.optimize.decide import decide, horizon_for, horizon_start
from controller.optimize.simulate import simulate
from controller.optimize.study import exhaustive, search_space, tune
from controller.policy.model import Policy
from controller.schedule import zone
from controller.telemetry.history import History

from .test_decide import make_history, make_policy
from .test_tuning import hourly, night_is_green

DAILY = {"schedule__minInterval": "1d", "schedule__maxInterval": "1d"}  # only the gate can change


def with_deploy_energy(history: History, kwh: float) -> History:
    return replace(history, trainings=tuple(replace(t, deploy_energy_kwh=kwh) for t in history.trainings))


def test_a_gate_deploys_only_retrains_expected_to_gain_that_much() -> None:
    """Quality falls 0.01 a day: a 0.025 gate deploys a daily retrain once the serving model is 2.5 days old,
    i.e. every third day, and each skipped deploy saves its energy."""
    policy = make_policy(**DAILY)
    history = with_deploy_energy(make_history(0.01, energy=1.0), 2.0)
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    assert model.energy_per_deploy_kwh == pytest.approx(2.0) and model.deploy_energy_samples == 60
    assert 2.0 <= model.age_for_gain(0.025) <= 3.0
    start, horizon = horizon_start(history, zone("Etc/UTC")), horizon_for(policy)
    every = simulate("0 2 * * *", policy, model, start, horizon, 0.0)
    gated = simulate("0 2 * * *", policy, model, start, horizon, 0.025)
    assert every.deploys_per_month == pytest.approx(every.retrains_per_month)
    assert gated.deploys_per_month == pytest.approx(every.retrains_per_month / 3, abs=0.5)
    saved = (every.deploys_per_month - gated.deploys_per_month) * 2.0
    assert every.energy_kwh_per_period - gated.energy_kwh_per_period == pytest.approx(saved, rel=0.02)
    assert gated.quality_mean < every.quality_mean and gated.promotion_min_gain == 0.025


def test_costly_deploys_with_slo_slack_get_a_gate() -> None:
    policy = make_policy(slo__target=0.85, **DAILY)
    history = with_deploy_energy(make_history(0.004), 3.0)
    decision = decide(policy, history, [fit_cost_model(history, 0.85, policy.slo_window, 7, 250.0)], 7, 0)
    assert decision.propose and decision.proposed.schedule == decision.current.schedule
    assert decision.proposed.promotion_min_gain > 0
    assert decision.proposed.deploys_per_month < decision.current.deploys_per_month
    assert decision.proposed.compliance_lower >= policy.slo_compliance
    assert "promote at +" in mr.title(policy, decision)
    assert "0.000 kWh" not in mr.body(policy, decision) and "logged deploys" in mr.body(policy, decision)


def test_free_deploys_leave_the_gate_alone() -> None:
    policy = make_policy(promotion={"minGain": 0.001, "maxMinGain": 0.05})
    history = make_history(0.004)
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    start, horizon = horizon_start(history, zone("Etc/UTC")), horizon_for(policy)
    assert search_space(policy, [model], start, horizon).gates == [0.001]
    declared = replace(policy, promotion=replace(policy.promotion, deploy_energy_kwh=1.5))
    priced = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0, 1.5)
    gates = search_space(declared, [priced], start, horizon).gates
    assert gates[0] == 0.001 and max(gates) == 0.05 and priced.deploy_energy_samples == 0


def windowed_history() -> History:
    """Runs on 7 days of data cost 1 kWh and decay 0.003 a day; on 30 days, 4 kWh and 0.002 a day.
    Two runs tried 14 days (too few to fit) and a few tried 60 days (outside the policy's range)."""
    parts = {7.0: make_history(0.003, energy=1.0, seed=1), 30.0: make_history(0.002, energy=4.0, seed=2),
             14.0: make_history(0.001, days=2, energy=2.0, seed=3), 60.0: make_history(0.0, energy=8.0, seed=4)}
    trainings, evaluations = [], []
    for days, part in parts.items():
        trainings += [replace(t, version=f"{days:g}/{t.version}", training_window_days=days) for t in part.trainings]
        evaluations += [replace(e, version=f"{days:g}/{e.version}") for e in part.evaluations]
    return History("fraud-detector", "synthetic", tuple(sorted(trainings, key=lambda t: t.finished_at)),
                   tuple(sorted(evaluations, key=lambda e: (e.at, e.version))))


def window_policy(**overrides: object) -> Policy:
    return make_policy(slo__target=0.9, schedule__maxInterval="10d",
                       training={"window": "30d", "minWindow": "7d", "maxWindow": "30d"}, **overrides)


def test_each_tried_window_gets_its_own_model_and_untried_ones_are_left_out() -> None:
    windows = fit_window_models(windowed_history(), window_policy(), 7)
    assert [m.training_window_days for m in windows.models] == [30.0, 7.0]
    assert [round(m.energy_per_retrain_kwh) for m in windows.models] == [4, 1]
    assert windows.note is not None
    assert "14d (2 runs, too few to fit)" in windows.note and "60d (outside minWindow-maxWindow)" in windows.note


def test_a_window_no_run_used_is_stalled_with_the_windows_that_were_tried() -> None:
    policy = make_policy(slo__target=0.9, schedule__maxInterval="10d",
                         training={"window": "21d", "minWindow": "7d", "maxWindow": "30d"})
    with pytest.raises(StalledError, match=r"no training run logged today's window \(21d.*runs tried 7d, 14d, 30d"):
        fit_window_models(windowed_history(), policy, 7)


def test_the_cheaper_window_is_chosen_when_it_keeps_the_slo() -> None:
    policy, history = window_policy(), windowed_history()
    windows = fit_window_models(history, policy, 7)
    decision = decide(policy, history, windows.models, 7, 0, window_note=windows.note)
    assert decision.propose and decision.proposed.training_window_days == 7.0
    assert decision.proposed.compliance_lower >= policy.slo_compliance
    assert decision.energy_change_percent < -70
    assert "train on 7d" in mr.title(policy, decision) and "| Training window | 30d | 7d |" in mr.body(policy, decision)


def test_a_policy_without_a_window_range_fits_one_model_on_every_run() -> None:
    policy = make_policy(training={"window": "30d"})
    windows = fit_window_models(windowed_history(), policy, 7)
    assert len(windows.models) == 1 and windows.note is None and windows.models[0].training_window_days == 30.0
    assert windows.models[0].trainings == len(windowed_history().trainings)


def drifting_history(latest_drift: float, drift_weight: float = 0.3, seed: int = 5) -> History:
    """Quality = 0.95 - 0.002 * age - drift_weight * drift + noise; each window's drift is shared by every
    version evaluated on it, random in [0, 0.1], and ``latest_drift`` over the last three windows."""
    rng = np.random.default_rng(seed)
    base = make_history(0.002, seed=seed)
    times = sorted({e.at for e in base.evaluations})
    drift = {at: (latest_drift if at in times[-3:] else float(rng.uniform(0, 0.1))) for at in times}
    return replace(base, evaluations=tuple(
        replace(e, quality=e.quality - drift_weight * drift[e.at], drift=drift[e.at]) for e in base.evaluations))


def test_a_drift_signal_that_explains_quality_is_learnt_and_held_at_its_recent_level() -> None:
    policy = make_policy(slo__target=0.9, schedule__maxInterval="10d")
    calm, drifting = drifting_history(0.02), drifting_history(0.12)
    calm_model = fit_cost_model(calm, 0.9, policy.slo_window, 7, 250.0)
    assert calm_model.drift is not None and calm_model.drift.slope == pytest.approx(-0.3, abs=0.05)
    assert calm_model.drift.cv_mae < calm_model.drift.cv_mae_age_only
    drifting_model = fit_cost_model(drifting, 0.9, policy.slo_window, 7, 250.0)
    assert drifting_model.quality_mean[0] < calm_model.quality_mean[0] - 0.02
    calm_decision = decide(policy, calm, [calm_model], 7, 0)
    drifting_decision = decide(policy, drifting, [drifting_model], 7, 0)
    assert drifting_decision.proposed.retrains_per_month > calm_decision.proposed.retrains_per_month
    assert drifting_decision.evidence.drift_note is not None
    assert drifting_decision.evidence.drift_note.startswith("drift signal used: -0.029")


def test_a_drift_score_that_explains_nothing_is_not_used() -> None:
    history = drifting_history(0.05, drift_weight=0.0)
    model = fit_cost_model(history, 0.9, timedelta(days=1), 7, 250.0)
    assert model.drift is None and model.drift_logged
    assert model.quality_mean[0] == pytest.approx(fit_cost_model(
        replace(history, evaluations=tuple(replace(e, drift=None) for e in history.evaluations)),
        0.9, timedelta(days=1), 7, 250.0).quality_mean[0])


def test_optuna_stays_within_one_percent_of_exhaustive_search_over_gates_and_windows() -> None:
    policy = window_policy(schedule__minInterval="1d", schedule__allowedHours=["0-7"], gate__enabled=False)
    history = windowed_history()
    history = replace(history, trainings=tuple(replace(t, deploy_energy_kwh=1.0) for t in history.trainings),
                      carbon_samples=hourly(28, night_is_green))
    models = fit_window_models(history, policy, 7).models
    start, horizon = horizon_start(history, zone("Etc/UTC")), horizon_for(policy)
    full = exhaustive(policy, models, start, horizon)
    searched = tune(policy, models, start, horizon, 7, full.space // 10)
    assert full.space >= 1000 and searched.trials <= full.space // 10
    assert searched.best.energy_kwh_per_period <= full.best.energy_kwh_per_period * 1.01
    assert searched.best.compliance_lower >= policy.slo_compliance
