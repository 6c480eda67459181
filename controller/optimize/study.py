"""The Optuna study: cheapest cron schedule that keeps the SLO and the budget. The only Optuna import.

The search space is (cadence, start hour), plus the promotion gate and the training window when
they can matter. Studies live in an Optuna storage (by default a SQLite file in the state
directory): a study is named after a fingerprint of its inputs, so a rerun on the
same inputs reuses its trials and gives the same decision, and a new study is warm-started with the
previous pass's best schedule.
"""

import hashlib
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import optuna

from controller import schedule
from controller.decision import Forecast
from controller.errors import StalledError, TransientError
from controller.forecast.costmodel import CostModel
from controller.optimize.candidates import Cadence, cadences_within_bounds, expression, start_time_choices
from controller.optimize.simulate import simulate
from controller.policy.durations import format_days, format_duration
from controller.policy.model import Policy
from controller.redact import redact, safe_url

optuna.logging.set_verbosity(optuna.logging.WARNING)
optuna.logging.disable_default_handler()  # its warnings go through greenops' handler: JSON lines, masking
optuna.logging.enable_propagation()


STUDIES_KEPT_PER_POLICY = 5
CARBON_TIEBREAK = 0.01  # the start hour may move the objective by at most 1% of the energy
STARTUP_TRIALS = 16
COMPLIANCE_RESOLUTION = 0.001  # a tenth of a point of predicted SLO compliance: numerical ties
GATE_STEPS = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)  # minimum quality gains worth telling apart
Params = dict[str, object]  # one point of the search space, as Optuna stores it


@dataclass(frozen=True)
class TuningResult:
    best: Forecast
    budget_note: str | None
    trials: int  # trials of the study behind the decision (reused ones included)
    space: int  # size of the discrete search space
    seconds: float
    warm_started: bool = False


@dataclass(frozen=True)
class SearchSpace:
    """Every (cadence, start hour, promotion gate, training window) the policy allows, simulated on demand.

    The gate and the window are only searched when they can matter: gates when a deploy costs energy,
    windows when the history has fitted more than one. Today's value comes first in each list.
    """

    cadences: dict[str, Cadence]
    hours: list[int]
    minute: int
    gates: list[float]
    windows: dict[str, CostModel]  # label -> the cost model fitted for that training window
    simulate_point: Callable[[str, float, str], Forecast]
    greenest_hour: int  # the allowed hour with the least carbon on average

    @property
    def size(self) -> int:
        return len(self.cadences) * len(self.hours) * len(self.gates) * len(self.windows)

    def forecast(self, params: Params) -> Forecast:
        expr = expression(self.cadences[str(params["cadence"])], int(str(params["hour"])), self.minute)
        gate = float(str(params.get("gate", self.gates[0])))
        return self.simulate_point(expr, gate, str(params.get("window", next(iter(self.windows)))))

    def points(self) -> list[Params]:
        extra = self._extra_points()
        return [{"cadence": c, "hour": h, **e} for c in self.cadences for h in self.hours for e in extra]

    def _extra_points(self) -> list[Params]:
        gates: list[Params] = [{"gate": g} for g in self.gates] if len(self.gates) > 1 else [{}]
        windows: list[Params] = [{"window": w} for w in self.windows] if len(self.windows) > 1 else [{}]
        return [{**g, **w} for g in gates for w in windows]

    def initial_design(self, limit: int) -> list[Params]:
        """One point per (cadence, window) at the greenest hour and today's gate, spread evenly over the
        cadences (densest to sparsest) when there are more than ``limit``.

        Feasibility depends mostly on the cadence, and the cheapest feasible one sits next to infeasible
        ones: random start-up trials can miss it, and TPE then never comes back (1 of 25 synthetic
        cases was 29% off the exhaustive optimum without this design).
        """
        windows = [{"window": w} for w in self.windows] if len(self.windows) > 1 else [{}]
        gate = {"gate": self.gates[0]} if len(self.gates) > 1 else {}
        design = [{"cadence": c, "hour": self.greenest_hour, **gate, **w} for c in self.cadences for w in windows]
        if len(design) <= limit:
            return design
        return [design[int(i)] for i in np.unique(np.linspace(0, len(design) - 1, max(limit, 1)).round())]

    def suggest(self, trial: optuna.Trial) -> Params:
        params: Params = {"cadence": trial.suggest_categorical("cadence", list(self.cadences)),
                          "hour": trial.suggest_categorical("hour", self.hours)}
        if len(self.gates) > 1:
            params["gate"] = trial.suggest_categorical("gate", self.gates)
        if len(self.windows) > 1:
            params["window"] = trial.suggest_categorical("window", list(self.windows))
        return params

    def contains(self, params: Params) -> bool:
        return params in self.points()

    def params_of(self, expr: str) -> Params | None:
        """Today's point: the (cadence, hour) that renders ``expr`` with today's gate and window, if in the space."""
        for name, cadence in self.cadences.items():
            for hour in self.hours:
                if expression(cadence, hour, self.minute) == expr:
                    return {"cadence": name, "hour": hour, **self._extra_points()[0]}
        return None


