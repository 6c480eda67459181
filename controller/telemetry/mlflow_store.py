"""MLflow as a telemetry source (and sink, for the demo and `greenops track`).

The only module that imports MLflow. Contract (DESIGN.md §6):
- training runs: tags ``greenops.policy=<name>``, ``greenops.kind=training``, ``model_version``;
  metrics ``energy_kwh`` (name configurable), ``duration_s`` and the SLO metric on validation data;
  the run's end time is when the model became available; optional metrics ``deploy_energy_kwh`` (the
  energy of deploying that version, logged when it was promoted) and ``training_window_days`` (how much
  data it learnt from, needed for greenops to choose the training window);
- evaluation runs: tags ``greenops.policy``, ``greenops.kind=evaluation``, ``model_version``; the SLO
  metric's history, one point per evaluation window, timestamped at the window's end; optionally a
  ``drift_score`` history with the same timestamps (a data-drift statistic of each window);
- decision runs, written by `greenops gate`: tags ``greenops.policy``, ``greenops.kind=decision``,
  ``greenops.decision`` (retrain or skip), ``greenops.decided_by`` (rule, maxInterval, cron, fallback) and
  ``greenops.reason``; metrics ``serving_age_days``, ``value``, ``price`` and ``budget_debt`` when known.
"""

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.errors import StalledError, TransientError
from controller.redact import redact, safe_url
from controller.telemetry.history import Evaluation, GateRecord, History, TrainingRun

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# Bounded waits for a down server (MLflow's defaults retry for minutes); users may override both.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # each retry; the final error says it all

from mlflow.entities import Metric, RunStatus, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

PAGE_SIZE = 1000
DEFAULT_EXPERIMENT = "greenops"
DEPLOY_ENERGY_METRIC = "deploy_energy_kwh"
TRAINING_WINDOW_METRIC = "training_window_days"
DRIFT_METRIC = "drift_score"


