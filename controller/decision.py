"""What the optimiser hands to rendering and write-back: forecasts and the decision."""

from dataclasses import dataclass, field

from controller.rule import PLAIN_CRON, RuleParams

ESTIMATE_NOTE = "estimated from CPU/memory usage, not measured"  # on every energy figure of the estimate preset


@dataclass(frozen=True)
class Forecast:
    """Predicted behaviour of one cron schedule over the simulation horizon."""

    schedule: str
    retrains_per_month: float
    energy_kwh_per_period: float
    carbon_kg_per_period: float
    compliance: float
    compliance_lower: float
    quality_mean: float
    quality_p10: float
    min_gap_hours: float
    max_gap_hours: float
    bound_violations: tuple[str, ...]
    promotion_min_gain: float = 0.0
    deploys_per_month: float = 0.0
    training_window_days: float | None = None
    quality_by_week: tuple[float, ...] = ()  # predicted mean quality per week of the horizon (NaN: unknown age)
    rule: RuleParams = PLAIN_CRON  # the run-time rule at each fire; the default retrains at every fire
    checks_per_month: float = 0.0  # fires of the schedule: each one a check when the rule is gated
    retrains_per_month_range: tuple[float, float] = (0.0, 0.0)  # 10th-90th percentile over simulated paths
    loss_per_period: float = 0.0  # expected windows of lost quality (sum of 1 - quality) per budget period

    @property
    def settings(self) -> tuple[str, float, float | None, float | None, float]:
        """What the job runs with: the schedule, the promotion gate, the training window and the rule."""
        return (self.schedule, self.promotion_min_gain, self.training_window_days, self.rule.threshold,
                self.rule.budget_gain if self.rule.gated else 0.0)


@dataclass(frozen=True)
class Evidence:
    """What the decision rests on, for the merge request body."""

    source: str
    first_sample: str
    last_sample: str
    trainings: int
    evaluations: int
    max_age_days: float
    cv_mae: float  # the forecaster's rolling-origin mean absolute error of one-step quality forecasts
    energy_per_retrain_kwh: float
    trials: int
    seed: int
    horizon_days: int
    carbon_intensity_g_per_kwh: float
    energy_estimated: bool
    carbon_resolution: str = "constant"  # hour of week | hour of day | constant
    search_space: int = 0
    search_seconds: float = field(default=0.0, compare=False)  # wall time: not part of the decision
    prior: str | None = None  # set when thin history made the cost model fall back to its prior
    observed_compliance: float | None = None  # share of recent windows whose serving model met the SLO
    observed_windows: int = 0
    required_compliance: float = 0.0  # what the search had to reach: the SLO's, raised while the error budget is spent
    energy_per_deploy_kwh: float = 0.0
    deploy_energy_samples: int = 0  # 0: the policy's declared figure, or none
    window_note: str | None = None  # the training windows compared, when the policy lets the window vary
    drift_note: str | None = None  # how a logged drift signal was used, if one was logged
    naive_mae: float = float("nan")  # rolling-origin MAE of "next window = last window", beside cv_mae
    forecast_origins: int = 0  # one-step forecasts behind cv_mae
    separated: bool = False  # shadow evaluations told hard periods apart from stale models
    compared_windows: int = 0  # windows scored on two versions or more
    gate_summary: str | None = None  # what the deployed gate decided over the lookback
    gate_note: str | None = None  # why the gate is not proposed, when the policy enables it but it cannot run


@dataclass(frozen=True)
class Decision:
    policy: str
    current: Forecast
    proposed: Forecast
    propose: bool
    reason: str
    budget_note: str | None
    evidence: Evidence
    alternatives: tuple[Forecast, ...] = ()  # the runners-up considered, best first

    @property
    def energy_change_percent(self) -> float:
        return percent_change(self.current.energy_kwh_per_period, self.proposed.energy_kwh_per_period)

    @property
    def carbon_change_percent(self) -> float:
        return percent_change(self.current.carbon_kg_per_period, self.proposed.carbon_kg_per_period)


def percent_change(before: float, after: float) -> float:
    return 0.0 if before == 0 else 100.0 * (after - before) / before
