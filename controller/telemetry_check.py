"""`greenops telemetry check`: what the controller sees of each policy's signals, and whether it can decide.

Reads every signal exactly as a reconcile does (same readers, same queries) but keeps going after
a failure, so one run shows every broken query of a policy. The final verdict fits the same cost
model a reconcile would, so "enough to decide" here means a reconcile will not stall on data.
"""

import itertools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from controller.decision import ESTIMATE_NOTE
from controller.errors import StalledError, TransientError
from controller.forecast.costmodel import MIN_EVALUATIONS, MIN_TRAININGS
from controller.forecast.windows import fit_window_models
from controller.gate.records import summarise
from controller.policy.durations import format_duration
from controller.policy.model import Policy
from controller.telemetry.assemble import (
    Reading,
    Sources,
    energy_is_estimated,
    gate_records,
    history_from,
    read_carbon,
    read_evaluations,
    read_trainings,
    stale_reason,
)
from controller.telemetry.history import CarbonSamples, Evaluation, TrainingRun

T = TypeVar("T")
log = logging.getLogger("greenops.telemetry_check")


@dataclass(frozen=True)
class SignalCheck:
    """One signal of one policy as the controller sees it."""

    signal: str
    source: str
    query: str
    status: str  # ok | too-few | stale | stalled (the query must be fixed) | transient (server down)
    message: str
    series: int = 0
    series_units: str = "series"
    points: int = 0
    units: str = "samples"
    first: datetime | None = None
    last: datetime | None = None
    missing_windows: int | None = None  # expected samples absent between first and last
    largest_gap: timedelta | None = None
    last_age: timedelta | None = None
    estimated: bool = False  # energy from the CPU/memory estimate, not measured


@dataclass(frozen=True)
class PolicyCheck:
    policy: str
    location: str
    signals: tuple[SignalCheck, ...]
    enough: bool
    verdict: str
    error: bool = False  # a bug in greenops, not a telemetry problem
    gate: str | None = None  # what `greenops gate` recorded over the lookback


def _gaps(stamps: Sequence[float], step: timedelta | None) -> tuple[int | None, timedelta | None]:
    """(expected samples missing, largest spacing) over the distinct sample times."""
    distinct = sorted(set(stamps))
    deltas = [b - a for a, b in itertools.pairwise(distinct)]
    if not deltas:
        return (0 if step else None), None
    largest = timedelta(seconds=max(deltas))
    if step is None:
        return None, largest
    size = step.total_seconds()
    return sum(max(0, round(delta / size) - 1) for delta in deltas), largest


def _signal(reading: Reading[Any], now: datetime, limit: timedelta | None, status: str, message: str,
            estimated: bool = False) -> SignalCheck:
    missing, largest = _gaps(reading.stamps, reading.step)
    first = reading.stamps[0] if reading.stamps else None
    newest = reading.newest
    stale = stale_reason(reading, now, limit) if limit else None
    return SignalCheck(
        reading.signal, reading.source, reading.query, "stale" if stale else status, stale or message,
        reading.series, reading.series_units, len(reading.stamps), reading.units,
        datetime.fromtimestamp(first, tz=UTC) if first is not None else None, newest, missing, largest,
        now - newest if newest else None, estimated)


def _failed(signal: str, err: Exception) -> SignalCheck:
    status = "transient" if isinstance(err, TransientError) else "stalled"
    return SignalCheck(signal, "", "", status, str(err))


def _attempt(signal: str, read: Callable[[], Reading[T]]) -> Reading[T] | SignalCheck:
    try:
        return read()
    except (StalledError, TransientError) as err:
        return _failed(signal, err)


def _energy_check(reading: Reading[tuple[TrainingRun, ...]], policy: Policy, now: datetime) -> SignalCheck:
    """No staleness limit: retrains may legitimately be weeks apart."""
    runs = reading.value
    priced = sum(1 for run in runs if run.energy_kwh is not None)
    estimated = energy_is_estimated(policy)
    counted = f"{len(runs)} retrains, {priced} with energy" + (f" ({ESTIMATE_NOTE})" if estimated else "")
    if not runs:
        return _signal(reading, now, None, "stalled", f"nothing matched: no {reading.query} in the last "
                       f"{format_duration(policy.telemetry.lookback)} of {reading.source}")
    if priced < MIN_TRAININGS:
        return _signal(reading, now, None, "too-few", f"{counted}; need {MIN_TRAININGS} with energy to decide",
                       estimated)
    return _signal(reading, now, None, "ok", counted, estimated)


def _quality_check(reading: Reading[tuple[Evaluation, ...]], policy: Policy, now: datetime,
                   retrains_known: bool) -> SignalCheck:
    limit = policy.telemetry.max_staleness
    if not reading.stamps:
        return _signal(reading, now, None, "stalled", f"nothing matched: no {reading.query} in the last "
                       f"{format_duration(policy.telemetry.lookback)} of {reading.source}")
    evaluations = len(reading.value)
    unattributed = len(reading.stamps) - evaluations
    counted = f"{evaluations} evaluations" + (f" ({unattributed} values not attributable to a model version)"
                                              if unattributed else "")
    # Without a version label, values are attributed to the model serving at the time, which needs the
    # retrains: when the energy signal failed, the values are fine and the energy signal is the problem.
    if unattributed and not retrains_known:
        return _signal(reading, now, limit, "ok", f"{len(reading.stamps)} values, attributed to model versions "
                       "once the energy signal finds the retrains")
    if evaluations < MIN_EVALUATIONS:
        return _signal(reading, now, limit, "too-few", f"{counted}; need {MIN_EVALUATIONS} to decide")
    return _signal(reading, now, limit, "ok", counted)


