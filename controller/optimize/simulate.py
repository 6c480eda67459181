"""Simulate a schedule and its rule: real fire times, simulated windows, the rule deciding at each fire.

The horizon is replayed on many paths at once (one numpy lane per path): each lane draws the window
effects ahead (the forecaster's AR(1) process from the latest window, its own innovations resampled)
and the noise of each window's production evaluation, and uses one of the bootstrap replicates of the
age curve. At every fire the run-time rule (``controller.rule``, the code `greenops gate` runs) sees
what the gate would see then: the serving model's age, the effect estimated from the latest ended
window, the error budget from the simulated misses, and decides per lane whether to retrain. Each
evaluation window is sampled at evenly spaced moments to find the serving model's age; the chance it
meets the SLO is computed from the expected quality and the noise distribution (not drawn, so the
figures are smooth), while the misses the gate sees are drawn.

Compliance is the mean over lanes; its lower bound the 10th percentile over age-curve replicates (the
uncertainty of the fit), each averaged over the same paths, so every candidate schedule meets the same
simulated future (common random numbers) and comparisons between them are fair. The random draws come
from the seed only: same inputs, same figures.

The promotion gate deploys a retrain only when it is expected to beat the serving model by the
gate: with quality decaying monotonically in age, that is when the serving model has reached the
age at which the expected gain clears the gate. Each retrain's carbon is its energy times the grid
intensity of the hour of week it starts in, and so is each deploy's.
"""

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from controller import schedule
from controller.decision import Forecast
from controller.forecast.costmodel import CostModel
from controller.forecast.state import StartState
from controller.policy.durations import format_duration
from controller.policy.model import Policy
from controller.rule import BUDGET_WINDOWS, PLAIN_CRON, RuleParams, Situation, budget_debt, budget_padding, decide_now

DST_ALLOWANCE = timedelta(hours=1)  # a daily 02:00 job is 23 h or 25 h apart when clocks change
LOWER_BOUND_QUANTILE = 0.10
SAMPLES_PER_WINDOW = 6
PATHS_PER_REPLICATE = 16
DAY = timedelta(days=1)


@dataclass(frozen=True)
class _Lanes:
    """The random draws shared by every candidate of one search: per lane, its age-curve replicate, the
    window effects ahead and the noise of each window's production evaluation."""

    replicate: np.ndarray  # (lanes,)
    effects: np.ndarray  # (lanes, windows)
    noise: np.ndarray  # (lanes, windows)
    before: np.ndarray  # (lanes,) effect of the window before the horizon

    def tiled(self, copies: int) -> "_Lanes":
        """The same lanes ``copies`` times over: one block per rule simulated in the same replay."""
        return _Lanes(np.tile(self.replicate, copies), np.tile(self.effects, (copies, 1)),
                      np.tile(self.noise, (copies, 1)), np.tile(self.before, copies))


def _lanes(model: CostModel, windows: int, seed: int) -> _Lanes:
    forecaster = model.quality
    replicates = forecaster.age_curves.shape[0] if forecaster else 1
    replicate = np.repeat(np.arange(replicates), PATHS_PER_REPLICATE)
    if forecaster is None:
        zeros = np.zeros((len(replicate), windows))
        return _Lanes(replicate, zeros, zeros, np.zeros(len(replicate)))
    rng = np.random.default_rng(seed)  # the same paths for every replicate
    innovations = (rng.choice(forecaster.innovations, (PATHS_PER_REPLICATE, windows))
                   if len(forecaster.innovations) else np.zeros((PATHS_PER_REPLICATE, windows)))
    noise = rng.choice(forecaster.noise, (PATHS_PER_REPLICATE, windows))
    deviation = np.empty_like(innovations)
    # Each path starts from a window effect drawn from the history, not from today's: the rule is tuned for
    # the long run, and the gate answers the window at hand when it fires.
    previous = rng.choice(forecaster.effects - forecaster.effect_mean, PATHS_PER_REPLICATE)
    before = previous + forecaster.effect_mean
    for window in range(windows):
        previous = forecaster.persistence * previous + innovations[:, window]
        deviation[:, window] = previous
    return _Lanes(replicate, np.tile(deviation + forecaster.effect_mean, (replicates, 1)),
                  np.tile(noise, (replicates, 1)), np.tile(before, replicates))


