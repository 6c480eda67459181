"""The typed, defaulted view of a valid policy that the rest of the controller uses."""

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from controller.policy.durations import parse_duration
from controller.policy.job import Job, job_from_data, string_pairs

DEFAULT_CARBON_INTENSITY = 250.0  # g CO2e/kWh: a deliberately high-ish world-average placeholder


@dataclass(frozen=True)
class Telemetry:
    """Where each signal comes from (see the schema's spec.telemetry for the meaning of each field)."""

    lookback: timedelta
    max_staleness: timedelta
    accuracy_source: str
    accuracy_query: str | None
    version_label: str
    energy_source: str
    energy_metric: str
    energy_preset: str
    energy_selector: str | None
    energy_job_label: str
    energy_unit: str
    pod_prefix: str
    project_name: str
    carbon_source: str
    carbon_constant: float
    carbon_zone: str | None
    carbon_query: str | None


@dataclass(frozen=True)
class Promotion:
    """The promotion gate: today's, the highest greenops may choose, and a declared deploy energy."""

    min_gain: float
    max_min_gain: float
    deploy_energy_kwh: float | None  # None: measured from the training runs, else 0


@dataclass(frozen=True)
class Training:
    """The training-data window: today's and the range greenops may choose from (None: not managed)."""

    window: timedelta | None
    min_window: timedelta | None
    max_window: timedelta | None

    @property
    def varies(self) -> bool:
        return self.min_window != self.max_window


@dataclass(frozen=True)
class Gate:
    """The run-time rule's settings: whether it runs, and what it does when it cannot decide."""

    enabled: bool = True
    on_telemetry_error: str = "retrain"  # retrain | skip
    max_age_on_error: timedelta | None = None  # None: maxInterval
    image: str | None = None  # None: the greenops image of this version
    telemetry_secret: str = "greenops-telemetry"


@dataclass(frozen=True)
class Objective:
    """slo: least energy that keeps the SLO; cost: least C_alpha (lost quality + alpha x retrains)."""

    kind: str = "slo"
    alpha: float = 0.0


DEFAULT_MAX_MIN_GAIN = 0.02


