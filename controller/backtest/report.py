"""The backtest's results as JSON and Markdown, with the issue's targets checked against them."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.backtest.timeline import Outcome

ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass(frozen=True)
class Results:
    setup: dict[str, Any]  # what was run: data, window, SLO, learner, ...
    outcomes: list[Outcome]
    reference_energy_kwh: float  # mean energy of one retrain: the unit of retrain cost in C_alpha
    oracle_costs: dict[float, float]  # alpha -> least C_alpha in hindsight
    cara: dict[float, Outcome]  # alpha -> CARA-style trigger tuned for that alpha
    seconds: float

    def named(self, prefix: str) -> Outcome:
        return next(o for o in self.outcomes if o.strategy.startswith(prefix))

    def cost(self, outcome: Outcome, alpha: float) -> float:
        """C_alpha = quality lost (windows) + alpha x retrains, weighting each retrain by its measured energy."""
        return outcome.loss() + alpha * outcome.energy_kwh / self.reference_energy_kwh


def _row(outcome: Outcome, daily: Outcome, compliance: float) -> str:
    share = 100 * outcome.energy_kwh / daily.energy_kwh if daily.energy_kwh else math.nan
    ok = "yes" if outcome.compliance >= compliance else "**no**"
    return (f"| {outcome.strategy} | {len(outcome.retrains)} | {outcome.energy_kwh * 1000:.4g} | {share:.1f}% | "
            f"{outcome.carbon_kg * 1000:.4g} | {outcome.compliance:.1%} | {ok} | {outcome.quality_mean:.4f} | "
            f"{outcome.quality_p10:.4f} |")


def strategy_table(results: Results) -> list[str]:
    daily, compliance = results.named("daily"), results.setup["compliance"]
    lines = ["| strategy | retrains | energy (Wh) | vs daily | carbon (gCO2e) | SLO compliance | meets SLO | "
             "mean quality | p10 quality |", "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    return lines + [_row(o, daily, compliance) for o in results.outcomes]


def cost_table(results: Results) -> list[str]:
    greenops, adwin = results.named("greenops"), results.named("ADWIN")
    header = "| alpha | greenops | ADWIN | CARA-style (same alpha) | best fixed | daily | oracle (hindsight) |"
    lines = [header, "|---:|---:|---:|---:|---:|---:|---:|"]
    for alpha in ALPHAS:
        figures = [results.cost(o, alpha) for o in (greenops, adwin, results.cara[alpha],
                                                    results.named("best fixed"), results.named("daily"))]
        lines.append(f"| {alpha:g} | " + " | ".join(f"{v:.1f}" for v in figures)
                     + f" | {results.oracle_costs[alpha]:.1f} |")
    return lines


ONLINE_BASELINES = ("daily", "weekly", "monthly", "accuracy threshold", "ADWIN")


def target_checks(results: Results) -> list[tuple[str, bool, str]]:
    """Issue 12's targets, measured: (target, met, the numbers)."""
    greenops, best_fixed, oracle = results.named("greenops"), results.named("best fixed"), results.named("oracle")
    need = results.setup["compliance"]
    meeting = [o for o in results.outcomes if o.strategy.startswith(ONLINE_BASELINES) and o.compliance >= need]
    cheapest = min(meeting, key=lambda o: o.energy_kwh, default=None)
    shift = greenops.extra.get("carbon_shift", {})
    saved, possible, fixed = ((float(shift.get(k, 0.0)) for k in ("saved", "possible", "fixed"))
                              if isinstance(shift, dict) else (0.0, 0.0, 0.0))
    ratio = greenops.energy_kwh / oracle.energy_kwh if oracle.energy_kwh else math.inf
    checks = [
        ("SLO compliance >= target", greenops.compliance >= need, f"{greenops.compliance:.1%} vs {need:.0%}"),
        ("energy <= every online baseline that meets the SLO",
         cheapest is None or greenops.energy_kwh <= cheapest.energy_kwh,
         f"{greenops.energy_kwh * 1000:.4g} Wh vs {cheapest.strategy} {cheapest.energy_kwh * 1000:.4g} Wh"
         if cheapest else "no online baseline meets the SLO"),
        ("energy <= best fixed cadence in hindsight", greenops.energy_kwh <= best_fixed.energy_kwh,
         f"{greenops.energy_kwh * 1000:.4g} vs {best_fixed.energy_kwh * 1000:.4g} Wh"),
        ("energy <= 2x the hindsight oracle", ratio <= 2, f"{ratio:.2f}x"),
        ("carbon saved by the start hour >= 80% of the best shift in hindsight (same retrain days)",
         possible <= 0 or saved >= 0.8 * possible,
         f"{100 * saved / possible:.0f}% of what was possible (the best single start hour in hindsight: "
         f"{100 * fixed / possible:.0f}%)" if possible > 0 else "no shift possible"),
    ]
    if results.setup.get("objective") == "cost":
        alpha = float(results.setup["alpha"])
        mine = results.cost(greenops, alpha)
        others = {"ADWIN": results.cost(results.named("ADWIN"), alpha),
                  "CARA-style": results.cost(results.cara[alpha], alpha) if alpha in results.cara else math.inf}
        checks.append((f"C_alpha at alpha {alpha:g} better than ADWIN and CARA-style",
                       all(mine < v for v in others.values()),
                       f"{mine:.1f} vs " + ", ".join(f"{k} {v:.1f}" for k, v in others.items())))
    search = _checks(results)
    if search:
        worst = max(float(c["objective_gap_percent"]) for c in search)
        missed = sum(not c["as_compliant"] for c in search)
        share = max(float(c["optuna_trials"]) / float(c["space"]) for c in search)
        checks.append(("Optuna within 1% of exhaustive search with <= 10% of the evaluations",
                       worst <= 1 and not missed and share <= 0.10,
                       f"worst objective gap {worst:.2f}% over {len(search)} checked reconciles, {missed} less "
                       f"compliant than the exhaustive pick; {share:.0%} of the space evaluated"))
    return checks


