"""Produce a model's telemetry by actually retraining and evaluating it on a drifting stream.

Retrains happen at the real fire times of the policy's current cron schedule. Every model
version is evaluated on each following day's labelled data (shadow evaluation) for up to
``shadow_days``, so the history shows how quality decays with age. The models are really trained
and scored; their energy and duration are not measured (a fit of a few milliseconds says nothing
about a production job, and its CPU time moves with the machine's load): each retrain logs the
policy's documented job figure, ``job_kwh`` and ``job_minutes``, with a seeded +-10% spread, so the
demo gives the same figures on every machine.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from controller import schedule
from controller.demo.stream import DriftingStream, DriftScenario
from controller.estimators import Classifier, plain_logistic
from controller.policy.model import Policy
from controller.telemetry.mlflow_store import MlflowTelemetry

DAY = timedelta(days=1)
JOB_SPREAD = 0.10  # seeded relative spread of each retrain's energy and duration around the job figure


@dataclass(frozen=True)
class DemoModel:
    scenario: DriftScenario
    job_kwh: float  # energy of one production retrain of this model, as the demo documents it
    job_minutes: float = 20.0  # its duration
    train_days: float = 3.0
    train_rows: int = 3000
    eval_rows: int = 1500
    shadow_days: int = 14


@dataclass
class _Version:
    name: str
    model: Classifier
    ready: datetime
    points: list[tuple[datetime, float]]


def _days(moment: datetime, origin: datetime) -> float:
    return (moment - origin) / DAY


def _train(stream: DriftingStream, spec: DemoModel, rng: np.random.Generator, fire_day: float) -> Classifier:
    features, labels = stream.sample(rng, fire_day - spec.train_days, fire_day, spec.train_rows)
    return plain_logistic(features, labels)


def generate(policy: Policy, spec: DemoModel, telemetry: MlflowTelemetry, start: datetime,
             end: datetime, seed: int) -> tuple[int, int]:
    """Simulate ``[start, end)``: retrain on the current schedule, evaluate daily, log to MLflow."""
    stream = DriftingStream(spec.scenario, seed)
    rng = np.random.default_rng(seed + 1)
    fires = schedule.fire_times(policy.current_schedule, schedule.zone(policy.time_zone), start, end)
    versions: list[_Version] = []
    costs = np.random.default_rng(seed + 2)  # its own stream: the figures do not depend on the training draws
    for number, fire in enumerate(fires, start=1):
        model = _train(stream, spec, rng, _days(fire, start))
        energy, minutes = (figure * (1 + costs.uniform(-JOB_SPREAD, JOB_SPREAD))
                           for figure in (spec.job_kwh, spec.job_minutes))
        wall_s = minutes * 60
        ready = fire + timedelta(seconds=wall_s)
        features, labels = stream.sample(rng, _days(fire, start) - 1, _days(fire, start), spec.eval_rows)
        telemetry.log_training(policy.name, str(number), fire, ready, {
            "energy_kwh": energy, "duration_s": wall_s, policy.slo_metric: model.score(features, labels)})
        versions.append(_Version(str(number), model, ready, []))
    evaluations = 0
    day = start
    while day + DAY <= end:
        features, labels = stream.sample(rng, _days(day, start), _days(day + DAY, start), spec.eval_rows)
        for version in versions:
            if version.ready <= day + DAY / 2 and day - version.ready < timedelta(days=spec.shadow_days):
                version.points.append((day + DAY, float(version.model.score(features, labels))))
                evaluations += 1
        day += DAY
    for version in versions:
        telemetry.log_evaluations(policy.name, version.name, policy.slo_metric, version.points)
    return len(versions), evaluations
