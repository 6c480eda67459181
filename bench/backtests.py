"""The backtests recorded in BENCHMARKS.md: `greenops backtest` over data sets x seeds x learners.

Run: .venv/bin/python bench/backtests.py [--data-dir ../shared/data] [--only elec2] [--jobs 2] [--sweep]
Every (data set, learner, seed) writes bench/results/<run>/<learner>-<seed>/ and the summary, median and
range over seeds and learners, goes to bench/results/summary.md (and stdout). Besides the shared real data
sets it replays a stream and a carbon series that are not in ../shared, made by bench/streams.py (a
river Hyperplane stream with gradual drift, a solar-heavy grid), so nothing is tuned for the shared files.
--sweep adds `--objective cost` runs at every alpha of the C_alpha sweep (one seed, the tree learner, a
reconcile every 28 days).
"""

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from streams import make_unseen

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "bench" / "results"
CARBON = "carbon_intensity_gb_2021_2024_hourly.csv.gz"
SEEDS = (42, 7, 2026)
LEARNERS = ("tree", "logistic")
ALPHAS = ("0.01", "0.03", "0.1", "0.3", "1", "3", "10")
# elec2-c80 differs from elec2 only by the SLO, which C_alpha ignores. Daily windows reconcile every 28 d in the
# sweep; NOAA's 30-day windows keep their default (every 3 windows). Fewer trials than the main runs: 7 runs each.
SWEPT = {"elec2": ["--reconcile-every", "28d"], "noaa": [], "hyperplane-solar": ["--reconcile-every", "28d"]}
SWEEP_TRIALS = "40"

RUNS: dict[str, list[str]] = {
    # Elec2: 30-minute rows, 48 a day; the label is UP/DOWN.
    "elec2": ["--stream", "{data}/elec2.csv.gz", "--label", "class", "--rows-per-day", "48", "--carbon", "{carbon}"],
    # The same with slack in the SLO (80% of windows).
    "elec2-c80": ["--stream", "{data}/elec2.csv.gz", "--label", "class", "--rows-per-day", "48", "--compliance",
                  "0.8", "--carbon", "{carbon}"],
    # NOAA weather: one row a day for 50 years; the label is rain (0/1).
    "noaa": ["--stream", "{data}/noaa_weather.csv.gz", "--label", "rain", "--rows-per-day", "1", "--carbon",
             "{carbon}"],
    # Not in ../shared: gradual drift, 100 rows a day, a solar-heavy grid (bench/streams.py).
    "hyperplane-solar": ["--stream", "{unseen}/hyperplane.csv", "--label", "label", "--rows-per-day", "100",
                         "--carbon", "{unseen}/solar_grid.csv", "--carbon-column", "intensity",
                         "--carbon-time-column", "time"],
}


def _command(name: str, learner: str, seed: int, paths: dict[str, Path], extra: list[str], out: Path) -> list[str]:
    flags = [f.format(data=paths["data"], carbon=paths["data"] / CARBON, unseen=paths["unseen"]) for f in RUNS[name]]
    return [str(Path(sys.executable).parent / "greenops"), "backtest", "--no-progress", *flags, "--learner", learner,
            "--seed", str(seed), "--trials", "80", "--check-search-every", "0", *extra, "--output-dir", str(out)]