def _checks(results: Results) -> list[dict[str, Any]]:
    checks = results.named("greenops").extra.get("search_checks")
    return checks if isinstance(checks, list) else []


def _search_summary(results: Results) -> list[str]:
    checks = _checks(results)
    if not checks:
        return []
    optuna_s = np.mean([c["optuna_seconds"] for c in checks])
    full_s = np.mean([c["exhaustive_seconds"] for c in checks])
    trials = sorted({int(c["optuna_trials"]) for c in checks})
    return ["", f"Search: at {len(checks)} reconciles Optuna ran {'/'.join(map(str, trials))} trials over a space "
            f"of {int(checks[0]['space'])} schedules in {optuna_s:.2f} s per policy on average; the exhaustive "
            f"search took {full_s:.2f} s. Largest objective gap to the exhaustive optimum "
            f"{max(c['objective_gap_percent'] for c in checks):.2f}%; picks less compliant than the exhaustive "
            f"one: {sum(not c['as_compliant'] for c in checks)}."]


def markdown(results: Results) -> str:
    s = results.setup
    lines = [
        f"### {s['stream']}: {s['rows']} rows, {s['days']} days; "
        f"scored on {s['windows']} windows of {s['window_days']} d",
        "",
        f"SLO: quality >= {s['target']:.4f} ({s['slo_rule']}) in >= {s['compliance']:.0%} of windows. "
        f"Learner `{s['learner']}` trained on the last {s['train_days']} d; maxInterval {s['max_interval_days']} d; "
        f"greenops reconciles every {s['reconcile_days']} d. Carbon: {s['carbon']}. "
        f"Energy: measured CPU time x {s['watts_per_cpu']} W per CPU.",
        "",
        *strategy_table(results),
        "",
        f"C_alpha = quality lost (sum over windows of 1 - quality) + alpha x retrains (each weighted by its "
        f"measured energy over the mean, {results.reference_energy_kwh * 3.6e6:.2f} J):",
        "",
        *cost_table(results),
        *_search_summary(results),
        "",
        "| target | met | measured |",
        "|---|---|---|",
        *(f"| {name} | {'yes' if met else '**no**'} | {numbers} |" for name, met, numbers in target_checks(results)),
        "",
        f"Wall time {results.seconds:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def as_json(results: Results) -> dict[str, Any]:
    def outcome(o: Outcome) -> dict[str, Any]:
        return {"strategy": o.strategy, "retrains": len(o.retrains), "energy_kwh": o.energy_kwh,
                "carbon_kg": o.carbon_kg, "compliance": o.compliance, "quality_mean": o.quality_mean,
                "quality_p10": o.quality_p10, "loss_windows": o.loss(),
                "c_alpha": {str(a): results.cost(o, a) for a in ALPHAS},
                "retrain_days": [r.day for r in o.retrains], "retrain_hours": [r.hour for r in o.retrains],
                "window_quality": [_finite(round(float(q), 6)) for q in o.window_quality], **o.extra}

    return {"setup": results.setup, "reference_energy_kwh": results.reference_energy_kwh,
            "alphas": list(ALPHAS), "strategies": [outcome(o) for o in results.outcomes],
            "cara_by_alpha": {str(a): outcome(o) for a, o in results.cara.items()},
            "oracle_c_alpha": {str(a): _finite(c) for a, c in results.oracle_costs.items()},
            "targets": [{"target": n, "met": m, "measured": v} for n, m, v in target_checks(results)],
            "seconds": results.seconds}
