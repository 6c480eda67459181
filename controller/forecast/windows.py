"""One cost model per training-data window the history has tried, within the policy's range.

How fast quality decays and what a retrain costs both depend on how much data the retrain learns
from, so each window gets its own fit from the runs that used it (they log training_window_days).
greenops only chooses among windows tried often enough to fit a model without the prior: the
effect of an untried window is unknown, and guessing it would be the confident guess we refuse.
"""

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import timedelta

from controller.errors import StalledError
from controller.forecast.costmodel import CURVE_REPLICATES, CostModel, fit_cost_model
from controller.policy.durations import format_days
from controller.policy.model import Policy
from controller.telemetry.history import History, TrainingRun

MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class WindowModels:
    """The cost model of today's window first, then those of the other windows greenops may choose."""

    models: tuple[CostModel, ...]
    note: str | None  # what was considered, for the merge request's evidence


def _days(window: timedelta) -> float:
    return window / timedelta(days=1)


def _key(days: float) -> int:
    """Windows compared to the minute: 30d logged as 30.0 and as 30.000001 are the same window."""
    return round(days * MINUTES_PER_DAY)


def _by_window(history: History, today: float) -> dict[int, list[TrainingRun]]:
    """Runs grouped by the window they logged; runs that logged none count as today's window."""
    groups: dict[int, list[TrainingRun]] = defaultdict(list)
    for run in history.trainings:
        days = run.training_window_days if run.training_window_days is not None else today
        groups[_key(days)].append(run)
    return groups


def _fit(history: History, policy: Policy, seed: int, window_days: float | None, score_itself: bool = True,
         replicates: int = CURVE_REPLICATES) -> CostModel:
    return fit_cost_model(history, policy.slo_target, policy.slo_window, seed, policy.telemetry.carbon_constant,
                          policy.promotion.deploy_energy_kwh, window_days, score_itself, replicates)


def _todays_runs(history: History, today: float, groups: dict[int, list[TrainingRun]]) -> list[TrainingRun]:
    todays = groups.pop(_key(today), [])
    if not todays and groups:
        tried = ", ".join(format_days(key / MINUTES_PER_DAY) for key in sorted(groups))
        raise StalledError(f"no training run logged today's window ({format_days(today)}, spec.training.window); "
                           f"runs tried {tried}: set spec.training.window to one of them, or log "
                           "training_window_days on the runs that use it")
    return todays


def fit_todays_window(history: History, policy: Policy, seed: int, score_itself: bool = True,
                      replicates: int = CURVE_REPLICATES) -> CostModel:
    """The cost model of today's training window alone: what the gate decides with, on the runs reconcile
    fits today's model on."""
    training = policy.training
    if training.window is None or not training.varies:
        today = _days(training.window) if training.window else None
        return _fit(history, policy, seed, today, score_itself, replicates)
    today = _days(training.window)
    todays = _todays_runs(history, today, _by_window(history, today))
    return _fit(replace(history, trainings=tuple(todays)), policy, seed, today, score_itself, replicates)


def fit_window_models(history: History, policy: Policy, seed: int) -> WindowModels:
    """Fit today's window (stalling as fit_cost_model does) and every other tried window in range that fits."""
    training = policy.training
    if training.window is None or not training.varies:
        return WindowModels((fit_todays_window(history, policy, seed),), None)
    assert training.min_window is not None and training.max_window is not None, "defaulted by the policy model"
    today = _days(training.window)
    groups = _by_window(history, today)
    todays = _todays_runs(history, today, groups)
    models = [_fit(replace(history, trainings=tuple(todays)), policy, seed, today)]
    considered, left_out = [f"{format_days(today)} today ({models[0].trainings} runs)"], []
    low, high = _key(_days(training.min_window)), _key(_days(training.max_window))
    for key, runs in sorted(groups.items()):
        label = format_days(key / MINUTES_PER_DAY)
        if not low <= key <= high:
            left_out.append(f"{label} (outside minWindow-maxWindow)")
            continue
        try:
            model = _fit(replace(history, trainings=tuple(runs)), policy, seed, key / MINUTES_PER_DAY)
        except StalledError:
            model = None
        if model is None or model.prior:
            left_out.append(f"{label} ({len(runs)} runs, too few to fit)")
            continue
        models.append(model)
        considered.append(f"{label} ({model.trainings} runs)")
    note = f"training windows compared: {', '.join(considered)}"
    if left_out:
        note += f"; left out: {', '.join(left_out)}"
    if len(models) == 1:
        note += "; log training_window_days on training runs that try other windows so greenops can compare them"
    return WindowModels(tuple(models), note)
