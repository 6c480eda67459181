"""Optuna against exhaustive search on synthetic policies: how often does the tuned pick miss the optimum?

Run: .venv/bin/python bench/search_quality.py [--cases 100]
Each case draws a decay rate, an SLO target, a maxInterval and how far back shadow evaluations go,
builds a synthetic history with a day/night carbon cycle, and compares `tune` (a tenth of the space)
with `exhaustive` on the objective (energy plus the carbon tie-break).
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.decision import percent_change
from controller.forecast.costmodel import fit_cost_model
from controller.optimize.choose import objective_value
from controller.optimize.decide import horizon_for, horizon_start
from controller.optimize.study import carbon_ceiling, exhaustive, tune
from tests.test_decide import make_history, make_policy
from tests.test_tuning import hourly, night_is_green


def gap_percent(case: int) -> tuple[float, int, int, float, float]:
    rng = np.random.default_rng(case)
    policy = make_policy(schedule__maxInterval=f"{int(rng.choice([14, 30, 60, 180]))}d",
                         slo__target=float(rng.uniform(0.88, 0.93)))
    synthetic = make_history(float(rng.uniform(0.0005, 0.01)), seed=case, shadow_days=int(rng.choice([14, 30, 60])))
    history = replace(synthetic, carbon_samples=hourly(28, night_is_green))
    model = fit_cost_model(history, policy.slo_target, policy.slo_window, 7, 250.0)
    start, horizon = horizon_start(history, ZoneInfo("Etc/UTC")), horizon_for(policy)
    full = exhaustive(policy, [model], start, horizon)
    searched = tune(policy, [model], start, horizon, 7, 0)
    ceiling = carbon_ceiling([model])
    found, best = objective_value(searched.best, ceiling), objective_value(full.best, ceiling)
    return percent_change(best, found), searched.trials, full.space, searched.seconds, full.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    args = parser.parse_args()
    began = time.perf_counter()
    results = [gap_percent(case) for case in range(args.cases)]
    gaps = [r[0] for r in results]
    print(f"{args.cases} synthetic policies; Optuna evaluated {np.mean([r[1] / r[2] for r in results]):.1%} of "
          f"the space on average ({np.mean([r[3] for r in results]):.2f} s vs {np.mean([r[4] for r in results]):.2f} s "
          "exhaustive)")
    print(f"objective gap to the exhaustive optimum: median {np.median(gaps):.2f}%, worst {max(gaps):.2f}%, "
          f"cases over 1%: {sum(g > 1 for g in gaps)}")
    print(f"wall time {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
