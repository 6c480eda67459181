"""The model history every telemetry source produces and the cost model consumes.

Plain frozen dataclasses: the cost model must not know where the data came from.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TrainingRun:
    """One retrain: when its model became available and what it cost."""

    version: str
    finished_at: datetime
    duration_s: float | None
    energy_kwh: float | None
    validation_quality: float | None
    deploy_energy_kwh: float | None = None  # energy of deploying this version, when it was deployed and logged
    training_window_days: float | None = None  # how much data it learnt from, when logged


@dataclass(frozen=True)
class Evaluation:
    """Quality of one model version measured on one production evaluation window ending at ``at``."""

    version: str
    at: datetime
    quality: float
    drift: float | None = None  # the window's drift score, when logged


CarbonSamples = tuple[tuple[datetime, float], ...]  # (time, gCO2e/kWh), oldest first


@dataclass(frozen=True)
class GateRecord:
    """One decision `greenops gate` recorded: when, retrain or skip, by what (rule, maxInterval, cron,
    fallback), and why."""

    at: datetime
    decision: str
    by: str
    reason: str


@dataclass(frozen=True)
class History:
    policy: str
    source: str
    trainings: tuple[TrainingRun, ...]
    evaluations: tuple[Evaluation, ...]
    carbon_samples: CarbonSamples | None = None  # None: the policy's constant applies
    energy_estimated: bool = False  # energy estimated from CPU/memory usage, not measured
    gate_records: tuple[GateRecord, ...] = ()  # what the gate decided over the lookback, oldest first

    @property
    def carbon_intensity_g_per_kwh(self) -> float | None:
        """Mean grid intensity over the samples, or None when the policy's constant applies."""
        if not self.carbon_samples:
            return None
        return sum(v for _, v in self.carbon_samples) / len(self.carbon_samples)

    @property
    def latest(self) -> datetime | None:
        """The newest timestamp in the history: the decision's "now", so reruns are reproducible."""
        stamps = [t.finished_at for t in self.trainings] + [e.at for e in self.evaluations]
        return max(stamps) if stamps else None

    @property
    def earliest(self) -> datetime | None:
        stamps = [t.finished_at for t in self.trainings] + [e.at for e in self.evaluations]
        return min(stamps) if stamps else None
