"""Which simulated point wins: constraints, the objective, infeasibility by priority, and runners-up.

Objective ``slo`` (default): the least energy (then carbon, the start hour's tie-break) whose SLO lower
bound reaches the target within the budget. Objective ``cost``: the least C_alpha within the budget,
C_alpha = expected windows of lost quality + alpha x retrains (per budget period).
"""

from collections.abc import Callable, Sequence

from controller.decision import Forecast
from controller.optimize.candidates import cadence_of
from controller.policy.durations import format_duration
from controller.policy.model import Policy

CARBON_TIEBREAK = 0.01  # the start hour may move the objective by at most 1% of the energy
COMPLIANCE_RESOLUTION = 0.001  # a tenth of a point of predicted SLO compliance: numerical ties
ALTERNATIVES = 3
HOUR_ENERGY_TOLERANCE = 0.03  # the start hour may cost this much more energy (simulation noise) to save carbon
PreferenceKey = Callable[[Forecast], tuple[float, float, float, float, str, float]]


def c_alpha(forecast: Forecast, policy: Policy, energy_per_retrain_kwh: float) -> float:
    """C_alpha per budget period: lost quality plus alpha per retrain-equivalent of energy."""
    retrains = forecast.energy_kwh_per_period / energy_per_retrain_kwh if energy_per_retrain_kwh else 0.0
    return forecast.loss_per_period + policy.objective.alpha * retrains


def objective_value(forecast: Forecast, carbon_ceiling_g_per_kwh: float, policy: Policy | None = None,
                    energy_per_retrain_kwh: float = 0.0) -> float:
    """What the search minimises, plus a carbon term worth at most 1% of it so the start hour steers it."""
    energy_at_ceiling = forecast.carbon_kg_per_period * 1000 / carbon_ceiling_g_per_kwh
    if policy is not None and policy.objective.kind == "cost":
        base = c_alpha(forecast, policy, energy_per_retrain_kwh)
        per_kwh = base / forecast.energy_kwh_per_period if forecast.energy_kwh_per_period else 0.0
        return base + CARBON_TIEBREAK * energy_at_ceiling * per_kwh
    return forecast.energy_kwh_per_period + CARBON_TIEBREAK * energy_at_ceiling


def constraint_values(forecast: Forecast, policy: Policy) -> dict[str, float]:
    """Optuna constraints (feasible when every value is <= 0); the cost objective does not enforce the SLO."""
    carbon_excess = (forecast.carbon_kg_per_period - policy.carbon_budget_kg
                     if policy.carbon_budget_kg is not None else -1.0)
    slo = policy.slo_compliance - forecast.compliance_lower if policy.objective.kind == "slo" else -1.0
    return {
        "slo": slo,
        "energy": forecast.energy_kwh_per_period - policy.energy_budget_kwh,
        "carbon": carbon_excess,
        "bounds": float(len(forecast.bound_violations)),
    }


def meets_slo(f: Forecast, policy: Policy) -> bool:
    return f.compliance_lower >= policy.slo_compliance and not f.bound_violations


def within_budget(f: Forecast, policy: Policy) -> bool:
    carbon_ok = policy.carbon_budget_kg is None or f.carbon_kg_per_period <= policy.carbon_budget_kg
    return f.energy_kwh_per_period <= policy.energy_budget_kwh and carbon_ok and not f.bound_violations


def _preference(policy: Policy, energy_per_retrain_kwh: float) -> PreferenceKey:
    def key(f: Forecast) -> tuple[float, float, float, float, str, float]:
        first = (c_alpha(f, policy, energy_per_retrain_kwh) if policy.objective.kind == "cost"
                 else f.energy_kwh_per_period)
        threshold = -1.0 if f.rule.threshold is None else f.rule.threshold
        # On ties a gate that checks more often wins: it sees a change sooner at no cost.
        return first, f.carbon_kg_per_period, -f.compliance_lower, -f.checks_per_month, f.schedule, threshold
    return key


def _cheapest(forecasts: list[Forecast], policy: Policy, energy_per_retrain_kwh: float) -> Forecast:
    """Least energy (or C_alpha), then least carbon (the start hour), then the safest, then the most checks."""
    return min(forecasts, key=_preference(policy, energy_per_retrain_kwh))


def as_good_within_uncertainty(f: Forecast, reference: Forecast) -> bool:
    """Whether ``f``'s expected compliance reaches ``reference``'s pessimistic bound: their ranges
    [bound, expected] overlap, so the forecast cannot tell ``reference`` is the more compliant."""
    return f.compliance >= reference.compliance_lower - COMPLIANCE_RESOLUTION


def _cheapest_as_compliant(forecasts: list[Forecast], policy: Policy,
                           energy_per_retrain_kwh: float) -> tuple[Forecast, str]:
    """When no point reaches the SLO: the cheapest whose expected compliance reaches the pessimistic bound of
    the most compliant one (the one-standard-error rule of model selection).

    Retraining more than that buys less predicted compliance than the forecast's own uncertainty. Taking
    the most compliant point instead made greenops retrain at almost every fire through hard periods,
    where every schedule misses alike (NOAA: 1,134 of 1,332 retrains came from such reconciles).
    Returns the pick and the sentence that says so.
    """
    top = max(forecasts, key=lambda f: (f.compliance_lower, f.compliance))
    pick = _cheapest([f for f in forecasts if as_good_within_uncertainty(f, top)], policy, energy_per_retrain_kwh)
    if pick is top:
        return pick, f"the best predicted compliance is {top.compliance_lower:.1%}"
    return pick, (f"the best predicted compliance is {top.compliance_lower:.1%}, and this schedule's expected "
                  f"{pick.compliance:.1%} is as good within the forecast's uncertainty at less energy")