def _violations(policy: Policy, local_fires: list[datetime], gaps: list[timedelta]) -> tuple[str, ...]:
    problems = []
    if not gaps or max(gaps) > policy.max_interval + DST_ALLOWANCE:
        longest = format_duration(max(gaps)) if gaps else "the whole horizon"
        problems.append(f"longest gap {longest} exceeds maxInterval {format_duration(policy.max_interval)}")
    if gaps and min(gaps) < policy.min_interval - DST_ALLOWANCE:
        problems.append(f"shortest gap {format_duration(min(gaps))} is below minInterval "
                        f"{format_duration(policy.min_interval)}")
    outside = sorted({f.hour for f in local_fires} - policy.allowed_hours)
    if outside:
        problems.append(f"starts at hours {outside} outside allowedHours")
    return tuple(problems)


@dataclass
class _Outcome:
    """Per lane and window what the replay produced; per lane what it spent."""

    meet: np.ndarray  # (lanes, windows) chance each window meets the SLO
    expected: np.ndarray  # (lanes, windows) expected quality (NaN: a model older than any seen)
    realised: np.ndarray  # (lanes, windows) one draw of it
    retrains: np.ndarray  # (lanes,)
    deploys: np.ndarray
    carbon_g: np.ndarray

    def block(self, index: int, size: int) -> "_Outcome":
        """The lanes of the ``index``-th rule of a batched replay."""
        lanes = slice(index * size, (index + 1) * size)
        return _Outcome(self.meet[lanes], self.expected[lanes], self.realised[lanes], self.retrains[lanes],
                        self.deploys[lanes], self.carbon_g[lanes])


