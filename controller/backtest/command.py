"""`greenops backtest`: wire the data, the replay, the strategies and the outputs together."""

import json
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from controller.backtest import plots, strategies
from controller.backtest.data import InputError, Stream, load_carbon, load_stream, stream_start
from controller.backtest.learners import ModelBank
from controller.backtest.online import OnlineSettings, at_noon, greenops_online
from controller.backtest.report import ALPHAS, Results, as_json, markdown
from controller.backtest.timeline import Outcome, Setup, carbon_shift
from controller.policy.durations import format_duration, parse_duration
from controller.policy.model import Objective, Policy, expand_hours, policy_from_data
from controller.policy.validate import validate_paths
from controller.state import write_atomic

UNLIMITED_KWH = 1e12
AUTO_COMPLIANCE = 0.90
ROWS_PER_WINDOW = 30
ROWS_TO_TRAIN = 1000


@dataclass(frozen=True)
class BacktestArgs:
    stream: Path
    label: str
    time_column: str | None
    rows_per_day: int | None
    start_date: date
    days: int | None
    carbon: Path | None
    carbon_time_column: str
    carbon_column: str
    carbon_constant: float
    policy: Path | None
    slo: str | None  # "auto", a number, or None (the policy's)
    compliance: float | None
    window: str | None
    train_window: str | None
    max_interval: str | None
    allowed_hours: list[str] | None
    energy_budget: float | None
    objective: str
    alpha: float | None
    learner: str
    reconcile_every: str | None
    seed: int
    trials: int
    check_search_every: int
    output_dir: Path
    progress: bool


def _days(text: str, flag: str) -> int:
    try:
        duration = parse_duration(text)
    except ValueError as err:
        raise InputError(f"{flag} {text!r}: {err}") from err
    if duration.total_seconds() % 86400 or duration.days < 1:
        raise InputError(f"{flag} {text!r}: the backtest works in whole days; use e.g. 1d, 7d, 30d")
    return duration.days


def _policy_file(args: BacktestArgs) -> Policy | None:
    """The --policy, validated like `greenops validate` does; its window must be whole days."""
    if args.policy is None:
        return None
    result = validate_paths([args.policy])
    if not result.ok or not result.policies:
        raise InputError("\n".join(p.render() for p in result.problems) or f"{args.policy}: no policy found")
    policy = result.policies[0]
    if policy.slo_window % timedelta(days=1) and not args.window:
        raise InputError(f"{args.policy}: spec.slo.window is {format_duration(policy.slo_window)}; the backtest "
                         "works in whole days, so give --window (e.g. 1d) to replay it")
    return policy


def _policy(args: BacktestArgs, from_file: Policy | None, frame: dict[str, int]) -> Policy:
    """The policy greenops is replayed with: the file's or one built from flags, with the replay's frame."""
    if from_file is None:
        doc = {"apiVersion": "greenops.dev/v1alpha1", "kind": "RetrainingPolicy", "metadata": {"name": "backtest"},
               "spec": {"model": {"mlflowModel": "backtest"},
                        "slo": {"metric": "accuracy", "target": 0.5, "compliance": AUTO_COMPLIANCE},
                        "budget": {"energyKWh": UNLIMITED_KWH, "period": "30d"},
                        "schedule": {"current": "0 12 * * *", "minInterval": "1d", "maxInterval": "30d"},
                        "job": {"image": "backtest", "command": ["train"]}}}
        from_file = policy_from_data(doc, Path("<backtest flags>"))
    hours = _hours(args.allowed_hours) if args.allowed_hours else from_file.allowed_hours
    # The replay runs the gate itself: no CronJob has to wrap a command, so spec.gate.enabled alone decides.
    job = replace(from_file.job, command=from_file.job.command or ("train",))
    return replace(from_file, job=job, slo_window=timedelta(days=frame["window"]), time_zone="Etc/UTC",
                   max_interval=timedelta(days=frame["max_interval"]), allowed_hours=hours,
                   min_interval=max(from_file.min_interval, timedelta(days=1)))  # the replay's grain is a day


