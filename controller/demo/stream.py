"""A synthetic drifting classification stream (rotating hyperplane) with a known drift speed.

The concept at time t is the hyperplane w(t) = cos(rt) u + sin(rt) v; a model trained at t0
loses accuracy roughly in proportion to r * (t - t0), which is what the demo needs: models
that decay fast, slowly, or in between.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DriftScenario:
    drift_rad_per_day: float
    label_noise: float
    features: int = 8


class DriftingStream:
    def __init__(self, scenario: DriftScenario, seed: int) -> None:
        self.scenario = scenario
        rng = np.random.default_rng(seed)
        basis, _ = np.linalg.qr(rng.normal(size=(scenario.features, 2)))
        self._u, self._v = basis[:, 0], basis[:, 1]

    def concept(self, day: np.ndarray) -> np.ndarray:
        """Hyperplane normal for each time (days since the stream began)."""
        angle = self.scenario.drift_rad_per_day * day
        return np.outer(np.cos(angle), self._u) + np.outer(np.sin(angle), self._v)

    def sample(self, rng: np.random.Generator, first_day: float, last_day: float,
               rows: int) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` labelled examples with times drawn uniformly in [first_day, last_day)."""
        days = rng.uniform(first_day, last_day, rows)
        features = rng.normal(size=(rows, self.scenario.features))
        labels = (np.einsum("ij,ij->i", features, self.concept(days)) > 0).astype(int)
        flip = rng.random(rows) < self.scenario.label_noise
        return features, np.where(flip, 1 - labels, labels)
