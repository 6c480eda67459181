"""The search space: every (cadence, start hour, promotion gate, training window) a policy allows, each
simulated with every rule (a plain cron and the gate at each price) in one batched replay.

The gate and the window are only searched when they can matter: gates when a deploy costs energy,
windows when the history has fitted more than one, rules when the policy lets the gate run and the
history is rich enough for the forecaster (on thin history every fire retrains). Today's value
comes first in each list. Every point is simulated on the same paths (one seed), so points compare
fairly.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from controller import schedule
from controller.decision import Forecast
from controller.errors import StalledError
from controller.forecast.costmodel import CostModel
from controller.forecast.state import StartState
from controller.optimize.candidates import Cadence, cadences_within_bounds, expression, start_time_choices
from controller.optimize.simulate import simulate_rules
from controller.policy.durations import format_days, format_duration
from controller.policy.model import Policy
from controller.rule import PLAIN_CRON, RuleParams

GATE_STEPS = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)  # minimum quality gains worth telling apart
# Prices of a retrain: expected SLO misses it must avoid until the next fire (slo), or windows of quality it must
# gain until the next fire (cost), as shares of alpha: alpha prices a retrain against its whole service life,
# the rule's value counts only the windows until the next chance to retrain, so the right share depends on the
# cadence and the drift and is tuned. (Fixed prices up to 1 window left alpha = 10 retraining ~2x as often as
# maxInterval forces on NOAA, where no retrain pays that much.)
SLO_THRESHOLDS = (0.0, 0.005, 0.02, 0.05, 0.2, 1.0, 5.0)
COST_PRICE_SHARES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
ALWAYS = "always"  # the rule label of a plain cron: every fire retrains
Params = dict[str, object]  # one point of the search space, as Optuna stores it


def rule_label(rule: RuleParams) -> str:
    return ALWAYS if rule.threshold is None else f"{rule.threshold:g}"


@dataclass(frozen=True)
class SearchSpace:
    cadences: dict[str, Cadence]
    hours: list[int]
    minute: int
    gates: list[float]
    windows: dict[str, CostModel]  # label -> the cost model fitted for that training window
    rules: dict[str, RuleParams]  # label -> rule; today's first. Every point is simulated with all of them.
    simulate_point: Callable[[str, float, str], dict[str, Forecast]]
    simulate_one: Callable[[str, float, str, RuleParams], Forecast]
    greenest_hour: int  # the allowed hour with the least carbon on average

    @property
    def size(self) -> int:
        """Points Optuna chooses among; each is simulated with every rule at once."""
        return len(self.cadences) * len(self.hours) * len(self.gates) * len(self.windows)

    def forecasts(self, params: Params) -> dict[str, Forecast]:
        """The point ``params`` under every rule, by rule label."""
        expr = expression(self.cadences[str(params["cadence"])], int(str(params["hour"])), self.minute)
        gate = float(str(params.get("gate", self.gates[0])))
        return self.simulate_point(expr, gate, str(params.get("window", next(iter(self.windows)))))

    def forecast(self, params: Params) -> Forecast:
        """The point under the rule ``params`` names (today's when it names none)."""
        return self.forecasts(params)[str(params.get("rule", next(iter(self.rules))))]

    def at_every_hour(self, params: Params, rule: RuleParams) -> list[Forecast]:
        """The point's cadence, gate and window with ``rule``, at each allowed start hour."""
        cadence = self.cadences[str(params["cadence"])]
        gate = float(str(params.get("gate", self.gates[0])))
        window = str(params.get("window", next(iter(self.windows))))
        return [self.simulate_one(expression(cadence, hour, self.minute), gate, window, rule) for hour in self.hours]

    def _extra_points(self) -> list[Params]:
        extra: list[Params] = [{}]
        for key, values in (("gate", self.gates), ("window", list(self.windows))):
            if len(values) > 1:
                extra = [{**e, key: v} for e in extra for v in values]
        return extra

    def points(self) -> list[Params]:
        extra = self._extra_points()
        return [{"cadence": c, "hour": h, **e} for c in self.cadences for h in self.hours for e in extra]

    def initial_design(self, limit: int) -> list[Params]:
        """One point per (cadence, window) at the greenest hour and today's gate, spread evenly when
        there are more than ``limit``.

        Feasibility depends mostly on the cadence, and the cheapest feasible point sits next to infeasible
        ones: random start-up trials can miss it, and TPE then never comes back (1 of 25 synthetic cases
        was 29% off the exhaustive optimum without this design).
        """
        windows = [{"window": w} for w in self.windows] if len(self.windows) > 1 else [{}]
        gate = {"gate": self.gates[0]} if len(self.gates) > 1 else {}
        design = [{"cadence": c, "hour": self.greenest_hour, **gate, **w} for c in self.cadences for w in windows]
        if len(design) <= limit:
            return design
        return [design[int(i)] for i in np.unique(np.linspace(0, len(design) - 1, max(limit, 1)).round())]

    def contains(self, params: Params) -> bool:
        return params in self.points()

    def params_of(self, expr: str) -> Params | None:
        """Today's point: the (cadence, hour) that renders ``expr``, with today's gate and window."""
        for name, cadence in self.cadences.items():
            for hour in self.hours:
                if expression(cadence, hour, self.minute) == expr:
                    return {"cadence": name, "hour": hour, **self._extra_points()[0]}
        return None


def gate_choices(policy: Policy, model: CostModel) -> list[float]:
    """Today's gate first, then the steps up to maxMinGain; only today's when a deploy costs nothing."""
    today, highest = policy.promotion.min_gain, policy.promotion.max_min_gain
    if model.energy_per_deploy_kwh <= 0:
        return [today]
    return [today, *(g for g in GATE_STEPS if today < g < highest), *([highest] if highest > today else [])]


def rule_choices(policy: Policy, models: Sequence[CostModel], today: RuleParams) -> dict[str, RuleParams]:
    """Today's rule first, then a plain cron and the gated rules at each price, when the gate can run."""
    rules = {rule_label(today): today}
    if not policy.gate_can_run or not any(m.quality for m in models):
        return rules if today.threshold is None else {ALWAYS: RuleParams(objective=policy.objective.kind)}
    objective = policy.objective.kind
    rules.setdefault(ALWAYS, RuleParams(objective=objective))
    alpha = policy.objective.alpha
    for threshold in SLO_THRESHOLDS if objective == "slo" else tuple(alpha * share for share in COST_PRICE_SHARES):
        rule = RuleParams(threshold, objective=objective)
        rules.setdefault(rule_label(rule), rule)
    return rules


def window_label(model: CostModel) -> str:
    days = model.training_window_days
    return "data" if days is None else format_days(days)


def search_space(policy: Policy, models: Sequence[CostModel], start: datetime, horizon: timedelta,
                 state: StartState | None = None, today: RuleParams = PLAIN_CRON, seed: int = 0) -> SearchSpace:
    cadences = {c.name: c for c in cadences_within_bounds(policy)}
    if not cadences:
        raise StalledError(
            f"no cron cadence fits between minInterval {format_duration(policy.min_interval)} and maxInterval "
            f"{format_duration(policy.max_interval)} in allowedHours; widen the bounds")
    windows = {window_label(m): m for m in models}
    rules = rule_choices(policy, models, today)
    minute, hours = start_time_choices(policy, any(m.carbon.varies for m in models))
    gates = sorted({g for m in models for g in gate_choices(policy, m)},
                   key=lambda g: (g != policy.promotion.min_gain, g))
    simulated: dict[tuple[str, float, str], dict[str, Forecast]] = {}

    def simulate_point(expr: str, gate: float, window: str) -> dict[str, Forecast]:
        key = (expr, gate, window)
        if key not in simulated:
            forecasts = simulate_rules(expr, policy, windows[window], start, horizon, gate, list(rules.values()),
                                       state, seed)
            simulated[key] = dict(zip(rules, forecasts, strict=True))
        return simulated[key]

    def simulate_one(expr: str, gate: float, window: str, rule: RuleParams) -> Forecast:
        cached = simulated.get((expr, gate, window), {}).get(rule_label(rule))
        return cached or simulate_rules(expr, policy, windows[window], start, horizon, gate, [rule], state, seed)[0]

    by_utc_hour = np.mean([np.reshape(m.carbon.by_hour_of_week, (7, 24)).mean(axis=0) for m in models], axis=0)
    offset = start.astimezone(schedule.zone(policy.time_zone)).utcoffset() or timedelta(0)
    greenest = min(hours, key=lambda h: (by_utc_hour[(h - round(offset / timedelta(hours=1))) % 24], h))
    return SearchSpace(cadences, hours, minute, gates, windows, rules, simulate_point, simulate_one, greenest)
