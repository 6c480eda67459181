"""The SLO's error budget, as observed: did production actually meet the SLO lately?

The cost model predicts; the evaluations say what happened. When observed compliance over the
recent windows is below the SLO's, the error budget is overspent and the next schedule must do
better than the plain target to pay it back (the SRE error-budget policy, applied to retraining).
Without this feedback a controller that sits at the target on prediction ends below it in reality.
"""

from dataclasses import dataclass, replace
from datetime import timedelta

from controller.forecast.observations import observe
from controller.policy.model import Policy
from controller.rule import BUDGET_WINDOWS
from controller.telemetry.history import History

MIN_WINDOWS = 10
MAX_REQUIRED = 0.999


@dataclass(frozen=True)
class ErrorBudget:
    observed: float  # share of recent windows whose serving model met the target
    windows: int
    required: float  # what the next schedule is asked to achieve

    @property
    def spent(self) -> bool:
        return self.required > self.observed

    def describe(self, policy: Policy) -> str:
        return (f"observed compliance {self.observed:.1%} over the last {self.windows} windows is below the SLO's "
                f"{policy.slo_compliance:.0%}: the error budget is spent, so the next schedule must reach "
                f"{self.required:.1%}")


def serving_qualities(history: History, window: timedelta) -> list[float]:
    """Per evaluated window, oldest first, the quality of the model that served it: the youngest version
    ready by the window's middle (other versions are shadow evaluations)."""
    return [float(q) for q in observe(history, window).serving_qualities()]


def error_budget(history: History, policy: Policy) -> ErrorBudget | None:
    """The observed compliance and, when it fell short, the raised requirement; None without enough windows."""
    recent = serving_qualities(history, policy.slo_window)[-BUDGET_WINDOWS:]
    if len(recent) < MIN_WINDOWS:
        return None
    observed = sum(q >= policy.slo_target for q in recent) / len(recent)
    shortfall = max(0.0, policy.slo_compliance - observed)
    return ErrorBudget(observed, len(recent), min(MAX_REQUIRED, policy.slo_compliance + shortfall))


def with_budget(policy: Policy, budget: ErrorBudget | None) -> Policy:
    """The policy the optimiser must satisfy: the SLO's compliance, raised while the budget is overspent."""
    if budget is None or budget.required <= policy.slo_compliance:
        return policy
    return replace(policy, slo_compliance=budget.required)