@dataclass(frozen=True)
class Policy:
    """A validated RetrainingPolicy with every default applied."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    source_file: str
    source_line: int
    mlflow_model: str
    slo_metric: str
    slo_target: float
    slo_compliance: float
    slo_window: timedelta
    energy_budget_kwh: float
    carbon_budget_kg: float | None
    budget_period: timedelta
    priority: str
    current_schedule: str
    min_interval: timedelta
    max_interval: timedelta
    time_zone: str
    allowed_hours: frozenset[int]
    telemetry: Telemetry
    job: Job
    mode: str
    min_saving_percent: float
    promotion: Promotion = Promotion(0.0, DEFAULT_MAX_MIN_GAIN, None)
    training: Training = Training(None, None, None)
    proposal_group: str | None = None  # policies of one group share one merge request
    gate: Gate = Gate()
    objective: Objective = Objective()
    document_yaml: str = field(default="", repr=False, compare=False)  # the validated document, for the gate

    @property
    def gate_can_run(self) -> bool:
        """The generated CronJob can host the gate: enabled, and a command it can wrap (spec.job.command)."""
        return self.gate.enabled and bool(self.job.command)


def expand_hours(items: list[Any] | None) -> frozenset[int]:
    """``[0-6, 22, "20-23"]`` -> the set of hours; a range may wrap past midnight (``22-3``)."""
    if not items:
        return frozenset(range(24))
    hours: set[int] = set()
    for item in items:
        if isinstance(item, int):
            hours.add(item)
            continue
        first, last = (int(part) for part in str(item).split("-"))
        span = (last - first) % 24
        hours.update((first + offset) % 24 for offset in range(span + 1))
    return frozenset(hours)


def _telemetry(data: dict[str, Any], name: str, window: timedelta) -> Telemetry:
    accuracy, energy, carbon = data.get("accuracy", {}), data.get("energy", {}), data.get("carbonIntensity", {})
    staleness = data.get("maxStaleness")
    return Telemetry(
        lookback=parse_duration(data.get("lookback", "90d")),
        max_staleness=parse_duration(staleness) if staleness else max(3 * window, timedelta(days=1)),
        accuracy_source=accuracy.get("source", "mlflow"),
        accuracy_query=accuracy.get("query"),
        version_label=accuracy.get("versionLabel", "model_version"),
        energy_source=energy.get("source", "mlflow"),
        energy_metric=energy.get("metric", "energy_kwh"),
        energy_preset=energy.get("preset", "kepler-0.10"),
        energy_selector=energy.get("selector"),
        energy_job_label=energy.get("jobLabel", "pod_name"),
        energy_unit=energy.get("unit", "joules"),
        pod_prefix=energy.get("podPrefix", f"{name}-"),
        project_name=energy.get("projectName", name),
        carbon_source=carbon.get("source", "constant"),
        carbon_constant=float(carbon.get("gCO2ePerKWh", DEFAULT_CARBON_INTENSITY)),
        carbon_zone=carbon.get("zone"),
        carbon_query=carbon.get("query"),
    )


def _promotion(data: dict[str, Any]) -> Promotion:
    min_gain = float(data.get("minGain", 0.0))
    energy = data.get("deployEnergyKWh")
    return Promotion(min_gain, float(data.get("maxMinGain", max(min_gain, DEFAULT_MAX_MIN_GAIN))),
                     float(energy) if energy is not None else None)


def _training(data: dict[str, Any] | None) -> Training:
    if not data:
        return Training(None, None, None)
    window = parse_duration(data["window"])
    low, high = data.get("minWindow"), data.get("maxWindow")
    return Training(window, parse_duration(low) if low else window, parse_duration(high) if high else window)


def _gate(data: dict[str, Any]) -> Gate:
    age = data.get("maxAgeOnError")
    return Gate(enabled=bool(data.get("enabled", True)), on_telemetry_error=data.get("onTelemetryError", "retrain"),
                max_age_on_error=parse_duration(age) if age else None, image=data.get("image"),
                telemetry_secret=data.get("telemetrySecret", "greenops-telemetry"))


def _objective(data: dict[str, Any]) -> Objective:
    return Objective(kind=data.get("kind", "slo"), alpha=float(data.get("alpha", 0.0)))


def policy_from_data(data: dict[str, Any], source_file: Path, source_line: int = 1) -> Policy:
    """Build a Policy from a document that already passed validation."""
    meta, spec = data["metadata"], data["spec"]
    slo, budget, sched = spec["slo"], spec["budget"], spec["schedule"]
    telemetry, job, proposal = spec.get("telemetry", {}), spec["job"], spec.get("proposal", {})
    return Policy(
        name=meta["name"],
        namespace=meta.get("namespace", "default"),
        labels=string_pairs(meta.get("labels")),
        source_file=source_file.as_posix(),
        source_line=source_line,
        mlflow_model=spec["model"]["mlflowModel"],
        slo_metric=slo["metric"],
        slo_target=float(slo["target"]),
        slo_compliance=float(slo.get("compliance", 0.95)),
        slo_window=parse_duration(slo.get("window", "1d")),
        energy_budget_kwh=float(budget["energyKWh"]),
        carbon_budget_kg=float(budget["carbonKgCO2e"]) if "carbonKgCO2e" in budget else None,
        budget_period=parse_duration(budget["period"]),
        priority=spec.get("priority", "slo"),
        current_schedule=sched["current"],
        min_interval=parse_duration(sched["minInterval"]),
        max_interval=parse_duration(sched["maxInterval"]),
        time_zone=sched.get("timeZone", "Etc/UTC"),
        allowed_hours=expand_hours(sched.get("allowedHours")),
        telemetry=_telemetry(telemetry, meta["name"], parse_duration(slo.get("window", "1d"))),
        job=job_from_data(job),
        mode=proposal.get("mode", "propose"),
        min_saving_percent=float(proposal.get("minSavingPercent", 10)),
        promotion=_promotion(spec.get("promotion", {})),
        training=_training(spec.get("training")),
        proposal_group=proposal.get("group"),
        gate=_gate(spec.get("gate", {})),
        objective=_objective(spec.get("objective", {})),
        document_yaml=yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
    )
