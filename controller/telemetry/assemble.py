"""One `History` per policy from whichever sources it names (MLflow, Prometheus, constants).

The cost model only ever sees a History, so the same telemetry through MLflow or through
Prometheus gives the same decision. No decision is made from stale or empty signals.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from controller.errors import StalledError
from controller.policy.durations import format_duration
from controller.policy.model import Policy
from controller.telemetry import promql
from controller.telemetry.history import Evaluation, History, TrainingRun
from controller.telemetry.mlflow_store import MlflowTelemetry
from controller.telemetry.prometheus_source import PrometheusTelemetry
from controller.telemetry.series import Job, jobs_from_counters, jobs_from_usage

JOB_GAP = timedelta(minutes=10)  # samples further apart than this belong to different jobs
MATCH_SLACK = timedelta(minutes=5)  # tolerance when matching MLflow runs to Prometheus jobs
CARBON_STEP = timedelta(hours=1)


@dataclass(frozen=True)
class Sources:
    mlflow: MlflowTelemetry
    prometheus: PrometheusTelemetry | None


def _prometheus(sources: Sources, policy: Policy) -> PrometheusTelemetry:
    if sources.prometheus is None:
        raise StalledError(f"the policy reads telemetry from Prometheus but no server is configured; pass "
                           f"--prometheus-url or set PROMETHEUS_URL (policy {policy.name})")
    return sources.prometheus


def energy_jobs(policy: Policy, prometheus: PrometheusTelemetry, start: datetime, end: datetime) -> list[Job]:
    """Retraining jobs found in Prometheus energy (or usage) series, with their energy."""
    t = policy.telemetry
    query = promql.energy_query(t.energy_selector, t.energy_job_label, t.energy_unit, t.energy_preset,
                                policy.namespace, t.pod_prefix, t.project_name)
    gap = JOB_GAP.total_seconds()
    if isinstance(query, promql.UsageQuery):
        cpu = prometheus.raw_series(query.cpu_selector, start, end)
        memory = prometheus.raw_series(query.memory_selector, start, end)
        jobs = jobs_from_usage(cpu, memory, query.job_label, gap, promql.estimated_kwh)
        shown = f"{query.cpu_selector} and {query.memory_selector}"
    else:
        series = [s for selector in query.selectors for s in prometheus.raw_series(selector, start, end)]
        jobs = jobs_from_counters(series, query.job_label, query.kwh_per_unit, gap)
        shown = " + ".join(query.selectors)
    if not jobs:
        raise StalledError(f"the energy query {shown} matched no series in the last "
                           f"{format_duration(t.lookback)} at {prometheus.url}; check the namespace, pod prefix "
                           "and preset (greenops telemetry check shows what it finds)")
    return jobs


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _trainings_from_jobs(jobs: list[Job]) -> tuple[TrainingRun, ...]:
    return tuple(TrainingRun(f"{job.key}@{_moment(job.start).isoformat(timespec='seconds')}", _moment(job.end),
                             job.end - job.start, job.energy_kwh, None) for job in jobs)


def _with_job_energy(trainings: tuple[TrainingRun, ...], jobs: list[Job]) -> tuple[TrainingRun, ...]:
    """Energy of each MLflow training run = the Prometheus jobs that overlap it in time."""
    matched = []
    for run in trainings:
        end = run.finished_at.timestamp() + MATCH_SLACK.total_seconds()
        start = run.finished_at.timestamp() - (run.duration_s or 0) - MATCH_SLACK.total_seconds()
        overlapping = [j.energy_kwh for j in jobs if j.start <= end and j.end >= start]
        energy = sum(overlapping) if overlapping else None
        matched.append(TrainingRun(run.version, run.finished_at, run.duration_s, energy, run.validation_quality))
    return tuple(matched)


def _serving_version(trainings: tuple[TrainingRun, ...], moment: datetime) -> str | None:
    ready = [t for t in trainings if t.finished_at <= moment]
    return ready[-1].version if ready else None


def prometheus_evaluations(policy: Policy, prometheus: PrometheusTelemetry, trainings: tuple[TrainingRun, ...],
                           start: datetime, end: datetime) -> tuple[Evaluation, ...]:
    """One quality value per evaluation window; without a version label, the serving model is assumed."""
    t = policy.telemetry
    query = t.accuracy_query or promql.default_quality_query(policy.name, policy.slo_metric)
    window = int(policy.slo_window.total_seconds())
    aligned = datetime.fromtimestamp(-(-start.timestamp() // window) * window, tz=UTC)
    series = prometheus.gauge_series(promql.per_window(query, window), aligned, end, policy.slo_window)
    evaluations = []
    for labels, samples in series:
        for seconds, value in samples:
            at = _moment(seconds)
            version = labels.get(t.version_label) or _serving_version(trainings, at - policy.slo_window / 2)
            if version is not None:
                evaluations.append(Evaluation(version, at, value))
    if not series:
        raise StalledError(f"the quality query {query} returned no data in the last {format_duration(t.lookback)} "
                           f"at {prometheus.url}; check the query (greenops telemetry check)")
    return tuple(sorted(evaluations, key=lambda e: (e.at, e.version)))


def carbon_intensity(policy: Policy, prometheus: PrometheusTelemetry, start: datetime, end: datetime) -> float:
    """Mean grid carbon intensity over the lookback, from a gauge that must be fresh."""
    t = policy.telemetry
    query = t.carbon_query or promql.default_carbon_query(t.carbon_zone or "")
    values = [s for _, samples in prometheus.gauge_series(query, start, end, CARBON_STEP) for s in samples]
    if not values:
        raise StalledError(f"the carbon-intensity query {query} returned no data at {prometheus.url}; set "
                           "spec.telemetry.carbonIntensity.zone/query, or use source: constant")
    _require_fresh("carbon intensity", query, _moment(max(t for t, _ in values)), end, t.max_staleness)
    return sum(v for _, v in values) / len(values)


def _require_fresh(signal: str, query: str, newest: datetime, now: datetime, limit: timedelta) -> None:
    if now - newest > limit:
        raise StalledError(f"{signal} is stale: the newest sample of {query} is from "
                           f"{newest.isoformat(timespec='minutes')} ({format_duration(now - newest)} ago) and "
                           f"maxStaleness is {format_duration(limit)}; no decision is made from stale data")


def load_history(policy: Policy, sources: Sources, now: datetime) -> History:
    """Everything the cost model needs about ``policy``, read from its sources."""
    t = policy.telemetry
    start = now - t.lookback
    uses_mlflow = "mlflow" in (t.accuracy_source, t.energy_source)
    trainings = sources.mlflow.trainings(policy.name, policy.slo_metric, t.energy_metric, start) if uses_mlflow else ()
    described = [f"MLflow {sources.mlflow.tracking_uri}"] if uses_mlflow else []
    if t.energy_source == "prometheus":
        prometheus = _prometheus(sources, policy)
        jobs = energy_jobs(policy, prometheus, start, now)
        trainings = _with_job_energy(trainings, jobs) if trainings else _trainings_from_jobs(jobs)
        described.append(f"Prometheus {prometheus.url}")
    if t.accuracy_source == "prometheus":
        prometheus = _prometheus(sources, policy)
        evaluations = prometheus_evaluations(policy, prometheus, trainings, start, now)
        described.append(f"Prometheus {prometheus.url}")
        quality_query = t.accuracy_query or promql.default_quality_query(policy.name, policy.slo_metric)
    else:
        evaluations = sources.mlflow.evaluations(policy.name, policy.slo_metric, start)
        quality_query = f"MLflow evaluation runs of {policy.name}"
    if evaluations:
        _require_fresh("quality", quality_query, evaluations[-1].at, now, t.max_staleness)
    intensity = None
    if t.carbon_source == "prometheus":
        intensity = carbon_intensity(policy, _prometheus(sources, policy), start, now)
    estimated = t.energy_source == "prometheus" and not t.energy_selector and t.energy_preset == "cpu-memory-estimate"
    return History(policy.name, ", ".join(dict.fromkeys(described)), trainings, evaluations, intensity, estimated)