def _hours(items: list[str]) -> frozenset[int]:
    pattern = re.compile(r"^([01]?\d|2[0-3])(-([01]?\d|2[0-3]))?$")
    bad = [item for item in items if not pattern.match(item)]
    if bad:
        raise InputError(f"--allowed-hours {bad[0]!r}: give hours 0-23 or ranges such as 20-23 (22-3 wraps)")
    return expand_hours([int(i) if i.isdigit() else i for i in items])


def _frame(args: BacktestArgs, stream: Stream, policy: Policy | None) -> dict[str, int]:
    """Window, training window, maxInterval and reconcile period in days: flags, else the policy, else rules."""
    rows_per_day = len(stream.labels) / stream.days
    window = (_days(args.window, "--window") if args.window else policy.slo_window.days if policy
              else max(1, math.ceil(ROWS_PER_WINDOW / rows_per_day)))
    train = (_days(args.train_window, "--train-window") if args.train_window
             else max(28, math.ceil(ROWS_TO_TRAIN / rows_per_day)))
    max_interval = (_days(args.max_interval, "--max-interval") if args.max_interval
                    else max(1, policy.max_interval.days) if policy else max(30, 6 * window))
    reconcile = _days(args.reconcile_every, "--reconcile-every") if args.reconcile_every else max(7, 3 * window)
    if max_interval < window:
        raise InputError(f"maxInterval {max_interval}d is shorter than the evaluation window {window}d; every "
                         "window needs a model that may serve all of it: give a longer --max-interval")
    if stream.days < train + 4 * window:
        raise InputError(f"{args.stream}: {stream.days} days of rows; the backtest needs the training window "
                         f"({train} d) plus at least 4 evaluation windows ({window} d each)")
    return {"window": window, "train": train, "max_interval": max_interval, "reconcile": reconcile}


def _progress(enabled: bool) -> Any:
    def wrap(items: Iterable[int], label: str) -> Iterator[int]:
        yield from tqdm(items, desc=label, unit="step", disable=not enabled or None, file=sys.stderr, leave=False)
    return wrap


