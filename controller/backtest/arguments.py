"""The `greenops backtest` command line. Imports nothing heavy: --help stays instant."""

import argparse
from datetime import date
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Replay a labelled data stream through greenops *online* (at each reconcile it refits its cost model and
retunes its schedule on the past only) and through the baselines teams use instead: daily, weekly and
monthly retraining, the best fixed cadence chosen in hindsight, an accuracy-threshold trigger, an ADWIN
drift trigger (river), a CARA-style cost-aware trigger, and the hindsight-optimal oracle. Every
strategy retrains the same real scikit-learn models; a retrain's energy is its measured CPU time times a
power per CPU, its carbon the grid intensity at its start hour. Writes results.md, results.json,
quality.png and energy_vs_compliance.png to --output-dir and prints the Markdown table.

Grain: one day. A retrain on day d learns from the --train-window days before d and serves from day
d on; its start hour only sets its carbon. Exit 0 when the backtest ran (whether greenops met its
targets or not), 1 on unusable input."""

EXAMPLE = """\
example:
  greenops backtest --stream elec2.csv.gz --label class --rows-per-day 48 \\
      --carbon carbon_intensity_gb_2021_2024_hourly.csv.gz --output-dir bench/results/elec2
"""


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from err
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is outside (0, 1]")
    return value


def _slo(text: str) -> str:
    if text != "auto":
        _fraction(text)
    return text


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from err
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return value


def add_backtest_parser(commands: Any, bounded_int: Any) -> argparse.ArgumentParser:
    """Register `backtest` on the CLI's subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "backtest", help="replay a data stream: greenops against fixed cadences, triggers and the oracle",
        description=DESCRIPTION, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("the stream")
    data.add_argument("--stream", type=Path, required=True, metavar="FILE.csv",
                      help="rows in time order (CSV, gzip fine); every numeric column but the label and time "
                      "column is a feature")
    data.add_argument("--label", required=True, metavar="COLUMN", help="the column to predict")
    axis = data.add_mutually_exclusive_group(required=True)
    axis.add_argument("--time-column", metavar="NAME", help="timestamp column (ISO 8601)")
    axis.add_argument("--rows-per-day", type=bounded_int(1, 1_000_000), metavar="N",
                      help="rows are consecutive, N per day")
    data.add_argument("--start-date", type=date.fromisoformat, default=date(2021, 1, 1),
                      help="calendar date of the first row with --rows-per-day (default 2021-01-01, the first "
                      "day of the shared GB carbon series)")
    data.add_argument("--days", type=bounded_int(1, 10_000_000), help="use only the first N days (a slice)")
    carbon = parser.add_argument_group("carbon intensity")
    carbon.add_argument("--carbon", type=Path, metavar="FILE.csv", help="hourly grid intensity; aligned on the "
                        "stream's first day and repeated when the stream is longer")
    carbon.add_argument("--carbon-time-column", default="datetime_utc", help="(default datetime_utc)")
    carbon.add_argument("--carbon-column", default="ci_direct_gco2eq_per_kwh",
                        help="gCO2e/kWh column (default ci_direct_gco2eq_per_kwh)")
    carbon.add_argument("--carbon-constant", type=_positive, default=250.0,
                        help="gCO2e/kWh used without --carbon (default 250)")
    slo = parser.add_argument_group("SLO, budget and bounds (flags override --policy)")
    slo.add_argument("--policy", type=Path, metavar="FILE", help="take SLO, budget, bounds and hysteresis from "
                     "this RetrainingPolicy")
    slo.add_argument("--slo", type=_slo, help="quality target, or 'auto': the 10th percentile of daily "
                     "retraining's per-window quality, with compliance 0.90 (default auto without --policy)")
    slo.add_argument("--compliance", type=_fraction, help="share of windows that must meet the target")
    slo.add_argument("--window", help="evaluation window, whole days (default: enough days for 30 rows)")
    slo.add_argument("--max-interval", help="longest time between retrains for every strategy "
                     "(default: the larger of 30d and 6 windows)")
    slo.add_argument("--allowed-hours", nargs="+", metavar="HOURS", help="UTC hours when greenops may start "
                     "a retrain, e.g. 0-6 20-23 (default: any hour)")
    slo.add_argument("--energy-budget", type=_positive, metavar="KWH", help="energy budget per 30 days "
                     "(default: unlimited)")
    slo.add_argument("--objective", choices=("slo", "cost"), help="slo: least energy that keeps the SLO (default); "
                     "cost: least C_alpha, as spec.objective of a policy")
    slo.add_argument("--alpha", type=_positive, help="with --objective cost: one retrain's worth in windows of lost "
                     "quality")
    run = parser.add_argument_group("the replay")
    run.add_argument("--learner", choices=("tree", "forest", "hgb", "logistic"), default="tree",
                     help="scikit-learn model retrained by every strategy (default tree: a depth-8 decision tree, "
                     "fast enough to retrain every day of a 50-year stream; forest: 20 trees, about 10x slower)")
    run.add_argument("--train-window", help="days of rows each retrain learns from (default: the larger of 28d "
                     "and 1,000 rows)")
    run.add_argument("--reconcile-every", help="greenops reconcile period: how often the rule is retuned; the gate "
                     "decides at every fire in between (default: the larger of 7d and three windows)")
    run.add_argument("--seed", type=bounded_int(0, 2**32 - 1), default=42, help="random seed (default 42)")
    run.add_argument("--trials", type=bounded_int(0, 10_000), default=0,
                     help="Optuna trials per reconcile (default 0: a tenth of the search space)")
    run.add_argument("--check-search-every", type=bounded_int(0, 1_000_000), default=25, metavar="N",
                     help="also run the exhaustive search every N reconciles and report the gap (0: never; "
                     "default 25)")
    run.add_argument("--output-dir", type=Path, default=Path("backtest-results"),
                     help="where results.md, results.json and the PNGs go (default backtest-results)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars on stderr")
    return parser
