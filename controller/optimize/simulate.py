"""Simulate a cron schedule: expand its real fire times, then predict SLO compliance, energy, carbon.

Each evaluation window is sampled at evenly spaced moments; at each, the newest model ready then
(fire time + median retrain duration) serves, and the cost model turns its age into quality and
into the chance of meeting the SLO. Averaging over the window, rather than looking at its middle
only, credits a retrain for the whole part of the window it serves: a retrain just before the
middle is not better than one at the window's start.
Each retrain's carbon is its energy times the grid intensity of the hour of week it starts in.

The promotion gate deploys a retrain only when it is expected to beat the serving model by the
gate: with quality decaying monotonically in age, that is when the serving model has reached the
age at which the expected gain clears the gate. Skipped deploys save the deploy's energy; the
serving model keeps ageing, which the compliance forecast pays for.
"""

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np

from controller import schedule
from controller.decision import Forecast
from controller.forecast.costmodel import CostModel
from controller.policy.durations import format_duration
from controller.policy.model import Policy

WARMUP = timedelta(days=35)
DST_ALLOWANCE = timedelta(hours=1)  # a daily 02:00 job is 23 h or 25 h apart when clocks change
LOWER_BOUND_QUANTILE = 0.10
SAMPLES_PER_WINDOW = 6


def _ages_days(ready: list[datetime], moments: list[datetime], fallback: datetime) -> np.ndarray:
    ready_s = np.asarray([t.timestamp() for t in ready] or [fallback.timestamp()])
    moment_s = np.asarray([t.timestamp() for t in moments])
    index = np.searchsorted(ready_s, moment_s, side="right") - 1
    last_ready = np.where(index >= 0, ready_s[np.clip(index, 0, None)], fallback.timestamp())
    return np.asarray((moment_s - last_ready) / 86400.0)


def _deployed(ready: list[datetime], gate_age_days: float) -> list[datetime]:
    """The ready times whose retrain passes the gate: the serving model was at least ``gate_age_days`` old."""
    if gate_age_days <= 0:
        return ready
    deployed: list[datetime] = []
    for moment in ready:
        if not deployed or (moment - deployed[-1]) / timedelta(days=1) >= gate_age_days:
            deployed.append(moment)
    return deployed


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


def simulate(expression: str, policy: Policy, model: CostModel, start: datetime,
             horizon: timedelta, gate: float = 0.0) -> Forecast:
    """Forecast ``expression`` with promotion gate ``gate`` over ``[start, start + horizon)``."""
    tz = schedule.zone(policy.time_zone)
    end = start + horizon
    warmup = max(WARMUP, policy.max_interval + policy.slo_window)  # the model serving at start was trained in it
    local_fires = schedule.fire_times(expression, tz, start - warmup, end)
    fires = [f.astimezone(UTC) for f in local_fires]  # absolute time: gaps and ages across DST are real
    ready = [f + model.retrain_duration for f in fires]
    deployed = _deployed(ready, model.age_for_gain(gate))
    windows = int(horizon / policy.slo_window)
    moments = [start + policy.slo_window * (i + (k + 0.5) / SAMPLES_PER_WINDOW)
               for i in range(windows) for k in range(SAMPLES_PER_WINDOW)]
    ages = _ages_days(deployed, moments, fallback=start - warmup)
    meets = np.nan_to_num(np.vstack([model.at(curve, ages) for curve in model.meet_probability]), nan=0.0)
    per_replicate = meets.mean(axis=1)
    in_horizon = [f for f in fires if f >= start]
    deploys = [r - model.retrain_duration for r in deployed if r - model.retrain_duration >= start]
    per_period = policy.budget_period / horizon
    energy = (len(in_horizon) * model.energy_per_retrain_kwh + len(deploys) * model.energy_per_deploy_kwh) * per_period
    carbon_g = (float(model.carbon.at(in_horizon).sum()) * model.energy_per_retrain_kwh
                + (float(model.carbon.at(deploys).sum()) * model.energy_per_deploy_kwh if model.energy_per_deploy_kwh
                   else 0.0))
    carbon_kg = carbon_g / 1000 * per_period
    days = horizon / timedelta(days=1)
    gaps = [b - a for a, b in itertools.pairwise(fires)]
    quality = model.at(model.quality_mean, ages)
    quality_p10 = model.at(model.quality_p10, ages)
    known = ~np.isnan(quality)
    week = (np.asarray([(m - start) / timedelta(days=1) for m in moments]) // 7).astype(int)
    return Forecast(
        schedule=expression,
        retrains_per_month=len(in_horizon) * 30 / days,
        energy_kwh_per_period=energy,
        carbon_kg_per_period=carbon_kg,
        compliance=float(per_replicate[0]),
        compliance_lower=float(np.quantile(per_replicate, LOWER_BOUND_QUANTILE)),
        quality_mean=float(quality[known].mean()) if known.any() else float("nan"),
        quality_p10=float(quality_p10[known].mean()) if known.any() else float("nan"),
        min_gap_hours=min(gaps) / timedelta(hours=1) if gaps else float("inf"),
        max_gap_hours=max(gaps) / timedelta(hours=1) if gaps else float("inf"),
        bound_violations=_violations(policy, [f for f in local_fires if f >= start], gaps),
        promotion_min_gain=gate,
        deploys_per_month=len(deploys) * 30 / days,
        training_window_days=model.training_window_days,
        quality_by_week=_weekly_means(quality, week),
    )


def _weekly_means(quality: np.ndarray, week: np.ndarray) -> tuple[float, ...]:
    known = ~np.isnan(quality)
    sums = np.bincount(week[known], weights=quality[known], minlength=week.max() + 1 if len(week) else 0)
    counts = np.bincount(week[known], minlength=len(sums))
    return tuple(float(s / c) if c else float("nan") for s, c in zip(sums, counts, strict=True))
