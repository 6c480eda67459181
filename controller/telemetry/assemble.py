"""One `History` per policy from whichever sources it names (MLflow, Prometheus, constants).

The cost model only ever sees a History, so the same telemetry through MLflow or through
Prometheus gives the same decision. Each signal is read into a `Reading` that keeps what a human
needs to debug it (the query, series, sample times) next to the value, so `greenops telemetry
check` shows exactly what a reconcile would use. No decision is made from stale or empty signals.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from controller.errors import SignalStalledError, StalledError, TransientError
from controller.policy.durations import format_duration
from controller.policy.model import Policy
from controller.telemetry import promql
from controller.telemetry.history import CarbonSamples, Evaluation, GateRecord, History, TrainingRun
from controller.telemetry.mlflow_store import MlflowTelemetry
from controller.telemetry.prometheus_source import PrometheusTelemetry
from controller.telemetry.series import Job, Series, jobs_from_counters, jobs_from_usage

JOB_GAP = timedelta(minutes=10)  # samples further apart than this belong to different jobs
MATCH_SLACK = timedelta(minutes=5)  # tolerance when matching MLflow runs to Prometheus jobs
CARBON_STEP = timedelta(hours=1)
T = TypeVar("T")


@dataclass(frozen=True)
class Sources:
    mlflow: MlflowTelemetry
    prometheus: PrometheusTelemetry | None


@dataclass(frozen=True)
class Reading(Generic[T]):
    """One signal as read: the value the History gets, and how it was found."""

    signal: str  # quality | energy | carbon intensity
    source: str  # "MLflow <uri>", "Prometheus <url>" or "policy constant"
    query: str
    value: T
    series: int = 0
    stamps: tuple[float, ...] = ()  # sample times, unix seconds, sorted
    step: timedelta | None = None  # the spacing samples should have; gaps are counted against it
    units: str = "samples"  # what a stamp counts: samples, training runs, evaluations
    series_units: str = "series"  # what ``series`` counts ("" when it means nothing for the source)

    @property
    def newest(self) -> datetime | None:
        return _moment(self.stamps[-1]) if self.stamps else None


def open_sources(mlflow_uri: str, prometheus_url: str | None) -> Sources:
    """Clients for the configured servers; nothing connects until a policy needs it."""
    return Sources(MlflowTelemetry(mlflow_uri), PrometheusTelemetry(prometheus_url) if prometheus_url else None)


def _prometheus(sources: Sources, policy: Policy) -> PrometheusTelemetry:
    if sources.prometheus is None:
        raise StalledError(f"the policy reads telemetry from Prometheus but no server is configured; pass "
                           f"--prometheus-url or set PROMETHEUS_URL (policy {policy.name})")
    return sources.prometheus


def _stamps(series: list[Series]) -> tuple[float, ...]:
    return tuple(sorted(t for _, samples in series for t, _ in samples))


def read_energy_jobs(policy: Policy, prometheus: PrometheusTelemetry, start: datetime,
                     end: datetime) -> Reading[list[Job]]:
    """Retraining jobs found in Prometheus energy (or usage) series, with their energy."""
    t = policy.telemetry
    query = promql.energy_query(t.energy_selector, t.energy_job_label, t.energy_unit, t.energy_preset,
                                policy.namespace, t.pod_prefix, t.project_name)
    gap = JOB_GAP.total_seconds()
    if isinstance(query, promql.UsageQuery):
        cpu = prometheus.raw_series(query.cpu_selector, start, end)
        memory = prometheus.raw_series(query.memory_selector, start, end)
        series = cpu + memory
        jobs = jobs_from_usage(cpu, memory, query.job_label, gap, promql.estimated_kwh)
        shown = f"{query.cpu_selector} and {query.memory_selector}"
    else:
        series = [s for selector in query.selectors for s in prometheus.raw_series(selector, start, end)]
        jobs = jobs_from_counters(series, query.job_label, query.kwh_per_unit, gap)
        shown = " + ".join(query.selectors)
    where = f"in the last {format_duration(end - start)} at {prometheus.url}"
    if not series:
        raise SignalStalledError(f"the energy query {shown} matched no series {where}; check the namespace, pod "
                                 "prefix and preset")
    if not jobs:
        raise SignalStalledError(f"the energy query {shown} found {len(series)} series {where} but no job with "
                                 f"two samples less than {format_duration(JOB_GAP)} apart; scrape the job's pods "
                                 "more often")
    return Reading("energy", f"Prometheus {prometheus.url}", shown, jobs, len(series), _stamps(series))


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
        matched.append(replace(run, energy_kwh=energy))
    return tuple(matched)


def read_trainings(policy: Policy, sources: Sources, start: datetime,
                   end: datetime) -> Reading[tuple[TrainingRun, ...]]:
    """The retrains and their energy: MLflow runs, Prometheus jobs, or MLflow runs priced by Prometheus jobs."""
    t = policy.telemetry
    uses_mlflow = "mlflow" in (t.accuracy_source, t.energy_source)
    runs = sources.mlflow.trainings(policy.name, policy.slo_metric, t.energy_metric, start, end) if uses_mlflow else ()
    if t.energy_source == "prometheus":
        jobs = read_energy_jobs(policy, _prometheus(sources, policy), start, end)
        trainings = _with_job_energy(runs, jobs.value) if runs else _trainings_from_jobs(jobs.value)
        return Reading("energy", jobs.source, jobs.query, trainings, jobs.series, jobs.stamps)
    priced = tuple(sorted(r.finished_at.timestamp() for r in runs if r.energy_kwh is not None))
    return Reading("energy", f"MLflow {sources.mlflow.tracking_uri}",
                   f"finished runs tagged greenops.policy={policy.name}, greenops.kind=training; metric "
                   f"{t.energy_metric}", runs, 0, priced, units="training runs with energy", series_units="")


def _serving_version(trainings: tuple[TrainingRun, ...], moment: datetime) -> str | None:
    ready = [t for t in trainings if t.finished_at <= moment]
    return ready[-1].version if ready else None


def prometheus_evaluations(policy: Policy, prometheus: PrometheusTelemetry, trainings: tuple[TrainingRun, ...],
                           start: datetime, end: datetime) -> Reading[tuple[Evaluation, ...]]:
    """One quality value per evaluation window; without a version label, the serving model is assumed."""
    t = policy.telemetry
    query = t.accuracy_query or promql.default_quality_query(policy.name, policy.slo_metric)
    window = int(policy.slo_window.total_seconds())
    aligned = datetime.fromtimestamp(-(-start.timestamp() // window) * window, tz=UTC)
    series = prometheus.gauge_series(promql.per_window(query, window), aligned, end, policy.slo_window)
    if not series:
        raise SignalStalledError(f"the quality query {query} returned no data in the last "
                                 f"{format_duration(end - start)} at {prometheus.url}; check the query")
    evaluations = []
    for labels, samples in series:
        for seconds, value in samples:
            at = _moment(seconds)
            version = labels.get(t.version_label) or _serving_version(trainings, at - policy.slo_window / 2)
            if version is not None:
                evaluations.append(Evaluation(version, at, value))
    return Reading("quality", f"Prometheus {prometheus.url}", query,
                   tuple(sorted(evaluations, key=lambda e: (e.at, e.version))), len(series), _stamps(series),
                   policy.slo_window, "windows")


def read_evaluations(policy: Policy, sources: Sources, trainings: tuple[TrainingRun, ...], start: datetime,
                     end: datetime) -> Reading[tuple[Evaluation, ...]]:
    """Production quality per evaluation window, from a Prometheus gauge or MLflow evaluation runs."""
    if policy.telemetry.accuracy_source == "prometheus":
        return prometheus_evaluations(policy, _prometheus(sources, policy), trainings, start, end)
    evaluations = sources.mlflow.evaluations(policy.name, policy.slo_metric, start, end)
    return Reading("quality", f"MLflow {sources.mlflow.tracking_uri}",
                   f"evaluation runs tagged greenops.policy={policy.name}, greenops.kind=evaluation; metric "
                   f"{policy.slo_metric}", evaluations, len({e.version for e in evaluations}),
                   tuple(sorted(e.at.timestamp() for e in evaluations)), policy.slo_window, "evaluations",
                   "model versions")


def read_carbon(policy: Policy, sources: Sources, start: datetime,
                end: datetime) -> Reading[CarbonSamples | None]:
    """Hourly grid carbon intensity over the lookback from a gauge, or None when the policy sets a constant.

    Several matching series (e.g. one per region of a zone) are averaged hour by hour.
    """
    t = policy.telemetry
    if t.carbon_source != "prometheus":
        return Reading("carbon intensity", "policy constant", f"{t.carbon_constant:g} gCO2e/kWh", None)
    prometheus = _prometheus(sources, policy)
    query = t.carbon_query or promql.default_carbon_query(t.carbon_zone or "")
    series = prometheus.gauge_series(query, start, end, CARBON_STEP)
    by_hour: dict[float, list[float]] = {}
    for _, samples in series:
        for stamp, value in samples:
            by_hour.setdefault(stamp, []).append(value)
    if not by_hour:
        raise SignalStalledError(f"the carbon-intensity query {query} returned no data at {prometheus.url}; "
                                 "set spec.telemetry.carbonIntensity.zone/query, or use source: constant")
    hourly = tuple((datetime.fromtimestamp(stamp, UTC), sum(values) / len(values))
                   for stamp, values in sorted(by_hour.items()))
    return Reading("carbon intensity", f"Prometheus {prometheus.url}", query, hourly,
                   len(series), _stamps(series), CARBON_STEP)


def stale_reason(reading: Reading[T], now: datetime, limit: timedelta) -> str | None:
    """Why ``reading`` is too old to decide on, or None."""
    newest = reading.newest
    if newest is None or now - newest <= limit:
        return None
    return (f"{reading.signal} is stale: the newest sample of {reading.query} is from "
            f"{newest.isoformat(timespec='minutes')} ({format_duration(now - newest)} ago) and maxStaleness is "
            f"{format_duration(limit)}; no decision is made from stale data")


def _fresh(reading: Reading[T], now: datetime, limit: timedelta) -> T:
    reason = stale_reason(reading, now, limit)
    if reason:
        raise SignalStalledError(reason)
    return reading.value


def carbon_intensity(policy: Policy, sources: Sources, start: datetime, end: datetime) -> CarbonSamples | None:
    """The carbon gauge's hourly samples over ``[start, end]`` (they must be fresh); None for a constant."""
    return _fresh(read_carbon(policy, sources, start, end), end, policy.telemetry.max_staleness)


