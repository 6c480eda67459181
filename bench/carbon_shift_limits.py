"""How much of the hindsight-best start-hour shift each way of picking a start hour can get, per carbon series.

Run: .venv/bin/python bench/carbon_shift_limits.py [--data-dir ../shared/data]
Issue 12 asks that the start hour save >= 80% of what the greenest allowed hour of each retrain day would
have saved against noon (hindsight). This measures, on every day of each series (every day a retrain day,
all 24 hours allowed), what that share is for: the best single start hour chosen in hindsight (the limit of
any cron with one start hour), the greenest hour of the day before (a persistence forecast, the simplest
day-ahead rule), and the greenest hour of the same weekday a week before. It says whether the target can be
reached without a day-ahead carbon forecast.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from streams import make_unseen  # noqa: E402

from controller.backtest.data import load_carbon  # noqa: E402

NOON = 12
SERIES = {  # name -> (file, time column, value column); the data folder is filled in by main()
    "GB 2021-2024 (../shared)": ("carbon_intensity_gb_2021_2024_hourly.csv.gz", "datetime_utc",
                                 "ci_direct_gco2eq_per_kwh"),
    "solar-heavy grid (bench/streams.py, not in ../shared)": ("solar_grid.csv", "time", "intensity"),
}


def shares(hourly: np.ndarray) -> dict[str, float]:
    """Share of the hindsight-best shift against noon that each rule gets, over every whole day."""
    days = hourly[: len(hourly) // 24 * 24].reshape(-1, 24)
    possible = (days[:, NOON] - days.min(axis=1)).sum()
    by_hour = (days[:, NOON, None] - days).sum(axis=0)

    def following(lag: int) -> float:
        picked = days[:-lag].argmin(axis=1)
        later = days[lag:]
        return float((later[:, NOON] - later[np.arange(len(later)), picked]).sum()
                     / (later[:, NOON] - later.min(axis=1)).sum())

    return {"days": float(len(days)), "fixed": float(by_hour.max() / possible), "hour": float(by_hour.argmax()),
            "yesterday": following(1), "last_week": following(7)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=PROJECT.parent / "shared" / "data")
    args = parser.parse_args()
    unseen = make_unseen(PROJECT / "bench" / "results" / "unseen")
    folders = {"GB 2021-2024 (../shared)": args.data_dir}
    print("| carbon series | days | best single start hour (hindsight) | yesterday's greenest hour | "
          "last week's greenest hour |")
    print("|---|---:|---|---:|---:|")
    for name, (file, time_column, value_column) in SERIES.items():
        path = folders.get(name, unseen) / file
        if not path.is_file():
            print(f"{path}: missing; give --data-dir", file=sys.stderr)
            return 1
        hourly, _ = load_carbon(path, time_column, value_column)
        f = shares(hourly)
        print(f"| {name} | {f['days']:.0f} | {f['fixed']:.0%} ({f['hour']:02.0f}:00 UTC) | {f['yesterday']:.0%} | "
              f"{f['last_week']:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