def constraint_values(forecast: Forecast, policy: Policy) -> dict[str, float]:
    """Optuna constraints (feasible when every value is <= 0)."""
    carbon_excess = (forecast.carbon_kg_per_period - policy.carbon_budget_kg
                     if policy.carbon_budget_kg is not None else -1.0)
    return {
        "slo": policy.slo_compliance - forecast.compliance_lower,
        "energy": forecast.energy_kwh_per_period - policy.energy_budget_kwh,
        "carbon": carbon_excess,
        "bounds": float(len(forecast.bound_violations)),
    }


def _meets_slo(f: Forecast, policy: Policy) -> bool:
    return f.compliance_lower >= policy.slo_compliance and not f.bound_violations


def _within_budget(f: Forecast, policy: Policy) -> bool:
    carbon_ok = policy.carbon_budget_kg is None or f.carbon_kg_per_period <= policy.carbon_budget_kg
    return f.energy_kwh_per_period <= policy.energy_budget_kwh and carbon_ok and not f.bound_violations


def _cheapest(forecasts: list[Forecast]) -> Forecast:
    """Least energy, then least carbon (the start hour), then the safest."""
    return min(forecasts, key=lambda f: (f.energy_kwh_per_period, f.carbon_kg_per_period, -f.compliance_lower,
                                         f.schedule))


def _most_compliant(forecasts: list[Forecast]) -> Forecast:
    """The cheapest of those within COMPLIANCE_RESOLUTION (a tenth of a point) of the best predicted compliance.

    SLO first: when no schedule reaches the SLO, compliance decides, and energy and carbon only break
    what are numerical ties. (A wider tolerance, the estimate's own uncertainty, saved energy on NOAA
    but let Elec2 fall below its SLO in the backtest; see BENCHMARKS.md.)
    """
    top = max(f.compliance_lower for f in forecasts)
    return _cheapest([f for f in forecasts if f.compliance_lower >= top - COMPLIANCE_RESOLUTION])


def choose(forecasts: list[Forecast], policy: Policy) -> tuple[Forecast, str | None]:
    """Pick the decision among simulated schedules, handling infeasibility by the policy's priority."""
    period = format_duration(policy.budget_period)
    meeting = [f for f in forecasts if _meets_slo(f, policy)]
    feasible = [f for f in meeting if _within_budget(f, policy)]
    if feasible:
        return _cheapest(feasible), None
    slo = f"{policy.slo_target} in {policy.slo_compliance:.0%} of windows"
    if policy.priority == "slo" and meeting:
        best = _cheapest(meeting)
        return best, (f"infeasible: keeping {slo} needs >= {best.energy_kwh_per_period:.1f} kWh "
                      f"({best.carbon_kg_per_period:.1f} kgCO2e) per {period}; budget is "
                      f"{policy.energy_budget_kwh:g} kWh. Priority slo: the SLO wins.")
    in_budget = [f for f in forecasts if _within_budget(f, policy)]
    if policy.priority == "budget" and in_budget:
        best = _most_compliant(in_budget)
        return best, (f"infeasible: within {policy.energy_budget_kwh:g} kWh per {period} the best predicted "
                      f"compliance is {best.compliance_lower:.1%} (SLO needs {policy.slo_compliance:.0%}). "
                      "Priority budget: the budget wins.")
    bounded = [f for f in forecasts if not f.bound_violations] or forecasts
    best = _most_compliant(bounded)
    return best, (f"infeasible: no schedule within the interval bounds keeps {slo}; the best predicted "
                  f"compliance is {best.compliance_lower:.1%}. Widen the bounds, relax the SLO or give the "
                  "model more history.")


def gate_choices(policy: Policy, model: CostModel) -> list[float]:
    """Today's gate first, then the steps up to maxMinGain; only today's when a deploy costs nothing."""
    today, highest = policy.promotion.min_gain, policy.promotion.max_min_gain
    if model.energy_per_deploy_kwh <= 0:
        return [today]
    return [today, *(g for g in GATE_STEPS if today < g < highest), *([highest] if highest > today else [])]


def window_label(model: CostModel) -> str:
    days = model.training_window_days
    return "data" if days is None else format_days(days)


