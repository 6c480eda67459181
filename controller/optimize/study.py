"""The Optuna study: the point of the search space that the objective prefers. The only Optuna import.

Studies live in an Optuna storage (by default a SQLite file in the state directory): a study is
named after a fingerprint of its inputs, so a rerun on the same inputs reuses its trials and gives
the same decision, and a new study is warm-started with the previous pass's best point. Today's
schedule and rule are always trial 0, so the pick is never worse than today on the simulator's terms.
"""

import hashlib
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import optuna

from controller import schedule
from controller.decision import Forecast
from controller.errors import TransientError
from controller.forecast.costmodel import CostModel
from controller.forecast.state import StartState
from controller.optimize.choose import alternatives, choose, constraint_values, greenest, objective_value
from controller.optimize.space import Params, SearchSpace, search_space
from controller.policy.model import Policy
from controller.redact import redact, safe_url
from controller.rule import PLAIN_CRON, RuleParams

optuna.logging.set_verbosity(optuna.logging.WARNING)
optuna.logging.disable_default_handler()  # its warnings go through greenops' handler: JSON lines, masking
optuna.logging.enable_propagation()


STUDIES_KEPT_PER_POLICY = 5
STARTUP_TRIALS = 16
DEFAULT_MAX_TRIALS = 200  # trials <= 0: a tenth of the space, at most this many


@dataclass(frozen=True)
class TuningResult:
    best: Forecast
    budget_note: str | None
    trials: int  # trials of the study behind the decision (reused ones included)
    space: int  # size of the discrete search space
    seconds: float
    warm_started: bool = False
    alternatives: tuple[Forecast, ...] = ()  # the runners-up a reviewer should compare with


def fingerprint(policy: Policy, models: Sequence[CostModel], start: datetime, horizon: timedelta, seed: int,
                state: StartState | None, today: RuleParams) -> str:
    """Changes whenever anything the decision depends on changes."""
    digest = hashlib.sha256(repr((policy, start, horizon, seed, state, today)).encode())
    for model in models:
        digest.update(repr((model.energy_per_retrain_kwh, model.energy_per_deploy_kwh, model.retrain_duration,
                            model.max_age_days, model.training_window_days, model.carbon)).encode())
        arrays = [model.age_grid_days, model.quality_mean]
        if model.prior_meet is not None:
            arrays.append(model.prior_meet)
        if model.quality is not None:
            q = model.quality
            arrays += [q.age_curves, q.effects, q.innovations, q.noise, q.errors,
                       np.asarray([q.effect_mean, q.persistence])]
        for array in arrays:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _policy_studies(storage: optuna.storages.BaseStorage, prefix: str) -> list[optuna.study.StudySummary]:
    """This policy's studies, oldest first."""
    ours = [s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
            if s.study_name.startswith(prefix)]
    return sorted(ours, key=lambda s: (s.datetime_start or datetime.min, s.study_name))


def _previous_best(storage: optuna.storages.BaseStorage, prefix: str, space: SearchSpace) -> Params | None:
    """The best point of this policy's newest earlier study, if it is still in the space."""
    for summary in reversed(_policy_studies(storage, prefix)):
        best = summary.user_attrs.get("best")
        if isinstance(best, dict) and space.contains(best):
            return best
    return None


def _prune(storage: optuna.storages.BaseStorage, prefix: str) -> None:
    for old in _policy_studies(storage, prefix)[:-STUDIES_KEPT_PER_POLICY]:
        optuna.delete_study(study_name=old.study_name, storage=storage)


def _storage(url: str | None) -> optuna.storages.BaseStorage:
    if url is None:
        return optuna.storages.InMemoryStorage()
    try:
        return optuna.storages.get_storage(url)
    except Exception as err:  # SQLAlchemy/driver errors have no common base class worth importing here
        raise TransientError(f"cannot open the Optuna storage {safe_url(url)}: {type(err).__name__}: "
                             f"{redact(url, str(err))}; check --optuna-storage") from err