WHY_NOT = {"stalled": "the query must be fixed", "transient": "the server did not answer; retry",
           "stale": "the newest sample is too old", "too-few": "too few samples yet"}


def _carbon_check(reading: Reading[CarbonSamples | None], policy: Policy, now: datetime) -> SignalCheck:
    if reading.value is None:
        return SignalCheck(reading.signal, reading.source, reading.query, "ok", "used for every hour")
    values = [v for _, v in reading.value]
    return _signal(reading, now, policy.telemetry.max_staleness, "ok",
                   f"mean {sum(values) / len(values):.0f} gCO2e/kWh, {min(values):.0f}-{max(values):.0f} by hour")


def _verdict(policy: Policy, trainings: Reading[tuple[TrainingRun, ...]],
             evaluations: Reading[tuple[Evaluation, ...]], carbon: Reading[CarbonSamples | None], now: datetime,
             seed: int) -> tuple[bool, str]:
    """Fit the cost model a reconcile would fit: its refusal is the reason, its size the evidence."""
    try:
        history = history_from(policy, trainings, evaluations, carbon.value, now)
        windows = fit_window_models(history, policy, seed)
    except StalledError as err:
        return False, f"not enough to decide: {err}"
    model = windows.models[0]
    note = f"; {windows.note}" if windows.note else ""
    return True, (f"enough to decide: {model.trainings} training runs, {model.evaluations} evaluations covering "
                  f"model ages up to {model.max_age_days:.1f} days{note}")


def check_policy(policy: Policy, sources: Sources, now: datetime, seed: int = 42) -> PolicyCheck:
    """Read each signal as a reconcile would; report what was found and whether a decision is possible."""
    start = now - policy.telemetry.lookback
    trainings = _attempt("energy", lambda: read_trainings(policy, sources, start, now))
    runs = trainings.value if isinstance(trainings, Reading) else ()
    evaluations = _attempt("quality", lambda: read_evaluations(policy, sources, runs, start, now))
    carbon = _attempt("carbon intensity", lambda: read_carbon(policy, sources, start, now))
    signals = (
        evaluations if isinstance(evaluations, SignalCheck)
        else _quality_check(evaluations, policy, now, isinstance(trainings, Reading)),
        trainings if isinstance(trainings, SignalCheck) else _energy_check(trainings, policy, now),
        carbon if isinstance(carbon, SignalCheck) else _carbon_check(carbon, policy, now),
    )
    failing = [f"{s.signal}: {WHY_NOT[s.status]}" for s in signals if s.status != "ok"]
    if (not failing and isinstance(trainings, Reading) and isinstance(evaluations, Reading)
            and isinstance(carbon, Reading)):
        enough, verdict = _verdict(policy, trainings, evaluations, carbon, now, seed)
    else:
        enough, verdict = False, f"not enough to decide ({'; '.join(failing)})"
    return PolicyCheck(policy.name, f"{policy.source_file}:{policy.source_line}", signals, enough, verdict,
                       gate=summarise(gate_records(policy, sources, start, now)))


def check_policies(policies: Sequence[Policy], sources: Sources, now: datetime) -> list[PolicyCheck]:
    """Every policy, in name order; a bug while checking one is reported and the others go on."""
    checks = []
    for policy in sorted(policies, key=lambda p: p.name):
        try:
            checks.append(check_policy(policy, sources, now))
        except Exception as err:
            log.exception("internal error", extra={"policy": policy.name})
            checks.append(PolicyCheck(policy.name, f"{policy.source_file}:{policy.source_line}", (), False,
                                      f"internal error: {type(err).__name__}: {err}; please report it "
                                      "(GREENOPS_DEBUG=1 prints the traceback)", error=True))
    return checks


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _figures(check: SignalCheck) -> str:
    parts = [f"{check.series} {check.series_units}"] if check.series_units else []
    parts += [f"{check.points} {check.units}", f"{_when(check.first)} .. {_when(check.last)} UTC"]
    if check.missing_windows is not None:
        parts.append(f"{check.missing_windows} missing")
    if check.largest_gap is not None:
        parts.append(f"largest gap {format_duration(check.largest_gap)}")
    if check.last_age is not None:
        parts.append(f"newest {format_duration(check.last_age)} old")
    return ", ".join(parts)


def render_text(checks: Sequence[PolicyCheck]) -> str:
    """Two lines per signal (where and what; figures and verdict), one failure line, a verdict per policy."""
    lines: list[str] = []
    for check in checks:
        lines.append(f"{check.policy} ({check.location})")
        for signal in check.signals:
            label = f"  {signal.signal:<17}"
            if not signal.source:
                lines.append(f"{label}{signal.status.upper()}: {signal.message}")
                continue
            where = f"{label}{signal.source}: {signal.query}"
            if not signal.points:
                lines.append(f"{where}: {signal.status}: {signal.message}")
                continue
            lines.append(where)
            lines.append(f"  {'':<17}{_figures(signal)}: {signal.status}: {signal.message}")
        if check.gate:
            lines.append(f"  {'gate':<17}{check.gate}")
        lines.append(f"  => {check.verdict}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def render_json(checks: Sequence[PolicyCheck]) -> str:
    """Times as ISO 8601, durations in seconds."""
    def signal(check: SignalCheck) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(check).items()}
    return json.dumps([{"policy": c.policy, "location": c.location, "enough": c.enough, "verdict": c.verdict,
                        "gate": c.gate, "signals": [signal(s) for s in c.signals]} for c in checks], indent=2)
