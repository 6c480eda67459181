"""Data the shared folder does not have, so the backtests are not tuned for its files alone.

- ``hyperplane.csv``: river's rotating Hyperplane generator (10 features, gradual drift of magnitude 0.001 per
  row on 2 features, 5% label noise), 242 days of 100 rows, seeded;
- ``solar_grid.csv``: hourly carbon intensity of a solar-heavy grid: 420 gCO2e/kWh at night, down to about 60
  at midday on a clear day, with day-to-day cloud cover (seeded) and a weekly cycle of demand.
Both are written once into the given folder (never into ../shared) and reused.
"""

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from river.datasets import synth

DAYS, ROWS_PER_DAY = 242, 100


def _hyperplane(path: Path) -> None:
    stream = synth.Hyperplane(seed=11, n_features=10, n_drift_features=2, mag_change=0.001, noise_percentage=0.05,
                              sigma=0.1)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"x{i}" for i in range(10)), "label"])
        for x, y in stream.take(DAYS * ROWS_PER_DAY):
            writer.writerow([*(f"{x[i]:.6f}" for i in range(10)), int(y)])


def _solar(path: Path) -> None:
    rng = np.random.default_rng(5)
    start = datetime(2021, 1, 1, tzinfo=UTC)
    clouds = np.clip(rng.beta(2, 3, DAYS + 31), 0, 1)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "intensity"])
        for hour in range((DAYS + 30) * 24):
            moment = start + timedelta(hours=hour)
            sun = max(0.0, math.sin(math.pi * (moment.hour - 6) / 12))  # 06:00-18:00
            weekday = 1.0 if moment.weekday() < 5 else 0.9
            intensity = weekday * (420 - 360 * sun * (1 - clouds[hour // 24])) + rng.normal(0, 10)
            writer.writerow([moment.isoformat(), f"{max(intensity, 20):.1f}"])


def make_unseen(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in (("hyperplane.csv", _hyperplane), ("solar_grid.csv", _solar)):
        if not (folder / name).is_file():
            partial = folder / f".{name}.partial"
            make(partial)
            partial.replace(folder / name)
    return folder
