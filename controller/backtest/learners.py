"""Real scikit-learn retrains, each trained once and shared by every strategy that retrains that day.

A retrain on day d learns from the rows of the training window before day d and serves from day d.
Its energy is its measured CPU time under a documented power model (Cloud Carbon Footprint's
watts per vCPU at full load, the same coefficient as the CPU/memory estimate preset).
"""

import time
from dataclasses import dataclass

import numpy as np

from controller.backtest.data import InputError, Stream
from controller.estimators import CLASSIFIERS
from controller.telemetry.promql import CCF_WATTS_PER_VCPU

LEARNERS = CLASSIFIERS  # by --learner name


@dataclass(frozen=True)
class Retrained:
    """One retrain: its measured cost, and whether it got each row right from its day on."""

    day: int
    cpu_seconds: float
    energy_kwh: float
    correct: np.ndarray  # bool, rows of days [day, day + horizon)


class ModelBank:
    """Trains lazily and remembers: strategies ask for days, each day is trained at most once."""

    def __init__(self, stream: Stream, learner: str, train_days: int, horizon_days: int, seed: int,
                 watts_per_cpu: float = CCF_WATTS_PER_VCPU) -> None:
        self.stream, self.learner, self.seed = stream, learner, seed
        self.train_days, self.horizon_days, self.watts_per_cpu = train_days, horizon_days, watts_per_cpu
        self.starts = stream.day_starts()
        self._trained: dict[int, Retrained] = {}

    def __getitem__(self, day: int) -> Retrained:
        if day not in self._trained:
            self._trained[day] = self._train(day)
        return self._trained[day]

    def _train(self, day: int) -> Retrained:
        first, last = self.starts[max(0, day - self.train_days)], self.starts[day]
        x, y = self.stream.features[first:last], self.stream.labels[first:last]
        model = LEARNERS[self.learner](self.seed)
        until = self.starts[min(day + self.horizon_days, self.stream.days)]
        days = f"days {max(0, day - self.train_days)}-{day - 1}"
        try:
            began = time.process_time()
            model.fit(x, y)
            cpu = time.process_time() - began
            predicted = model.predict(self.stream.features[last:until]) if until > last else np.zeros(0)
        except ValueError as err:  # no rows or one class in the window; empty cells for the logistic learner
            raise InputError(f"{self.stream.name}: cannot train on {days} or predict after them ({err}); use a "
                             "longer --train-window, fill empty feature cells, or another --learner") from err
        return Retrained(day, cpu, cpu / 3600 * self.watts_per_cpu / 1000, predicted == self.stream.labels[last:until])