def choose(forecasts: list[Forecast], policy: Policy,
           energy_per_retrain_kwh: float = 0.0) -> tuple[Forecast, str | None]:
    """Pick the decision among simulated points, handling infeasibility by the policy's priority."""
    period = format_duration(policy.budget_period)
    if policy.objective.kind == "cost":
        in_budget = [f for f in forecasts if within_budget(f, policy)]
        if in_budget:
            return _cheapest(in_budget, policy, energy_per_retrain_kwh), None
        bounded = [f for f in forecasts if not f.bound_violations] or forecasts
        best = min(bounded, key=lambda f: (f.energy_kwh_per_period, f.schedule))
        return best, (f"infeasible: the least energy within the interval bounds is "
                      f"{best.energy_kwh_per_period:.1f} kWh per {period}; budget is {policy.energy_budget_kwh:g} kWh")
    meeting = [f for f in forecasts if meets_slo(f, policy)]
    feasible = [f for f in meeting if within_budget(f, policy)]
    if feasible:
        return _cheapest(feasible, policy, energy_per_retrain_kwh), None
    slo = f"{policy.slo_target} in {policy.slo_compliance:.0%} of windows"
    if policy.priority == "slo" and meeting:
        best = _cheapest(meeting, policy, energy_per_retrain_kwh)
        return best, (f"infeasible: keeping {slo} needs >= {best.energy_kwh_per_period:.1f} kWh "
                      f"({best.carbon_kg_per_period:.1f} kgCO2e) per {period}; budget is "
                      f"{policy.energy_budget_kwh:g} kWh. Priority slo: the SLO wins.")
    in_budget = [f for f in forecasts if within_budget(f, policy)]
    if policy.priority == "budget" and in_budget:
        best, reach = _cheapest_as_compliant(in_budget, policy, energy_per_retrain_kwh)
        return best, (f"infeasible: within {policy.energy_budget_kwh:g} kWh per {period} {reach} "
                      f"(SLO needs {policy.slo_compliance:.0%}). Priority budget: the budget wins.")
    bounded = [f for f in forecasts if not f.bound_violations] or forecasts
    best, reach = _cheapest_as_compliant(bounded, policy, energy_per_retrain_kwh)
    return best, (f"infeasible: no schedule within the interval bounds keeps {slo}; {reach}. Widen the bounds, "
                  "relax the SLO or give the model more history.")


def _family(f: Forecast) -> tuple[str, bool, float, float | None]:
    """Points that differ only by the start hour or the rule's price are one alternative."""
    return cadence_of(f.schedule), f.rule.gated, f.promotion_min_gain, f.training_window_days


def _figures(f: Forecast) -> tuple[float, float]:
    return round(f.energy_kwh_per_period, 3), round(f.compliance_lower, 3)


def alternatives(forecasts: Sequence[Forecast], best: Forecast, policy: Policy,
                 energy_per_retrain_kwh: float = 0.0) -> tuple[Forecast, ...]:
    """The next ALTERNATIVES points a reviewer should compare with the pick: the best of each other family
    (cadence, rule, gate, window), those that keep the SLO and the budget first, then by the objective."""
    key = _preference(policy, energy_per_retrain_kwh)
    def acceptable(f: Forecast) -> bool:
        return within_budget(f, policy) and (policy.objective.kind == "cost" or meets_slo(f, policy))

    ranked = sorted(forecasts, key=lambda f: (not acceptable(f), key(f)))
    seen, figures, picked = {_family(best)}, {_figures(best)}, []
    for forecast in ranked:
        if _family(forecast) not in seen and _figures(forecast) not in figures:
            seen.add(_family(forecast))
            figures.add(_figures(forecast))
            picked.append(forecast)
        if len(picked) == ALTERNATIVES:
            break
    return tuple(picked)


def greenest(best: Forecast, same_but_hour: Sequence[Forecast], policy: Policy,
             energy_per_retrain_kwh: float = 0.0) -> Forecast:
    """The pick at the start hour with the least carbon, among those as acceptable as the pick (SLO and budget)
    and within HOUR_ENERGY_TOLERANCE of its objective: under a gate, hours differ in energy by simulation noise
    of a percent or so, which must not outweigh what the hour saves in carbon."""
    def score(f: Forecast) -> float:
        if policy.objective.kind == "cost":
            return c_alpha(f, policy, energy_per_retrain_kwh)
        return f.energy_kwh_per_period

    def acceptable(f: Forecast) -> bool:
        slo_ok = policy.objective.kind == "cost" or meets_slo(f, policy) or not meets_slo(best, policy)
        return slo_ok and (within_budget(f, policy) or not within_budget(best, policy)) and not f.bound_violations

    limit = score(best) * (1 + HOUR_ENERGY_TOLERANCE) + 1e-12
    options = [f for f in same_but_hour if acceptable(f) and score(f) <= limit]
    return min([best, *options], key=lambda f: (f.carbon_kg_per_period, score(f), f.schedule))