def _carbon(args: BacktestArgs, stream: Stream) -> tuple[np.ndarray, str]:
    if args.carbon is None:
        return np.full(24, args.carbon_constant), f"constant {args.carbon_constant:g} gCO2e/kWh"
    hourly, first = load_carbon(args.carbon, args.carbon_time_column, args.carbon_column)
    offset = int((stream_start(stream) - first).total_seconds() // 3600) % len(hourly)
    aligned = np.roll(hourly, -offset)
    return aligned, (f"{args.carbon.name} column {args.carbon_column}, hourly, aligned on the stream's first day "
                     f"({stream_start(stream).date()}) and repeated when the stream is longer")


def run_backtest(args: BacktestArgs) -> Results:
    began = time.perf_counter()
    stream = load_stream(args.stream, args.label, args.time_column, args.rows_per_day, args.start_date, args.days)
    from_file = _policy_file(args)
    frame = _frame(args, stream, from_file)
    carbon, carbon_text = _carbon(args, stream)
    lookback = max(90, 30 * frame["window"])
    bank = ModelBank(stream, args.learner, frame["train"], max(frame["max_interval"] + frame["window"], lookback),
                     args.seed)
    policy = _policy(args, from_file, frame)
    setup = Setup(stream, bank, frame["train"], frame["window"], frame["max_interval"], 0.0, 0.0, carbon)
    progress = _progress(args.progress)
    for day in progress(range(setup.first_day, setup.last_day), "training models (daily)"):
        bank[day]
    daily_quality = strategies.daily_window_quality(setup)
    target, rule = _target(args, policy, daily_quality)
    compliance = args.compliance if args.compliance is not None else (
        AUTO_COMPLIANCE if args.slo == "auto" or args.policy is None else policy.slo_compliance)
    setup = replace(setup, target=target, compliance=compliance, allowed_hours=policy.allowed_hours)
    policy = replace(policy, slo_target=target, slo_compliance=compliance,
                     energy_budget_kwh=args.energy_budget or policy.energy_budget_kwh,
                     telemetry=replace(policy.telemetry, carbon_constant=args.carbon_constant),
                     objective=_objective(args, policy))
    online = OnlineSettings(frame["reconcile"], lookback, args.seed, args.trials, args.check_search_every)
    greenops = greenops_online(setup, policy, online, progress)
    greenops = replace(greenops, extra={**greenops.extra, "carbon_shift": carbon_shift(setup, greenops)})
    outcomes = [greenops, at_noon(setup, greenops), *_baselines(setup)]
    alphas = sorted({*ALPHAS, *([policy.objective.alpha] if policy.objective.kind == "cost" else [])})
    cara = {alpha: strategies.cara(setup, alpha) for alpha in alphas}
    reference = float(np.mean([bank[d].energy_kwh for d in range(setup.first_day, setup.last_day)]))
    oracle_costs = {alpha: strategies.oracle_cost(setup, alpha, reference) for alpha in ALPHAS}
    described = {**_described(args, setup, frame), "target": target, "slo_rule": rule, "compliance": compliance,
                 "carbon": carbon_text, "objective": policy.objective.kind, "alpha": policy.objective.alpha}
    return Results(described, outcomes, reference, oracle_costs, cara, time.perf_counter() - began)


def _objective(args: BacktestArgs, policy: Policy) -> Objective:
    if args.objective == "cost":
        if args.alpha is None:
            raise InputError("--objective cost needs --alpha (what one retrain is worth in windows of lost quality)")
        return Objective("cost", args.alpha)
    return policy.objective if args.policy and args.objective is None else Objective()


def _baselines(setup: Setup) -> list[Outcome]:
    return [strategies.fixed(setup, 1, "daily"), strategies.fixed(setup, 7, "weekly"),
            strategies.fixed(setup, 30, "monthly"), strategies.best_fixed_in_hindsight(setup),
            strategies.accuracy_threshold(setup), strategies.adwin(setup), strategies.oracle(setup)]


def _described(args: BacktestArgs, setup: Setup, frame: dict[str, int]) -> dict[str, Any]:
    """What was replayed, for the report header and the JSON."""
    stream = setup.stream
    return {"stream": stream.name, "rows": len(stream.labels), "days": stream.days, "windows": setup.windows,
            "window_days": setup.window_days, "first_day": setup.first_day, "train_days": frame["train"],
            "max_interval_days": setup.max_interval_days, "reconcile_days": frame["reconcile"],
            "learner": args.learner, "seed": args.seed, "trials": args.trials,
            "watts_per_cpu": setup.bank.watts_per_cpu, "features": list(stream.feature_names),
            "dropped_columns": list(stream.dropped_columns)}


def _target(args: BacktestArgs, policy: Policy, daily_quality: np.ndarray) -> tuple[float, str]:
    if args.slo == "auto" or (args.slo is None and args.policy is None):
        # "lower": the target is an observed window quality, so daily retraining meets it in >= 90% of windows
        return (float(np.nanquantile(daily_quality, 0.10, method="lower")),
                "auto: p10 of daily retraining's per-window quality")
    if args.slo is not None:
        return float(args.slo), "--slo"
    return policy.slo_target, f"from {args.policy}"


def check_output_dir(output_dir: Path) -> None:
    """Fail before a long replay, not after it, when the results cannot be written."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--output-dir {output_dir}: cannot create it ({err.strerror})") from err
    if not os.access(output_dir, os.W_OK):
        raise InputError(f"--output-dir {output_dir}: not writable; choose another folder")


def write_outputs(results: Results, output_dir: Path) -> tuple[list[Path], str]:
    """results.md, results.json and two PNG plots, each written whole or not at all; and the Markdown."""
    output_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(results)
    write_atomic(output_dir / "results.md", text)
    write_atomic(output_dir / "results.json", json.dumps(as_json(results), indent=1) + "\n")
    pictures = {output_dir / "quality.png": plots.quality_over_time,
                output_dir / "energy_vs_compliance.png": plots.energy_vs_compliance}
    for path, draw in pictures.items():
        temporary = path.with_name(f".{path.name}.tmp.png")
        draw(results, temporary)
        os.replace(temporary, path)
    return [output_dir / "results.md", output_dir / "results.json", *pictures], text