def search_space(policy: Policy, models: Sequence[CostModel], start: datetime, horizon: timedelta) -> SearchSpace:
    cadences = {c.name: c for c in cadences_within_bounds(policy)}
    if not cadences:
        raise StalledError(
            f"no cron cadence fits between minInterval {format_duration(policy.min_interval)} and maxInterval "
            f"{format_duration(policy.max_interval)} in allowedHours; widen the bounds")
    windows = {window_label(m): m for m in models}
    minute, hours = start_time_choices(policy, any(m.carbon.varies for m in models))
    gates = sorted({g for m in models for g in gate_choices(policy, m)},
                   key=lambda g: (g != policy.promotion.min_gain, g))
    simulated: dict[tuple[str, float, str], Forecast] = {}

    def simulate_point(expr: str, gate: float, window: str) -> Forecast:
        key = (expr, gate, window)
        if key not in simulated:
            simulated[key] = simulate(expr, policy, windows[window], start, horizon, gate)
        return simulated[key]

    by_utc_hour = np.mean([np.reshape(m.carbon.by_hour_of_week, (7, 24)).mean(axis=0) for m in models], axis=0)
    offset = start.astimezone(schedule.zone(policy.time_zone)).utcoffset() or timedelta(0)
    greenest = min(hours, key=lambda h: (by_utc_hour[(h - round(offset / timedelta(hours=1))) % 24], h))
    return SearchSpace(cadences, hours, minute, gates, windows, simulate_point, greenest)


def objective_value(forecast: Forecast, carbon_ceiling_g_per_kwh: float) -> float:
    """Energy per period, plus a carbon term worth at most 1% of it so the start hour steers the search."""
    energy_at_ceiling = forecast.carbon_kg_per_period * 1000 / carbon_ceiling_g_per_kwh
    return forecast.energy_kwh_per_period + CARBON_TIEBREAK * energy_at_ceiling


def fingerprint(policy: Policy, models: Sequence[CostModel], start: datetime, horizon: timedelta, seed: int) -> str:
    """Changes whenever anything the decision depends on changes."""
    digest = hashlib.sha256(repr((policy, start, horizon, seed)).encode())
    for model in models:
        digest.update(repr((model.energy_per_retrain_kwh, model.energy_per_deploy_kwh, model.retrain_duration,
                            model.max_age_days, model.training_window_days, model.carbon)).encode())
        for curve in (model.age_grid_days, model.quality_mean, model.meet_probability):
            digest.update(np.ascontiguousarray(curve).tobytes())
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
                seed: int, current: str, trials: int) -> tuple[optuna.Study, bool]:
    with warnings.catch_warnings():  # BruteForceSampler is "experimental" since Optuna 3.1
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = (optuna.samplers.BruteForceSampler(seed=seed) if space.size <= max(trials, STARTUP_TRIALS)
                   else optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS))
    exists = name in optuna.get_all_study_names(storage)
    warm = None if exists else _previous_best(storage, prefix, space)
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize", sampler=sampler,
                                load_if_exists=True)
    if not exists:  # today's schedule first, so the pick is never worse than it; then last pass's best
        queued = [params for params in (space.params_of(current), warm) if params]
        queued += space.initial_design(trials // 2)
        for index, params in enumerate(queued):
            if params not in queued[:index]:
                study.enqueue_trial(params)
    return study, warm is not None


def carbon_ceiling(models: Sequence[CostModel]) -> float:
    return max(max(m.carbon.by_hour_of_week) for m in models) or 1.0


def tune(policy: Policy, models: Sequence[CostModel], start: datetime, horizon: timedelta, seed: int, trials: int,
         storage: str | None = None) -> TuningResult:
    """Run (or reuse) the seeded study over the search space; same inputs give the same result.

    ``models`` holds one cost model per training window, today's first. ``trials`` <= 0 means a
    tenth of the space (at least 20).
    """
    began = time.perf_counter()
    space = search_space(policy, models, start, horizon)
    ceiling = carbon_ceiling(models)
    prefix = f"greenops.{policy.name}."
    backend = _storage(storage)
    wanted = trials if trials > 0 else max(STARTUP_TRIALS + 4, space.size // 10)
    study, warm = _open_study(backend, prefix + fingerprint(policy, models, start, horizon, seed), prefix, space,
                              seed, schedule.normalise(policy.current_schedule), wanted)

    def objective(trial: optuna.Trial) -> float:
        forecast = space.forecast(space.suggest(trial))
        for name, value in constraint_values(forecast, policy).items():
            trial.set_constraint(name, value)
        return objective_value(forecast, ceiling)

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    budget = min(wanted, space.size) - len(done)
    if budget > 0:
        study.optimize(objective, n_trials=budget)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    forecasts = [space.forecast(t.params) for t in done]
    best, note = choose(forecasts, policy)
    params = next(t.params for t, f in zip(done, forecasts, strict=True) if f is best)
    study.set_user_attr("best", dict(params))
    if storage:
        _prune(backend, prefix)
    return TuningResult(best, note, len(done), space.size, time.perf_counter() - began, warm)


def exhaustive(policy: Policy, models: Sequence[CostModel], start: datetime, horizon: timedelta) -> TuningResult:
    """Simulate every point of the space: the reference the Optuna search is benchmarked against."""
    began = time.perf_counter()
    space = search_space(policy, models, start, horizon)
    best, note = choose([space.forecast(p) for p in space.points()], policy)
    return TuningResult(best, note, space.size, space.size, time.perf_counter() - began)
