"""`greenops track -- <command>`: measure a training command's energy with CodeCarbon and log it to MLflow.

The only module that imports CodeCarbon, and only its *offline* tracker: the online one calls
internet services. The run is created before the command starts and handed to it through
``MLFLOW_RUN_ID``, so a command that uses ``mlflow.start_run()`` logs into the same run; a command
that does not use MLflow still gets one. The command's output and exit code pass through unchanged;
greenops' own messages go to stderr, and a telemetry failure never fails the training.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

from codecarbon import OfflineEmissionsTracker
from codecarbon.input import DataSource, DataSourceException

from controller.errors import StalledError, TransientError
from controller.telemetry.mlflow_store import MlflowTelemetry

logging.getLogger("codecarbon").setLevel(logging.ERROR)

EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND = 126, 127  # the shell's conventions


@dataclass(frozen=True)
class TrackOptions:
    command: tuple[str, ...]
    policy: str
    model_version: str | None
    country_iso_code: str
    region: str | None
    tracking_mode: str
    experiment: str


@dataclass(frozen=True)
class Measurement:
    returncode: int  # negative: killed by that signal
    duration_s: float
    energy_kwh: float
    emissions_kg: float


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
        print(f"greenops track: cannot run {command[0]}: {err.strerror}", file=sys.stderr, flush=True)
        return (EXIT_NOT_FOUND if missing else EXIT_CANNOT_EXECUTE), time.perf_counter() - began
    with _signals_forwarded_to(child):
        returncode = child.wait()
    return returncode, time.perf_counter() - began


def measure(options: TrackOptions, environment: dict[str, str]) -> Measurement:
    """Run the command under CodeCarbon's offline tracker (no file output, no network)."""
    tracker = OfflineEmissionsTracker(
        country_iso_code=options.country_iso_code.upper(), region=options.region,
        tracking_mode=options.tracking_mode, save_to_file=False, allow_multiple_runs=True,
        log_level="error", project_name=options.policy)
    tracker.start()
    try:
        returncode, duration = _run(options.command, environment)
    finally:
        emissions_kg = tracker.stop() or 0.0
    energy = tracker.final_emissions_data.energy_consumed if tracker.final_emissions_data else 0.0
    return Measurement(returncode, duration, float(energy), float(emissions_kg))


def _outcome(returncode: int) -> str:
    """MLflow run status: KILLED for a signal, FAILED for a non-zero exit."""
    if returncode < 0:
        return "KILLED"
    return "FINISHED" if returncode == 0 else "FAILED"


def _warn(message: str) -> None:
    print(f"greenops track: {message}", file=sys.stderr, flush=True)


def _open_run(options: TrackOptions, telemetry: MlflowTelemetry) -> str | None:
    tags = {"greenops.energy_source": "codecarbon-offline", "greenops.country_iso_code": options.country_iso_code}
    if options.model_version:
        tags["model_version"] = options.model_version
    try:
        run_id = telemetry.start_run(options.policy, "training", datetime.now(UTC), tags, options.experiment)
        if not options.model_version:
            telemetry.set_tag(run_id, "model_version", run_id)
        return run_id
    except (StalledError, TransientError) as err:
        _warn(f"{err}; running the command without recording its energy")
        return None


def run_tracked(options: TrackOptions, telemetry: MlflowTelemetry) -> int:
    """Run the command, record energy, duration, emissions and status in MLflow; return the command's exit code."""
    run_id = _open_run(options, telemetry)
    environment = {**os.environ, "GREENOPS_POLICY": options.policy}
    if run_id is not None:
        environment |= {"MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": telemetry.raw_uri}
    result = measure(options, environment)
    exit_code = _exit_code(result.returncode)
    if run_id is None:
        return exit_code
    metrics = {"energy_kwh": result.energy_kwh, "duration_s": result.duration_s, "emissions_kg": result.emissions_kg}
    try:
        telemetry.finish_run(run_id, metrics, _outcome(result.returncode), datetime.now(UTC))
    except (StalledError, TransientError) as err:
        _warn(f"{err}; the run {run_id} keeps no energy figures")
    return exit_code
