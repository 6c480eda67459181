"""Turning raw Prometheus samples into retraining jobs: pure functions, no I/O.

A job is a stretch of samples of one series with no gap longer than ``max_gap``; series that
share the job label (a pod's containers or Kepler zones) and overlap in time are one job.
Energy is the counter's increase over the job, resets handled as PromQL ``increase()`` does
(a drop means the counter restarted from zero), but without its boundary extrapolation.
"""

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

Sample = tuple[float, float]  # (unix seconds, value)
Series = tuple[dict[str, str], list[Sample]]


@dataclass(frozen=True)
class Job:
    key: str
    start: float
    end: float
    energy_kwh: float
    estimated: bool = False


def split_segments(samples: Sequence[Sample], max_gap: float) -> list[list[Sample]]:
    """Consecutive runs of samples whose spacing never exceeds ``max_gap`` seconds."""
    segments: list[list[Sample]] = []
    for sample in sorted(samples):
        if segments and sample[0] - segments[-1][-1][0] <= max_gap:
            segments[-1].append(sample)
        else:
            segments.append([sample])
    return segments


def counter_increase(samples: Sequence[Sample]) -> float:
    """Increase of a cumulative counter; after a reset the new value counts from zero."""
    total = 0.0
    for (_, before), (_, after) in itertools.pairwise(samples):
        total += after - before if after >= before else after
    return total


def gauge_integral(samples: Sequence[Sample]) -> float:
    """Time integral of a gauge (trapezoids), in value-seconds."""
    return sum((t1 - t0) * (v0 + v1) / 2 for (t0, v0), (t1, v1) in itertools.pairwise(samples))


def _merge(pieces: Iterable[Job]) -> list[Job]:
    """Jobs with the same key that overlap in time are one job: sum their energy, join their windows."""
    merged: list[Job] = []
    for job in sorted(pieces, key=lambda j: (j.key, j.start)):
        last = merged[-1] if merged else None
        if last and last.key == job.key and job.start <= last.end:
            merged[-1] = Job(last.key, last.start, max(last.end, job.end), last.energy_kwh + job.energy_kwh,
                             last.estimated or job.estimated)
        else:
            merged.append(job)
    return sorted(merged, key=lambda j: (j.end, j.key))


def jobs_from_counters(series: Sequence[Series], job_label: str, kwh_per_unit: float, max_gap: float) -> list[Job]:
    pieces = []
    for labels, samples in series:
        for segment in split_segments(samples, max_gap):
            if len(segment) >= 2:
                pieces.append(Job(labels.get(job_label, ""), segment[0][0], segment[-1][0],
                                  counter_increase(segment) * kwh_per_unit))
    return _merge(pieces)


def jobs_from_usage(cpu: Sequence[Series], memory: Sequence[Series], job_label: str, max_gap: float,
                    estimate: Callable[[float, float], float]) -> list[Job]:
    """Energy estimated from CPU-seconds and memory working set; every job is flagged as an estimate.

    ``estimate(cpu_seconds, memory_gb_hours)`` returns kWh.
    """
    pieces = []
    for labels, samples in cpu:
        for segment in split_segments(samples, max_gap):
            if len(segment) >= 2:
                pieces.append(Job(labels.get(job_label, ""), segment[0][0], segment[-1][0],
                                  estimate(counter_increase(segment), 0.0), estimated=True))
    for labels, samples in memory:
        for segment in split_segments(samples, max_gap):
            if len(segment) >= 2:
                gb_hours = gauge_integral(segment) / 1e9 / 3600
                pieces.append(Job(labels.get(job_label, ""), segment[0][0], segment[-1][0],
                                  estimate(0.0, gb_hours), estimated=True))
    return _merge(pieces)