class _Windows:
    """Turns the ages at each window's sample moments into expected quality and the chance to meet the SLO."""

    def __init__(self, policy: Policy, model: CostModel, lanes: _Lanes) -> None:
        self.policy, self.model, self.lanes = policy, model, lanes

    def score(self, ages: np.ndarray, window: slice | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(meet, expected, realised) per lane for the windows ``window``: ``ages`` is (lanes, samples) for
        one window, or (windows, samples) for all of them when every lane serves the same models."""
        model, forecaster, target = self.model, self.model.quality, self.policy.slo_target
        ages = np.maximum(ages, 0.0)
        shared = ages.ndim == 2 and isinstance(window, slice)  # the same ages on every lane
        unknown = (ages > model.max_age_days).any(axis=-1)
        if forecaster is None:  # thin history: the pessimistic prior by age, no window effects
            curve = np.interp(ages, model.age_grid_days, model.quality_mean).mean(axis=-1)
            meet = (np.interp(ages, model.age_grid_days, model.prior_meet).mean(axis=-1)
                    if model.prior_meet is not None else np.ones_like(curve))
            lanes = (len(self.lanes.replicate), *curve.shape) if shared else curve.shape
            expected = realised = np.broadcast_to(curve, lanes)
            meet = np.broadcast_to(meet, lanes)
        else:
            if shared:  # one curve per replicate, then spread over its lanes
                replicates = np.arange(forecaster.age_curves.shape[0])[:, None, None]
                curve = forecaster.curve(ages[None], replicates).mean(axis=-1)[self.lanes.replicate]
            else:
                curve = forecaster.curve(ages, self.lanes.replicate[:, None]).mean(axis=-1)
            expected = self.lanes.effects[:, window] + curve
            meet = 1 - np.searchsorted(forecaster.noise, target - expected, side="left") / len(forecaster.noise)
            realised = expected + self.lanes.noise[:, window]
        return (np.where(unknown, 0.0, meet), np.where(unknown, np.nan, expected),
                np.where(unknown, np.nan, realised))


def _moments(windows: int, window_days: float) -> np.ndarray:
    """(windows, samples): the evenly spaced moments (days from the start) each window is sampled at."""
    return window_days * (np.arange(windows)[:, None] + (np.arange(SAMPLES_PER_WINDOW) + 0.5) / SAMPLES_PER_WINDOW)


def _plain_cron(policy: Policy, model: CostModel, lanes: _Lanes, state: StartState, gate: float,
                fire_days: list[float], intensity: np.ndarray, windows: int) -> _Outcome:
    """Every fire retrains: the same deploy times on every lane, so the whole horizon is scored at once."""
    duration, gate_age = model.retrain_duration / DAY, model.age_for_gain(gate)
    deployed, deploys, deploy_intensity = [-state.serving_age_days], 0, 0.0
    for day, grid in zip(fire_days, intensity, strict=True):
        if day - deployed[-1] >= gate_age:
            deployed.append(day + duration)
            deploys += 1
            deploy_intensity += float(grid)
    moments = _moments(windows, policy.slo_window / DAY)
    serving = np.asarray(deployed)[np.searchsorted(deployed, moments, side="right") - 1]
    meet, expected, realised = _Windows(policy, model, lanes).score(moments - serving, slice(None))
    count = len(lanes.replicate)
    carbon = float(intensity.sum()) * model.energy_per_retrain_kwh + deploy_intensity * model.energy_per_deploy_kwh
    return _Outcome(meet, expected, realised, np.full(count, float(len(fire_days))), np.full(count, float(deploys)),
                    np.full(count, carbon))


class _Replay:
    """Gated rules on every lane: the state the gate sees, advanced event by event. Several prices of one
    rule are replayed together, one block of lanes each (``thresholds`` per lane)."""

    def __init__(self, policy: Policy, model: CostModel, lanes: _Lanes, state: StartState, rule: RuleParams,
                 gate: float, windows: int, thresholds: np.ndarray) -> None:
        self.policy, self.model, self.rule, self.lanes, self.thresholds = policy, model, rule, lanes, thresholds
        count = len(lanes.replicate)
        self.scorer = _Windows(policy, model, lanes)
        self.window_days = policy.slo_window / DAY
        self.duration_days = model.retrain_duration / DAY
        self.gate_age = model.age_for_gain(gate)
        self.max_age = min(policy.max_interval / DAY, model.max_age_days)
        self.mean_intensity = model.carbon.mean or 1.0
        self.deployed_at = np.full(count, -state.serving_age_days)
        self.retrains, self.deploys, self.carbon_g = np.zeros(count), np.zeros(count), np.zeros(count)
        self.estimate = lanes.before.copy()  # what the gate knows of the latest window's effect
        self.latest_end = -state.days_since_latest
        recent = [float(m) for m in state.recent_misses[-BUDGET_WINDOWS:]]
        self.ring = np.tile(np.asarray(budget_padding(policy.slo_compliance, len(recent)) + recent), (count, 1))
        self.missed = self.ring.sum(axis=1)
        self.sample_ages = np.zeros((count, SAMPLES_PER_WINDOW))
        self.samples = self.window = 0
        self.meet, self.expected, self.realised = (np.zeros((count, windows)) for _ in range(3))

    def fire(self, day: float, days_to_next: float, intensity: float) -> None:
        age = day - self.deployed_at
        situation = Situation(
            serving_age_days=age, fresh_age_days=-self.duration_days, latest_effect=self.estimate,
            days_since_latest=day - self.latest_end, debt=budget_debt(self.missed, self.policy.slo_compliance),
            cost_ratio=intensity / self.mean_intensity, days_to_next_fire=days_to_next, window_days=self.window_days,
            max_age_days=self.max_age, replicate=self.lanes.replicate)
        retrain = decide_now(self.rule, self.model.quality, situation, self.policy.slo_target, self.thresholds).retrain
        self.retrains += retrain
        deploy = retrain & (age >= self.gate_age)
        self.carbon_g += intensity * (retrain * self.model.energy_per_retrain_kwh
                                      + deploy * self.model.energy_per_deploy_kwh)
        self.deploys += deploy
        self.deployed_at = np.where(deploy, day + self.duration_days, self.deployed_at)

    def sample(self, day: float) -> None:
        self.sample_ages[:, self.samples] = day - self.deployed_at
        self.samples += 1

    def end_window(self, day: float) -> None:
        w = self.window
        meet, expected, realised = self.scorer.score(self.sample_ages, w)
        self.meet[:, w], self.expected[:, w], self.realised[:, w] = meet, expected, realised
        missed = (np.isnan(realised) | (realised < self.policy.slo_target)).astype(float)
        slot = w % BUDGET_WINDOWS
        self.missed += missed - self.ring[:, slot]
        self.ring[:, slot] = missed
        self.estimate = self.lanes.effects[:, w] + self.lanes.noise[:, w]
        self.latest_end = day
        self.samples = 0
        self.window += 1

    def outcome(self) -> _Outcome:
        return _Outcome(self.meet, self.expected, self.realised, self.retrains, self.deploys, self.carbon_g)


def _events(fires: list[float], windows: int, window_days: float) -> list[tuple[float, int, int]]:
    """(day, kind, index), in time order: kind 0 a fire, 1 a sample moment, 2 a window end. A fire at the
    very moment a window ends comes first: that window's evaluation is not logged yet."""
    events = [(day, 0, i) for i, day in enumerate(fires)]
    events += [(window_days * (w + (k + 0.5) / SAMPLES_PER_WINDOW), 1, w)
               for w in range(windows) for k in range(SAMPLES_PER_WINDOW)]
    events += [(window_days * (w + 1), 2, w) for w in range(windows)]
    return sorted(events)


def _quantiles(values: np.ndarray, replicate: np.ndarray) -> tuple[float, float]:
    """Mean over lanes, and the LOWER_BOUND_QUANTILE over replicates of their means."""
    means = np.bincount(replicate, weights=values) / np.bincount(replicate)
    return float(values.mean()), float(np.quantile(means, LOWER_BOUND_QUANTILE))


def simulate(expression: str, policy: Policy, model: CostModel, start: datetime, horizon: timedelta,
             gate: float = 0.0, rule: RuleParams = PLAIN_CRON, state: StartState | None = None,
             seed: int = 0) -> Forecast:
    """Forecast ``expression`` with ``rule`` and promotion gate ``gate`` over ``[start, start + horizon)``."""
    return simulate_rules(expression, policy, model, start, horizon, gate, [rule], state, seed)[0]


def simulate_rules(expression: str, policy: Policy, model: CostModel, start: datetime, horizon: timedelta,
                   gate: float, rules: list[RuleParams], state: StartState | None = None,
                   seed: int = 0) -> list[Forecast]:
    """One forecast per rule, on the same paths; the gated rules (one objective and budget gain) are
    replayed together, which costs about as much as one of them."""
    tz = schedule.zone(policy.time_zone)
    end = start + horizon
    state = state or StartState(serving_age_days=0.0)
    local_fires = schedule.fire_times(expression, tz, start, end)
    before = schedule.fire_times(expression, tz, start - policy.max_interval - DST_ALLOWANCE, start)
    fires = [f.astimezone(UTC) for f in local_fires]  # absolute time: gaps and ages across DST are real
    windows = int(horizon / policy.slo_window)
    lanes = _lanes(model, windows, seed)
    fire_days = [(f - start) / DAY for f in fires]
    intensity = model.carbon.at(fires)
    rules = [r if model.quality else PLAIN_CRON for r in rules]
    gated = [r for r in rules if r.gated]
    outcomes: dict[RuleParams, _Outcome] = {}
    if len(gated) < len(rules):
        outcomes[PLAIN_CRON] = _plain_cron(policy, model, lanes, state, gate, fire_days, intensity, windows)
    for group in _same_kind(gated):
        batch = _replay(policy, model, lanes, state, group, gate, fire_days, intensity, windows, horizon)
        outcomes.update({r: batch.block(i, len(lanes.replicate)) for i, r in enumerate(group)})
    spaced = [*before[-1:], *local_fires]
    return [_forecast(expression, policy, model, outcomes[r if r.gated else PLAIN_CRON], r, lanes, horizon, gate,
                      spaced, local_fires) for r in rules]


def _same_kind(rules: list[RuleParams]) -> list[list[RuleParams]]:
    """Gated rules grouped by what the replay shares (objective, budget gain); each group's prices differ."""
    groups: dict[tuple[str, float], list[RuleParams]] = {}
    for rule in dict.fromkeys(rules):
        groups.setdefault((rule.objective, rule.budget_gain), []).append(rule)
    return list(groups.values())


def _replay(policy: Policy, model: CostModel, lanes: _Lanes, state: StartState, rules: list[RuleParams],
            gate: float, fire_days: list[float], intensity: np.ndarray, windows: int,
            horizon: timedelta) -> _Outcome:
    size = len(lanes.replicate)
    thresholds = np.repeat([float(r.threshold or 0.0) for r in rules], size)
    replay = _Replay(policy, model, lanes.tiled(len(rules)), state, rules[0], gate, windows, thresholds)
    typical_gap = float(np.median(np.diff(fire_days))) if len(fire_days) > 1 else horizon / DAY
    for day, kind, index in _events(fire_days, windows, policy.slo_window / DAY):
        if kind == 0:
            following = fire_days[index + 1] if index + 1 < len(fire_days) else day + typical_gap
            replay.fire(day, following - day, float(intensity[index]))
        elif kind == 1:
            replay.sample(day)
        else:
            replay.end_window(day)
    return replay.outcome()


def _forecast(expression: str, policy: Policy, model: CostModel, outcome: _Outcome, rule: RuleParams,
              lanes: _Lanes, horizon: timedelta, gate: float, spaced: list[datetime],
              local_fires: list[datetime]) -> Forecast:
    days = horizon / DAY
    per_period = policy.budget_period / horizon
    meet, expected, realised = outcome.meet, outcome.expected, outcome.realised
    if meet.shape[1] == 0:
        meet = np.ones((meet.shape[0], 1))
    compliance, lower = _quantiles(meet.mean(axis=1), lanes.replicate[:len(meet)])
    energy = (outcome.retrains.mean() * model.energy_per_retrain_kwh
              + outcome.deploys.mean() * model.energy_per_deploy_kwh) * per_period
    absolute = [f.astimezone(UTC) for f in spaced]
    gaps = [b - a for a, b in itertools.pairwise(absolute)]
    per_month = outcome.retrains * 30 / days
    finite = np.isfinite(expected)
    counts = finite.sum(axis=0)
    weekly = np.where(counts > 0, np.where(finite, expected, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan)
    week = (np.arange(expected.shape[1]) * (policy.slo_window / DAY) // 7).astype(int)
    known = realised[np.isfinite(realised)]
    return Forecast(
        schedule=expression,
        retrains_per_month=float(per_month.mean()),
        energy_kwh_per_period=float(energy),
        carbon_kg_per_period=float(outcome.carbon_g.mean() / 1000 * per_period),
        compliance=compliance,
        compliance_lower=lower,
        quality_mean=float(expected[finite].mean()) if finite.any() else float("nan"),
        quality_p10=float(np.quantile(known, 0.10)) if len(known) else float("nan"),
        min_gap_hours=min(gaps) / timedelta(hours=1) if gaps else float("inf"),
        max_gap_hours=max(gaps) / timedelta(hours=1) if gaps else float("inf"),
        bound_violations=_violations(policy, local_fires, gaps),
        promotion_min_gain=gate,
        deploys_per_month=float(outcome.deploys.mean() * 30 / days),
        training_window_days=model.training_window_days,
        quality_by_week=_weekly_means(weekly, week),
        rule=rule,
        checks_per_month=len(local_fires) * 30 / days,
        retrains_per_month_range=(float(np.quantile(per_month, 0.1)), float(np.quantile(per_month, 0.9))),
        loss_per_period=float(np.where(finite, 1 - np.nan_to_num(expected), 1.0).sum(axis=1).mean() * per_period),
    )


def _weekly_means(quality: np.ndarray, week: np.ndarray) -> tuple[float, ...]:
    known = ~np.isnan(quality)
    sums = np.bincount(week[known], weights=quality[known], minlength=week.max() + 1 if len(week) else 0)
    counts = np.bincount(week[known], minlength=len(sums))
    return tuple(float(s / c) if c else float("nan") for s, c in zip(sums, counts, strict=True))
