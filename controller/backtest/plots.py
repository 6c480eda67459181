"""PNG plots of a backtest. The only matplotlib import (headless Agg backend)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from controller.backtest.report import Results

SHOWN = ("greenops", "daily", "ADWIN", "oracle")


def quality_over_time(results: Results, path: Path) -> None:
    """Per-window quality with each strategy's retrains marked under it, and the SLO line."""
    shown = [o for o in results.outcomes if o.strategy.startswith(SHOWN) and "noon" not in o.strategy]
    figure, axis = plt.subplots(figsize=(12, 5))
    floor = min(float(np.nanmin(o.window_quality)) for o in shown)
    for offset, outcome in enumerate(shown):
        line, = axis.plot(outcome.window_quality, linewidth=0.8, alpha=0.8,
                          label=f"{outcome.strategy} ({len(outcome.retrains)} retrains)")
        windows = [(r.day - results.setup["first_day"]) // results.setup["window_days"] for r in outcome.retrains]
        axis.plot(windows, np.full(len(windows), floor - 0.02 * (offset + 1)), "|", color=line.get_color(),
                  markersize=6)
    axis.axhline(results.setup["target"], color="black", linestyle="--", linewidth=1,
                 label=f"SLO target {results.setup['target']:.3f}")
    _finish(figure, axis, path, f"evaluation window ({results.setup['window_days']} d each)", "quality (accuracy)",
            f"{results.setup['stream']}: quality per window; ticks below = retrains")


def energy_vs_compliance(results: Results, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(8, 5.5))
    for outcome in [*results.outcomes, *results.cara.values()]:
        energy_wh = max(outcome.energy_kwh * 1000, 1e-6)
        axis.scatter(energy_wh, outcome.compliance, s=30, marker="*" if outcome.strategy == "greenops" else "o")
        axis.annotate(outcome.strategy, (energy_wh, outcome.compliance), fontsize=7, xytext=(4, 2),
                      textcoords="offset points")
    axis.axhline(results.setup["compliance"], color="black", linestyle="--", linewidth=1, label="required compliance")
    axis.set_xscale("log")
    _finish(figure, axis, path, "retraining energy over the run (Wh, log scale)",
            "SLO compliance (share of windows >= target)", f"{results.setup['stream']}: energy vs SLO compliance")


def _finish(figure: Figure, axis: Axes, path: Path, x_label: str, y_label: str, title: str) -> None:
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)
