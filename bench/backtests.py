"""The backtests recorded in BENCHMARKS.md: `greenops backtest` on the shared real data sets.

Run: .venv/bin/python bench/backtests.py [--data-dir ../shared/data] [--only elec2]
Each run writes results.md, results.json and two PNGs to bench/results/<name>/ and prints the table.
The data are read from --data-dir (never copied into the project).
"""

import argparse
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CARBON = "carbon_intensity_gb_2021_2024_hourly.csv.gz"

RUNS: dict[str, list[str]] = {
    # Elec2: 30-minute rows, 48 a day; the label is UP/DOWN.
    "elec2": ["--stream", "{data}/elec2.csv.gz", "--label", "class", "--rows-per-day", "48"],
    # The same with slack in the SLO (80% of windows): how greenops behaves when the SLO is not at the edge.
    "elec2-c80": ["--stream", "{data}/elec2.csv.gz", "--label", "class", "--rows-per-day", "48",
                  "--compliance", "0.8"],
    # NOAA weather: one row a day for 50 years; the label is rain (0/1).
    "noaa": ["--stream", "{data}/noaa_weather.csv.gz", "--label", "rain", "--rows-per-day", "1"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=PROJECT.parent / "shared" / "data")
    parser.add_argument("--only", choices=sorted(RUNS), action="append", help="run only these (repeatable)")
    args = parser.parse_args()
    if not (args.data_dir / CARBON).is_file():
        print(f"{args.data_dir}: the shared data sets are not there; give --data-dir", file=sys.stderr)
        return 1
    for name in args.only or RUNS:
        flags = [f.format(data=args.data_dir) for f in RUNS[name]]
        command = [str(Path(sys.executable).parent / "greenops"), "backtest", *flags,
                   "--carbon", str(args.data_dir / CARBON), "--output-dir", str(PROJECT / "bench" / "results" / name)]
        shown = " ".join(["greenops", *command[1:]]).replace(str(args.data_dir), "../shared/data")
        print("$ " + shown.replace(str(PROJECT) + "/", ""), flush=True)
        done = subprocess.run(command, check=False)
        if done.returncode:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