def default_tracking_uri(state_dir: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a sqlite store inside the state directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(state_dir / 'mlflow.db').resolve()}"


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _moment(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


SQLITE_PREFIX = "sqlite:///"


MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value


@dataclass(frozen=True)
class TaggedRun:
    run_id: str
    started: datetime
    parent_run_id: str | None
    tags: dict[str, str]


class MlflowTelemetry:
    """Reads a policy's history from an MLflow tracking store, paging through large ones."""

    def __init__(self, tracking_uri: str, create: bool = False) -> None:
        """``create`` allows a missing sqlite store to be created (for writers such as the demo)."""
        self._uri = tracking_uri
        self.tracking_uri = safe_url(tracking_uri)  # for messages: never the credentials
        self._create = create
        self._cached_client: MlflowClient | None = None

    @property
    def _client(self) -> MlflowClient:
        """Built on first use: MLflow creates a missing sqlite file (and folders) as soon as it connects."""
        if self._cached_client is None:
            if self._uri.startswith(SQLITE_PREFIX) and not self._create:
                path = Path(self._uri.removeprefix(SQLITE_PREFIX))
                if not path.is_file():
                    raise StalledError(f"MLflow store {path} does not exist; pass --mlflow-uri or set "
                                       "MLFLOW_TRACKING_URI to where the model's runs are logged")
            try:
                self._cached_client = MlflowClient(tracking_uri=self._uri)
            except (MlflowException, ValueError, OSError) as err:  # unsupported scheme, malformed URI, bad path
                message = redact(self._uri, str(getattr(err, "message", err)))
                raise StalledError(f"cannot open the MLflow store {self.tracking_uri}: {message}; pass --mlflow-uri "
                                   "or set MLFLOW_TRACKING_URI to a tracking server URL or a sqlite:/// path") from err
        return self._cached_client

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except MlflowException as err:
            status = err.get_http_status_code()  # type: ignore[no-untyped-call]
            if status in (401, 403):
                raise StalledError(f"MLflow at {self.tracking_uri} refused to {what} (HTTP {status}): set "
                                   "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, "
                                   "to credentials allowed to do that") from err
            raise TransientError(f"MLflow at {self.tracking_uri} failed to {what}: "
                                 f"{redact(self._uri, str(err.message))}") from err
        except OSError as err:
            raise TransientError(f"MLflow at {self.tracking_uri} is unreachable "
                                 f"({redact(self._uri, str(err))}); retry later") from err

    def _experiment_ids(self) -> list[str]:
        ids: list[str] = []
        token = None
        while True:
            page = self._call("list experiments", self._client.search_experiments,
                              view_type=ViewType.ACTIVE_ONLY, max_results=PAGE_SIZE, page_token=token)
            ids.extend(e.experiment_id for e in page)
            token = page.token
            if not token:
                return ids

    def _runs(self, policy: str, kind: str, *conditions: str) -> Iterator[Any]:
        """Runs of ``policy`` of ``kind`` matching every extra filter ``condition``, page by page."""
        yield from self._search(f"tags.`greenops.policy` = '{policy}'", f"tags.`greenops.kind` = '{kind}'",
                                *conditions)

    def _search(self, *conditions: str) -> Iterator[Any]:
        """Active runs of every active experiment matching all ``conditions``, page by page."""
        experiments = self._experiment_ids()
        if not experiments:
            return
        query = " AND ".join(conditions)
        token = None
        while True:
            page = self._call("search runs", self._client.search_runs, experiments, query,
                              max_results=PAGE_SIZE, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def trainings(self, policy: str, metric: str, energy_metric: str, since: datetime | None = None,
                  until: datetime | None = None) -> tuple[TrainingRun, ...]:
        """Training runs of ``policy`` started at or after ``since`` and finished by ``until``, oldest first."""
        conditions = [f"attributes.start_time >= {_millis(since)}"] if since else []
        if until:
            conditions.append(f"attributes.end_time <= {_millis(until)}")
        runs = (run for run in self._runs(policy, "training", *conditions)
                if run.info.status == "FINISHED" and run.info.end_time)
        return tuple(sorted((_training(run, metric, energy_metric) for run in runs), key=lambda t: t.finished_at))

    def _evaluation_runs(self, policy: str, since: datetime | None, until: datetime | None) -> Iterator[Any]:
        """Evaluation runs that may hold points in ``[since, until]``: ended since then, or still running."""
        before = [f"attributes.start_time <= {_millis(until)}"] if until else []
        if since is None:
            yield from self._runs(policy, "evaluation", *before)
            return
        seen: set[str] = set()
        for conditions in ([f"attributes.end_time >= {_millis(since)}", *before],
                           ["attributes.status = 'RUNNING'", *before]):
            for run in self._runs(policy, "evaluation", *conditions):
                if run.info.run_id not in seen:
                    seen.add(run.info.run_id)
                    yield run

    def evaluations(self, policy: str, metric: str, since: datetime | None = None,
                    until: datetime | None = None) -> tuple[Evaluation, ...]:
        """Every evaluation point of ``policy``'s model versions in ``[since, until]``, oldest first."""
        evaluations: list[Evaluation] = []
        low, high = _millis(since) if since else None, _millis(until) if until else None
        for run in self._evaluation_runs(policy, since, until):
            version = run.data.tags.get("model_version", "")
            points = self._call("read metric history", self._client.get_metric_history, run.info.run_id, metric)
            drift = self._drift_by_time(run)
            evaluations.extend(Evaluation(version, _moment(p.timestamp), float(p.value), drift.get(p.timestamp))
                               for p in points
                               if (low is None or p.timestamp >= low) and (high is None or p.timestamp <= high)
                               and math.isfinite(p.value))  # a NaN (e.g. 0/0 accuracy) is no evaluation
        return tuple(sorted(evaluations, key=lambda e: (e.at, e.version)))

    def _drift_by_time(self, run: Any) -> dict[int, float]:
        """The run's drift scores by timestamp (ms), read only when the run logged any."""
        if DRIFT_METRIC not in run.data.metrics:
            return {}
        points = self._call("read metric history", self._client.get_metric_history, run.info.run_id, DRIFT_METRIC)
        return {p.timestamp: float(p.value) for p in points if math.isfinite(p.value)}

    def history(self, policy: str, metric: str, energy_metric: str) -> History:
        """Training runs and production evaluations of ``policy`` (everything in the store)."""
        return History(policy, f"MLflow {self.tracking_uri}", self.trainings(policy, metric, energy_metric),
                       self.evaluations(policy, metric))

    def log_training(self, policy: str, version: str, started: datetime, finished: datetime,
                     metrics: dict[str, float]) -> None:
        """Record one finished retrain following the contract above."""
        self._log_run(policy, "training", version, started, finished,
                      [Metric(k, v, _millis(finished), 0) for k, v in sorted(metrics.items())])

    def log_evaluations(self, policy: str, version: str, metric: str, points: Sequence[tuple[datetime, float]],
                        drifts: Sequence[float] | None = None) -> None:
        """Record the production evaluations of one model version as a metric history (and their drift scores)."""
        if not points:
            return
        metrics = [Metric(metric, q, _millis(at), step) for step, (at, q) in enumerate(points)]
        metrics += [Metric(DRIFT_METRIC, d, _millis(at), step) for step, ((at, _), d) in enumerate(zip(
            points, drifts or (), strict=drifts is not None))]
        self._log_run(policy, "evaluation", version, points[0][0], points[-1][0], metrics)

    def _log_run(self, policy: str, kind: str, version: str, started: datetime, finished: datetime,
                 metrics: list[Metric]) -> None:
        run_id = self.start_run(policy, kind, started, {"model_version": version})
        for offset in range(0, len(metrics), PAGE_SIZE):
            self._client.log_batch(run_id, metrics=metrics[offset:offset + PAGE_SIZE])
        self._client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED), end_time=_millis(finished))

    def start_run(self, policy: str, kind: str, started: datetime, tags: dict[str, str],
                  experiment: str = DEFAULT_EXPERIMENT) -> str:
        """Create a run tagged for greenops (in ``experiment``, created if missing); returns its id."""
        found = self._call("find the experiment", self._client.get_experiment_by_name, experiment)
        experiment_id = found.experiment_id if found else self._call(
            "create the experiment", self._client.create_experiment, experiment)
        run = self._call("create a run", self._client.create_run, experiment_id, start_time=_millis(started),
                         tags={"greenops.policy": policy, "greenops.kind": kind, **tags})
        return str(run.info.run_id)

    def log_decision(self, policy: str, at: datetime, decision: GateRecord, metrics: dict[str, float]) -> str:
        """Record one gate decision as a finished run; returns its id."""
        run_id = self.start_run(policy, "decision", at, {
            "greenops.decision": decision.decision, "greenops.decided_by": decision.by,
            "greenops.reason": decision.reason[:MAX_TAG_CHARS]})
        finite = {k: v for k, v in sorted(metrics.items()) if math.isfinite(v)}
        self.finish_run(run_id, finite, RunStatus.to_string(RunStatus.FINISHED), at)
        return run_id

    def decisions(self, policy: str, since: datetime | None = None,
                  until: datetime | None = None) -> tuple[GateRecord, ...]:
        """The gate decisions of ``policy`` recorded in ``[since, until]``, oldest first."""
        conditions = [f"attributes.start_time >= {_millis(since)}"] if since else []
        conditions += [f"attributes.start_time <= {_millis(until)}"] if until else []
        found = []
        for run in self._runs(policy, "decision", *conditions):
            tags = run.data.tags
            found.append(GateRecord(_moment(run.info.start_time), tags.get("greenops.decision", ""),
                                          tags.get("greenops.decided_by", ""), tags.get("greenops.reason", "")))
        return tuple(sorted(found, key=lambda d: d.at))

    @property
    def raw_uri(self) -> str:
        """The URI with credentials, for child processes that must reach the same store."""
        return self._uri

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        for key, value in sorted(tags.items()):
            self._call("tag a run", self._client.set_tag, run_id, key, value)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._call("untag a run", self._client.delete_tag, run_id, key)

    def runs_tagged(self, key: str, value: str) -> list[TaggedRun]:
        """Every active run, in any experiment, whose tag ``key`` is ``value`` (oldest first)."""
        found = [TaggedRun(run.info.run_id, _moment(run.info.start_time), run.data.tags.get("mlflow.parentRunId"),
                           dict(run.data.tags)) for run in self._search(f"tags.`{key}` = '{value}'")]
        return sorted(found, key=lambda run: (run.started, run.run_id))

    def finish_run(self, run_id: str, metrics: dict[str, float], outcome: str, finished: datetime) -> None:
        """Log ``metrics`` and end the run as ``outcome`` (FINISHED, FAILED or KILLED), even if the command ended it."""
        stamp = _millis(finished)
        self._call("log metrics", self._client.log_batch, run_id,
                   metrics=[Metric(k, v, stamp, 0) for k, v in sorted(metrics.items())])
        self._call("end the run", self._client.set_terminated, run_id, outcome, end_time=stamp)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _training(run: Any, metric: str, energy_metric: str) -> TrainingRun:
    metrics = run.data.metrics
    return TrainingRun(
        version=run.data.tags.get("model_version", run.info.run_id),
        finished_at=_moment(run.info.end_time),
        duration_s=_finite(metrics.get("duration_s")),
        energy_kwh=_finite(metrics.get(energy_metric)),
        validation_quality=_finite(metrics.get(metric)),
        deploy_energy_kwh=_finite(metrics.get(DEPLOY_ENERGY_METRIC)),
        training_window_days=_finite(metrics.get(TRAINING_WINDOW_METRIC)),
    )