def _open_study(storage: optuna.storages.BaseStorage, name: str, prefix: str, space: SearchSpace,
                seed: int, current: Params | None, trials: int) -> tuple[optuna.Study, bool]:
    with warnings.catch_warnings():  # BruteForceSampler is "experimental" since Optuna 3.1
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = (optuna.samplers.BruteForceSampler(seed=seed) if space.size <= max(trials, STARTUP_TRIALS)
                   else optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS))
    exists = name in optuna.get_all_study_names(storage)
    warm = None if exists else _previous_best(storage, prefix, space)
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize", sampler=sampler,
                                load_if_exists=True)
    if not exists:  # today's schedule first, so the pick is never worse than it; then last pass's best
        queued = [params for params in (current, warm) if params]
        queued += space.initial_design(trials // 2)
        for index, params in enumerate(queued):
            if params not in queued[:index]:
                study.enqueue_trial(params)
    return study, warm is not None


def carbon_ceiling(models: Sequence[CostModel]) -> float:
    return max(max(m.carbon.by_hour_of_week) for m in models) or 1.0


def _suggest(space: SearchSpace, trial: optuna.Trial) -> Params:
    params: Params = {"cadence": trial.suggest_categorical("cadence", list(space.cadences)),
                      "hour": trial.suggest_categorical("hour", space.hours)}
    if len(space.gates) > 1:
        params["gate"] = trial.suggest_categorical("gate", space.gates)
    if len(space.windows) > 1:
        params["window"] = trial.suggest_categorical("window", list(space.windows))
    return params


def tune(policy: Policy, models: Sequence[CostModel], start: datetime, horizon: timedelta, seed: int, trials: int,
         storage: str | None = None, state: StartState | None = None, today: RuleParams = PLAIN_CRON) -> TuningResult:
    """Run (or reuse) the seeded study over the search space; same inputs give the same result.

    ``models`` holds one cost model per training window, today's first; ``today`` is the rule that runs
    today. ``trials`` <= 0 means a tenth of the space (at least 20, at most DEFAULT_MAX_TRIALS).
    """
    began = time.perf_counter()
    space = search_space(policy, models, start, horizon, state, today, seed)
    ceiling, energy = carbon_ceiling(models), models[0].energy_per_retrain_kwh
    prefix = f"greenops.{policy.name}."
    backend = _storage(storage)
    wanted = trials if trials > 0 else min(DEFAULT_MAX_TRIALS, max(STARTUP_TRIALS + 4, space.size // 10))
    current = space.params_of(schedule.normalise(policy.current_schedule))
    study, warm = _open_study(backend, prefix + fingerprint(policy, models, start, horizon, seed, state, today),
                              prefix, space, seed, current, wanted)

    def objective(trial: optuna.Trial) -> float:
        forecast, _ = choose(list(space.forecasts(_suggest(space, trial)).values()), policy, energy)
        for name, value in constraint_values(forecast, policy).items():
            trial.set_constraint(name, value)
        return objective_value(forecast, ceiling, policy, energy)

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    budget = min(wanted, space.size) - len(done)
    if budget > 0:
        study.optimize(objective, n_trials=budget)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    forecasts = [f for t in done for f in space.forecasts(t.params).values()]
    best, note = choose(forecasts, policy, energy)
    params = next(t.params for t in done if any(f is best for f in space.forecasts(t.params).values()))
    study.set_user_attr("best", dict(params))
    if storage:
        _prune(backend, prefix)
    best = _greenest_hour(space, params, best, policy, energy)
    return TuningResult(best, note, len(done), space.size, time.perf_counter() - began, warm,
                        alternatives(forecasts, best, policy, energy))


def _greenest_hour(space: SearchSpace, params: Params, best: Forecast, policy: Policy, energy: float) -> Forecast:
    """The pick moved to its greenest acceptable start hour (only when carbon varies by hour)."""
    if len(space.hours) < 2:
        return best
    return greenest(best, space.at_every_hour(params, best.rule), policy, energy)


def exhaustive(policy: Policy, models: Sequence[CostModel], start: datetime, horizon: timedelta,
               state: StartState | None = None, today: RuleParams = PLAIN_CRON, seed: int = 0) -> TuningResult:
    """Simulate every point of the space: the reference the Optuna search is benchmarked against."""
    began = time.perf_counter()
    space = search_space(policy, models, start, horizon, state, today, seed)
    energy = models[0].energy_per_retrain_kwh
    forecasts = [f for p in space.points() for f in space.forecasts(p).values()]
    best, note = choose(forecasts, policy, energy)
    best = _greenest_hour(space, next(p for p in space.points() if any(f is best for f in space.forecasts(p).values())),
                          best, policy, energy)
    return TuningResult(best, note, space.size, space.size, time.perf_counter() - began, False,
                        alternatives(forecasts, best, policy, energy))