def load_history(policy: Policy, sources: Sources, now: datetime) -> History:
    """Everything the cost model needs about ``policy``, read from its sources."""
    start = now - policy.telemetry.lookback
    trainings = read_trainings(policy, sources, start, now)
    evaluations = read_evaluations(policy, sources, trainings.value, start, now)
    history = history_from(policy, trainings, evaluations, carbon_intensity(policy, sources, start, now), now)
    return replace(history, gate_records=gate_records(policy, sources, start, now))


def gate_records(policy: Policy, sources: Sources, start: datetime, end: datetime) -> tuple[GateRecord, ...]:
    """What the gate recorded in ``[start, end]`` (a pass --as-of a past moment sees no later decision);
    nothing when MLflow cannot say (it is evidence, not an input)."""
    try:
        return sources.mlflow.decisions(policy.name, start, end)
    except (StalledError, TransientError):
        return ()


def history_from(policy: Policy, trainings: Reading[tuple[TrainingRun, ...]],
                 evaluations: Reading[tuple[Evaluation, ...]], carbon: CarbonSamples | None, now: datetime) -> History:
    """The History of fresh readings; a stale quality signal stalls the policy."""
    fresh_evaluations = _fresh(evaluations, now, policy.telemetry.max_staleness)
    described = ", ".join(dict.fromkeys((trainings.source, evaluations.source)))
    return History(policy.name, described, trainings.value, fresh_evaluations, carbon, energy_is_estimated(policy))


def energy_is_estimated(policy: Policy) -> bool:
    """True when energy comes from the CPU/memory power model rather than a meter."""
    t = policy.telemetry
    return t.energy_source == "prometheus" and not t.energy_selector and t.energy_preset == "cpu-memory-estimate"