def _run(command: list[str], out: Path, data: Path, resume: bool) -> dict[str, Any] | None:
    if resume and (out / "results.json").is_file():
        return dict(json.loads((out / "results.json").read_text()))
    shown = " ".join(["greenops", *command[1:]]).replace(str(data), "../shared/data").replace(str(PROJECT) + "/", "")
    print(f"$ {shown}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        print(done.stderr, file=sys.stderr)
        return None
    return dict(json.loads((out / "results.json").read_text()))


def _figures(result: dict[str, Any]) -> dict[str, float]:
    named = {s["strategy"]: s for s in result["strategies"]}
    greenops = named["greenops"]
    oracle = next(s for n, s in named.items() if n.startswith("oracle"))
    best = next(s for n, s in named.items() if n.startswith("best fixed"))
    shift = greenops.get("carbon_shift", {})
    need = result["setup"]["compliance"]
    baselines = [s for n, s in named.items() if n.startswith(("daily", "weekly", "monthly", "accuracy", "ADWIN"))
                 and s["compliance"] >= need]
    cheapest = min((s["energy_kwh"] for s in baselines), default=float("nan"))
    return {"compliance": greenops["compliance"], "need": need, "retrains": greenops["retrains"],
            "vs_best_fixed": greenops["energy_kwh"] / best["energy_kwh"],
            "vs_cheapest_online": greenops["energy_kwh"] / cheapest,
            "vs_oracle": greenops["energy_kwh"] / oracle["energy_kwh"],
            "best_fixed_retrains": best["retrains"], "oracle_retrains": oracle["retrains"],
            "carbon_share": shift["saved"] / shift["possible"] if shift.get("possible") else float("nan"),
            "fixed_hour_share": shift.get("fixed", float("nan")) / shift["possible"] if shift.get("possible")
            else float("nan"),
            "met": float(greenops["compliance"] >= need)}


def _spread(values: list[float], percent: bool = False) -> str:
    shown = [100 * v if percent else v for v in values]
    unit = "%" if percent else ""
    return f"{statistics.median(shown):.3g}{unit} [{min(shown):.3g}-{max(shown):.3g}]"


def summary(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| data set | runs | SLO met | compliance (need) | retrains | energy / best fixed | energy / cheapest "
             "online that meets the SLO | energy / oracle | carbon: share of the best shift | best single start hour's "
             "share (hindsight) |",
             "|---|---:|---:|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        if not runs:
            continue
        figures = [_figures(r) for r in runs]
        column = {key: [f[key] for f in figures] for key in figures[0]}
        retrains = (f"{_spread(column['retrains'])} (best fixed {_spread(column['best_fixed_retrains'])}, "
                    f"oracle {_spread(column['oracle_retrains'])})")
        lines.append(f"| {name} | {len(runs)} | {int(sum(column['met']))}/{len(runs)} | "
                     f"{_spread(column['compliance'], True)} ({figures[0]['need']:.0%}) | {retrains} | "
                     f"{_spread(column['vs_best_fixed'])} | {_spread(column['vs_cheapest_online'])} | "
                     f"{_spread(column['vs_oracle'])} | {_spread(column['carbon_share'], True)} | "
                     f"{_spread(column['fixed_hour_share'], True)} |")
    return "\n".join(lines) + "\n\nMedian [min-max] over seeds and learners.\n"


def sweep_summary(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| data set | alpha | C_alpha greenops (objective cost) | ADWIN | CARA-style | better than both |",
             "|---|---:|---:|---:|---:|---|"]
    for name, runs in results.items():
        wins = 0
        for result in sorted(runs, key=lambda r: float(r["setup"]["alpha"])):
            alpha = float(result["setup"]["alpha"])
            named = {s["strategy"]: s for s in result["strategies"]}
            cara = next(o for k, o in result["cara_by_alpha"].items() if float(k) == alpha)
            mine, adwin, rival = (_c_alpha(result, o, alpha) for o in (named["greenops"], named["ADWIN drift trigger"],
                                                                        cara))
            better = mine < adwin and mine < rival
            wins += better
            lines.append(f"| {name} | {alpha:g} | {mine:.1f} | {adwin:.1f} | {rival:.1f} | "
                         f"{'yes' if better else '**no**'} |")
        if runs:
            lines.append(f"| {name} | | | | | {wins} of {len(runs)} alphas |")
    return "\n".join(lines) + "\n"


def _c_alpha(result: dict[str, Any], outcome: dict[str, Any], alpha: float) -> float:
    return float(outcome["loss_windows"]) + alpha * float(outcome["energy_kwh"]) / float(result["reference_energy_kwh"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=PROJECT.parent / "shared" / "data")
    parser.add_argument("--only", choices=sorted(RUNS), action="append", help="run only these (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="backtests run at once (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--learners", nargs="+", choices=LEARNERS, default=list(LEARNERS))
    parser.add_argument("--sweep", action="store_true", help="also the objective-cost runs at every alpha")
    parser.add_argument("--resume", action="store_true", help="reuse the runs that already wrote results.json")
    args = parser.parse_args()
    if not (args.data_dir / CARBON).is_file():
        print(f"{args.data_dir}: the shared data sets are not there; give --data-dir", file=sys.stderr)
        return 1
    paths = {"data": args.data_dir, "unseen": make_unseen(RESULTS / "unseen")}
    names = args.only or list(RUNS)
    jobs: list[tuple[str, str, int, list[str], Path]] = [
        (name, learner, seed, [], RESULTS / name / f"{learner}-{seed}")
        for name in names for learner in args.learners for seed in args.seeds]
    if args.sweep:
        jobs += [(name, "tree", 42, ["--objective", "cost", "--alpha", alpha, "--trials", SWEEP_TRIALS, *SWEPT[name]],
                  RESULTS / f"{name}-cost" / f"alpha-{alpha}") for name in names if name in SWEPT for alpha in ALPHAS]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = list(pool.map(lambda j: (j, _run(_command(j[0], j[1], j[2], paths, j[3], j[4]), j[4], args.data_dir,
                                                     args.resume)),
                             jobs))
    plain: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    swept: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for (name, _, _, extra, _), result in done:
        if result is not None:
            (swept if extra else plain)[name].append(result)
    text = summary(plain) + ("\n" + sweep_summary(swept) if args.sweep else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.md").write_text(text)
    print(text)
    return 0 if all(result is not None for _, result in done) else 1


if __name__ == "__main__":
    sys.exit(main())
