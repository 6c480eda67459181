"""Where a decision starts from, read from the history: how old the serving model is and what the last
windows did. One reading for the gate (a decision now) and the simulator (a horizon from its start), so
both see the same serving model, the same misses and the same error budget."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.forecast.observations import observe
from controller.policy.model import Policy
from controller.rule import BUDGET_WINDOWS, budget_padding
from controller.telemetry.history import History

DAY = timedelta(days=1)


@dataclass(frozen=True)
class StartState:
    """What serves at a moment and what the last windows did."""

    serving_age_days: float  # age of the serving model at that moment
    recent_misses: tuple[bool, ...] = ()  # the last windows' SLO misses, oldest first
    days_since_latest: float = 0.0  # from the end of the latest evaluated window to that moment

    def budget_misses(self, compliance: float) -> float:
        """Misses over the error budget's windows, those before the data counted as on plan."""
        return float(sum(self.recent_misses)) + sum(budget_padding(compliance, len(self.recent_misses)))


def start_state(history: History, policy: Policy, at: datetime) -> StartState:
    """The state at ``at``: the newest training finished by then serves; the misses of the last
    BUDGET_WINDOWS evaluated windows."""
    newest = max((t.finished_at for t in history.trainings if t.finished_at <= at), default=at)
    seen = observe(history, policy.slo_window)
    serving = seen.serving_qualities()
    ends = seen.times[seen.serving]
    latest = float(ends.max()) if len(ends) else at.timestamp()
    return StartState(serving_age_days=max(0.0, (at - newest) / DAY),
                      recent_misses=tuple(bool(q < policy.slo_target) for q in serving[-BUDGET_WINDOWS:]),
                      days_since_latest=max(0.0, (at.timestamp() - latest) / 86400))
