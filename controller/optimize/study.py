"""The Optuna study: cheapest cron schedule that keeps the SLO and the budget. The only Optuna import."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import optuna

from controller.costmodel import CostModel
from controller.decision import Forecast
from controller.errors import StalledError
from controller.optimize.candidates import cadences_within_bounds, expression, start_time_choices
from controller.optimize.simulate import simulate
from controller.policy.durations import format_duration
from controller.policy.model import Policy

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class TuningResult:
    best: Forecast
    budget_note: str | None
    trials: int


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
    return min(forecasts, key=lambda f: (f.energy_kwh_per_period, -f.compliance_lower, f.schedule))


def _most_compliant(forecasts: list[Forecast]) -> Forecast:
    return min(forecasts, key=lambda f: (-f.compliance_lower, f.energy_kwh_per_period, f.schedule))


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


def tune(policy: Policy, model: CostModel, start: datetime, horizon: timedelta,
         seed: int, trials: int) -> TuningResult:
    """Run the seeded study over (cadence, start hour); same inputs give the same result."""
    cadences = {c.name: c for c in cadences_within_bounds(policy)}
    if not cadences:
        raise StalledError(
            f"no cron cadence fits between minInterval {format_duration(policy.min_interval)} and maxInterval "
            f"{format_duration(policy.max_interval)} in allowedHours; widen the bounds")
    minute, hours = start_time_choices(policy)
    simulated: dict[str, Forecast] = {}

    def forecast_of(cadence_name: str, hour: int) -> Forecast:
        expr = expression(cadences[cadence_name], hour, minute)
        if expr not in simulated:
            simulated[expr] = simulate(expr, policy, model, start, horizon)
        return simulated[expr]

    def objective(trial: optuna.Trial) -> float:
        forecast = forecast_of(trial.suggest_categorical("cadence", list(cadences)),
                               trial.suggest_categorical("hour", hours))
        for name, value in constraint_values(forecast, policy).items():
            trial.set_constraint(name, value)
        return forecast.energy_kwh_per_period

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=20)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(objective, n_trials=trials)
    best, note = choose(list(simulated.values()), policy)
    return TuningResult(best, note, len(study.trials))
