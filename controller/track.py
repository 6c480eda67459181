"""`greenops track -- <command>`: measure a training command's energy with CodeCarbon and log it to MLflow.

The only module that imports CodeCarbon, and only its *offline* tracker: the online one calls
internet services. Runs the command creates with ``mlflow.start_run()`` carry the greenops tags
through MLflow's ``MLFLOW_RUN_CONTEXT``, in whatever experiment the command picks; afterwards the
first of them gets the energy figures (or a run is created if the command made none). The command's
output and exit code pass through unchanged; greenops' own messages go to stderr, and a telemetry
failure never fails the training.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Literal

from codecarbon import OfflineEmissionsTracker
from codecarbon.input import DataSource, DataSourceException

from controller.errors import StalledError, TransientError
from controller.telemetry.mlflow_store import MlflowTelemetry, TaggedRun

logging.getLogger("codecarbon").setLevel(logging.ERROR)

EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND = 126, 127  # the shell's conventions
TRACK_TAG = "greenops.track_id"  # marks the runs one `greenops track` invocation's command created
KIND_TAG = "greenops.kind"


@dataclass(frozen=True)
class TrackOptions:
    command: tuple[str, ...]
    policy: str
    model_version: str | None
    country_iso_code: str
    region: str | None
    tracking_mode: Literal["machine", "process"]
    experiment: str


@dataclass(frozen=True)
class Measurement:
    returncode: int  # negative: killed by that signal
    duration_s: float
    energy_kwh: float | None  # None: CodeCarbon could not measure
    emissions_kg: float | None


def location_problem(country_iso_code: str, region: str | None) -> str | None:
    """Why CodeCarbon cannot price this location, or None. CodeCarbon itself only logs and guesses."""
    data = DataSource()  # type: ignore[no-untyped-call]
    countries = data.get_global_energy_mix_data()
    if country_iso_code.upper() not in countries:
        return (f"unknown country ISO code {country_iso_code!r}; use an ISO 3166 alpha-3 code such as USA, FRA, "
                "DEU or GBR")
    if region is None:
        return None
    try:
        regions = data.get_country_emissions_data(country_iso_code.lower())
    except (DataSourceException, OSError):
        return f"CodeCarbon has no regional data for {country_iso_code.upper()}; leave out --region"
    names = sorted(name for name in regions if not name.startswith("_"))  # "_source", "_unit" are metadata
    if region.lower() not in names:
        known = ", ".join(names[:8])
        return f"unknown region {region!r} of {country_iso_code.upper()}; known regions include {known}, ..."
    return None


def _exit_code(returncode: int) -> int:
    """A command killed by signal N exits 128+N, as a shell reports it."""
    return 128 - returncode if returncode < 0 else returncode


@contextmanager
def _signals_forwarded_to(child: subprocess.Popen[bytes]) -> Iterator[None]:
    """SIGTERM (what Kubernetes sends to the container's first process) goes on to the command.

    SIGINT is ignored here: a terminal already delivers Ctrl-C to the command, which decides.
    """
    def forward(number: int, _frame: FrameType | None) -> None:
        child.send_signal(number)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _run(command: tuple[str, ...], environment: dict[str, str]) -> tuple[int, float]:
    """(return code, negative for a signal as Popen reports it; wall seconds)."""
    began = time.perf_counter()
    try:
        child = subprocess.Popen(list(command), env=environment)
    except OSError as err:
        missing = isinstance(err, FileNotFoundError)
        _warn(f"cannot run {command[0]}: {err.strerror}")
        return (EXIT_NOT_FOUND if missing else EXIT_CANNOT_EXECUTE), time.perf_counter() - began
    with _signals_forwarded_to(child):
        returncode = child.wait()
    return returncode, time.perf_counter() - began


def measure(options: TrackOptions, environment: dict[str, str]) -> Measurement:
    """Run the command under CodeCarbon's offline tracker (no file output, no network).

    CodeCarbon hides most of its own failures; any that escape are reported and the command runs
    regardless, recorded without energy rather than with a made-up zero.
    """
    tracker = OfflineEmissionsTracker(
        country_iso_code=options.country_iso_code.upper(), region=options.region,
        tracking_mode=options.tracking_mode, allow_multiple_runs=True, log_level="error", project_name=options.policy,
        output_methods=[])  # explicit, so no .codecarbon.config can turn on its API output (network) or a CSV
    try:
        tracker.start()
    except Exception as err:  # a measuring library must never stop the training
        _warn(f"CodeCarbon could not start ({type(err).__name__}: {err}); running without energy measurement")
    try:
        returncode, duration = _run(options.command, environment)
    finally:
        try:
            emissions_kg = tracker.stop()
        except Exception as err:
            emissions_kg = None
            _warn(f"CodeCarbon could not measure ({type(err).__name__}: {err})")
    data = getattr(tracker, "final_emissions_data", None)
    energy = float(data.energy_consumed) if data is not None else None
    emissions = float(emissions_kg) if emissions_kg is not None and energy is not None else None
    return Measurement(returncode, duration, energy, emissions)


def _outcome(returncode: int) -> str:
    """MLflow run status: KILLED for a signal, FAILED for a non-zero exit."""
    if returncode < 0:
        return "KILLED"
    return "FINISHED" if returncode == 0 else "FAILED"


def _warn(message: str) -> None:
    print(f"greenops track: {message}", file=sys.stderr, flush=True)


def _environment(options: TrackOptions, telemetry: MlflowTelemetry, track_id: str) -> dict[str, str]:
    """The command's environment: same store, greenops tags on every run it starts, a default experiment."""
    try:
        context = dict(json.loads(os.environ.get("MLFLOW_RUN_CONTEXT") or "{}"))
    except (ValueError, TypeError):
        _warn("ignoring MLFLOW_RUN_CONTEXT: it is not a JSON object of tags")
        context = {}
    context |= {"greenops.policy": options.policy, KIND_TAG: "training", TRACK_TAG: track_id}
    if options.model_version:
        context["model_version"] = options.model_version
    environment = {**os.environ, "GREENOPS_POLICY": options.policy, "MLFLOW_TRACKING_URI": telemetry.raw_uri,
                   "MLFLOW_RUN_CONTEXT": json.dumps(context)}
    environment.setdefault("MLFLOW_EXPERIMENT_NAME", options.experiment)
    return environment


def _training_run(options: TrackOptions, telemetry: MlflowTelemetry, runs: list[TaggedRun],
                  started: datetime) -> str:
    """The run that stands for this retrain: the first top-level run the command made, else a new one.

    The command's other runs (nested, or a second top-level one) lose the training tag, so one
    retrain counts once.
    """
    top_level = [run for run in runs if run.parent_run_id is None]
    if top_level:
        chosen = top_level[0].run_id
    else:
        chosen = telemetry.start_run(options.policy, "training", started, {}, options.experiment)
    for run in runs:
        if run.run_id != chosen:
            telemetry.delete_tag(run.run_id, KIND_TAG)
    return chosen


def _record(options: TrackOptions, telemetry: MlflowTelemetry, track_id: str, started: datetime,
            result: Measurement) -> None:
    runs = telemetry.runs_tagged(TRACK_TAG, track_id)
    run_id = _training_run(options, telemetry, runs, started)
    existing = next((run.tags for run in runs if run.run_id == run_id), {})
    tags = {"greenops.country_iso_code": options.country_iso_code.upper(),
            "model_version": options.model_version or existing.get("model_version") or run_id}
    metrics = {"duration_s": result.duration_s}
    if result.energy_kwh is None:
        tags["greenops.energy_error"] = "CodeCarbon could not measure this run; see the job's log"
    else:
        tags["greenops.energy_source"] = "codecarbon-offline"
        metrics["energy_kwh"] = result.energy_kwh
        if result.emissions_kg is not None:
            metrics["emissions_kg"] = result.emissions_kg
    telemetry.set_tags(run_id, tags)
    telemetry.finish_run(run_id, metrics, _outcome(result.returncode), datetime.now(UTC))


def run_tracked(options: TrackOptions, telemetry: MlflowTelemetry) -> int:
    """Run the command, record energy, duration, emissions and status in MLflow; return the command's exit code."""
    track_id = uuid.uuid4().hex
    started = datetime.now(UTC)
    result = measure(options, _environment(options, telemetry, track_id))
    try:
        _record(options, telemetry, track_id, started, result)
    except (StalledError, TransientError) as err:
        _warn(f"{err}; this run's energy is not recorded")
    return _exit_code(result.returncode)
