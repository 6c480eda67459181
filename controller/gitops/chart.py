"""A chart the forge renders natively: Mermaid's xychart of predicted quality, current vs proposed.

GitLab and GitHub both render ```mermaid blocks in merge-request descriptions, so the chart needs
no image hosting and stays reviewable as text.
"""

import math

from controller.decision import Forecast


def _values(series: tuple[float, ...], floor: float) -> str:
    """Mermaid lines cannot have gaps: an unknown week (a model older than any seen) sits on the floor."""
    return ", ".join(f"{(v if math.isfinite(v) else floor):.4f}" for v in series)


def quality_chart(metric: str, target: float, current: Forecast, proposed: Forecast) -> list[str]:
    """Markdown lines: the predicted weekly mean of ``metric`` for both schedules and the SLO target."""
    weeks = min(len(current.quality_by_week), len(proposed.quality_by_week))
    if weeks == 0:
        return []
    known = [v for v in (*current.quality_by_week[:weeks], *proposed.quality_by_week[:weeks]) if math.isfinite(v)]
    low = math.floor(min([*known, target]) * 100 - 1) / 100
    high = math.ceil(max([*known, target]) * 100 + 1) / 100
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "Predicted {metric} per week: current, proposed, SLO target"',
        f'    x-axis "week" [{", ".join(str(w + 1) for w in range(weeks))}]',
        f'    y-axis "{metric}" {low:.2f} --> {high:.2f}',
        f"    line [{_values(current.quality_by_week[:weeks], low)}]",
        f"    line [{_values(proposed.quality_by_week[:weeks], low)}]",
        f"    line [{_values((target,) * weeks, low)}]",
        "```",
        f"_Lines: first the current schedule, then the proposed one, then the SLO target {target:g}. A week "
        "in which the serving model would be older than any model observed sits on the axis floor._",
    ]
