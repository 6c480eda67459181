"""Whether a better point is worth a merge request: bounds, budget priority, SLO risk, saving, health.

Proposals must be worth a reviewer's time and must never contradict the evidence shown with them:
greenops does not add retrains to a model whose observed compliance meets its SLO unless its own
forecast for today's schedule (not only the pessimistic bound) says the SLO is at risk.
"""

from dataclasses import dataclass

from controller.decision import Forecast, percent_change
from controller.optimize.choose import COMPLIANCE_RESOLUTION, as_good_within_uncertainty, c_alpha, within_budget
from controller.policy.model import Policy


@dataclass(frozen=True)
class Observed:
    """What production did lately: share of windows whose serving model met the target, over how many."""

    compliance: float | None
    windows: int


def savings(energy: float, carbon: float) -> str:
    """``saves 33% energy and 46% carbon``; changes under half a percent are left out."""
    figures = ((energy, "energy"), (carbon, "carbon"))
    saved = [f"{v:.0f}% {what}" for v, what in figures if v >= 0.5]
    costs = [f"{-v:.0f}% more {what}" for v, what in figures if v <= -0.5]
    text = [f"saves {' and '.join(saved)}"] * bool(saved) + [f"costs {' and '.join(costs)}"] * bool(costs)
    return ", ".join(text) or "saves nothing"


def _healthy(policy: Policy, current: Forecast, proposed: Forecast, observed: Observed) -> str | None:
    """Why more energy must not be proposed: production meets the SLO and so does today's forecast."""
    if proposed.energy_kwh_per_period <= current.energy_kwh_per_period or observed.compliance is None:
        return None
    need = policy.slo_compliance
    if observed.compliance >= need and current.compliance >= need:
        return (f"today's schedule meets the SLO: observed compliance {observed.compliance:.1%} over the last "
                f"{observed.windows} windows, predicted {current.compliance:.1%} (pessimistic bound "
                f"{current.compliance_lower:.1%}); greenops does not add retrains to a healthy model")
    return None


def _cost_why(policy: Policy, current: Forecast, proposed: Forecast, energy_per_retrain_kwh: float) -> tuple[bool, str]:
    before = c_alpha(current, policy, energy_per_retrain_kwh)
    after = c_alpha(proposed, policy, energy_per_retrain_kwh)
    change = -percent_change(before, after)
    summary = (f"C_alpha (alpha {policy.objective.alpha:g}) {before:.2f} -> {after:.2f} per period "
               f"({-change:+.0f}%)")
    if change >= policy.min_saving_percent:
        return True, summary
    return False, f"the best point changes {summary}, below minSavingPercent {policy.min_saving_percent:g}"


def why(policy: Policy, current: Forecast, proposed: Forecast, observed: Observed,
        energy_per_retrain_kwh: float = 0.0) -> tuple[bool, str]:
    """(propose, reason) for moving from ``current`` to ``proposed``."""
    if current.settings == proposed.settings:
        return False, "the current schedule is already the best one found"
    need, slack = policy.slo_compliance, COMPLIANCE_RESOLUTION
    if current.bound_violations and not proposed.bound_violations \
            and proposed.compliance_lower >= current.compliance_lower - slack:
        return True, f"today's schedule breaks the policy's bounds ({'; '.join(current.bound_violations)})"
    if policy.priority == "budget" and not within_budget(current, policy) and within_budget(proposed, policy):
        return True, (f"today's schedule needs {current.energy_kwh_per_period:.1f} kWh per period, over the budget of "
                      f"{policy.energy_budget_kwh:g} kWh; priority budget: the budget wins")
    if policy.objective.kind == "cost":
        return _cost_why(policy, current, proposed, energy_per_retrain_kwh)
    healthy = _healthy(policy, current, proposed, observed)
    if healthy:
        return False, healthy
    at_risk = current.compliance_lower < need or bool(current.bound_violations)
    if at_risk and proposed.compliance_lower > current.compliance_lower + slack:
        return True, (f"the current schedule puts the SLO at risk (predicted compliance "
                      f"{current.compliance_lower:.1%} < {need:.1%})")
    out_of_reach = proposed.compliance_lower < need
    if out_of_reach and not as_good_within_uncertainty(proposed, current):
        return False, (f"no schedule within the bounds is predicted to keep the SLO, and none does better "
                       f"than today's {current.compliance_lower:.1%}")
    energy = -percent_change(current.energy_kwh_per_period, proposed.energy_kwh_per_period)
    carbon = -percent_change(current.carbon_kg_per_period, proposed.carbon_kg_per_period)
    keeping = (f"no schedule within the bounds is predicted to keep the SLO ({proposed.compliance_lower:.1%} "
               f"< {need:.1%} for this one) and its expected {proposed.compliance:.1%} is as good as today's "
               f"{current.compliance_lower:.1%} within the forecast's uncertainty" if out_of_reach
               else "keeping the SLO")
    if max(energy, carbon) >= policy.min_saving_percent:
        return True, f"{savings(energy, carbon)} while {keeping}"
    return False, (f"the best schedule {savings(energy, carbon)}, below minSavingPercent "
                   f"{policy.min_saving_percent:g}; {keeping.replace('keeping', 'it keeps')}")
