"""Merge request title and body: the evidence a reviewer needs, in Markdown."""

import json
import math
from dataclasses import asdict
from datetime import timedelta

from controller.decision import ESTIMATE_NOTE, Decision, Evidence, Forecast
from controller.optimize.candidates import describe
from controller.policy.durations import format_duration
from controller.policy.model import Policy

MACHINE_BLOCK = "greenops-decision"


def title(policy: Policy, decision: Decision) -> str:
    change = decision.energy_change_percent
    estimated = ", estimated" if decision.evidence.energy_estimated else ""
    current, proposed = decision.current, decision.proposed
    also = []
    if proposed.promotion_min_gain != current.promotion_min_gain:
        also.append(f"promote at +{proposed.promotion_min_gain:g}")
    if proposed.training_window_days != current.training_window_days:
        also.append(f"train on {_window(proposed)}")
    return (f"greenops({policy.name}): retrain {describe(proposed.schedule)}{''.join(f', {a}' for a in also)} "
            f"({change:+.0f}% energy{estimated})")


def _window(forecast: Forecast) -> str:
    days = forecast.training_window_days
    return "all data" if days is None else format_duration(timedelta(days=days))


def _row(label: str, current: str, proposed: str) -> str:
    return f"| {label} | {current} | {proposed} |"


def _table(policy: Policy, current: Forecast, proposed: Forecast, estimated: bool) -> list[str]:
    period = format_duration(policy.budget_period)
    estimate = f" ({ESTIMATE_NOTE})" if estimated else ""
    figures = [
        ("Schedule", f"`{current.schedule}`", f"`{proposed.schedule}`"),
        ("In words", describe(current.schedule), describe(proposed.schedule)),
        ("Retrains per month", f"{current.retrains_per_month:.1f}", f"{proposed.retrains_per_month:.1f}"),
        ("Promotion gate (minimum gain to deploy)", f"{current.promotion_min_gain:g}",
         f"{proposed.promotion_min_gain:g}"),
        ("Deploys per month", f"{current.deploys_per_month:.1f}", f"{proposed.deploys_per_month:.1f}"),
        *([("Training window", _window(current), _window(proposed))] if policy.training.window else []),
        (f"Predicted {policy.slo_metric} mean", f"{current.quality_mean:.3f}", f"{proposed.quality_mean:.3f}"),
        (f"Predicted {policy.slo_metric} p10", f"{current.quality_p10:.3f}", f"{proposed.quality_p10:.3f}"),
        (f"SLO compliance (>= {policy.slo_target:g}; need {policy.slo_compliance:.0%})",
         f"{current.compliance:.1%} (lower bound {current.compliance_lower:.1%})",
         f"{proposed.compliance:.1%} (lower bound {proposed.compliance_lower:.1%})"),
        (f"Energy per {period}{estimate} (budget {policy.energy_budget_kwh:g} kWh)",
         f"{current.energy_kwh_per_period:.1f} kWh", f"{proposed.energy_kwh_per_period:.1f} kWh"),
        (f"Carbon per {period}{estimate}", f"{current.carbon_kg_per_period:.2f} kgCO2e",
         f"{proposed.carbon_kg_per_period:.2f} kgCO2e"),
    ]
    return ["| | Current | Proposed |", "|---|---|---|", *(_row(*f) for f in figures)]


def body(policy: Policy, decision: Decision) -> str:
    """Summary table, why, evidence, risks, how to reject, and a hidden machine-readable block."""
    e = decision.evidence
    lines = [
        f"greenops proposes a new retraining schedule for **{policy.name}** "
        f"(model `{policy.mlflow_model}`, policy `{policy.source_file}`).",
        "",
        *_table(policy, decision.current, decision.proposed, decision.evidence.energy_estimated),
        "",
        f"**Why:** {decision.reason}.",
    ]
    if decision.budget_note:
        lines += ["", f"**Budget:** {decision.budget_note}"]
    lines += [
        "",
        "### Evidence",
        f"- Telemetry: {e.source}, samples from {e.first_sample} to {e.last_sample}.",
        f"- {e.trainings} training runs (mean {e.energy_per_retrain_kwh:.3f} kWh per retrain); "
        f"{e.evaluations} production evaluations covering model ages up to {e.max_age_days:.1f} days.",
        f"- Energy per deploy: {_deploy_energy(e)}.",
        *([f"- {note[0].upper()}{note[1:]}." for note in (e.window_note, e.drift_note) if note]),
        f"- Carbon intensity {e.carbon_intensity_g_per_kwh:.0f} gCO2e/kWh on average, by {e.carbon_resolution}"
        + (". Energy is an **estimate** from CPU and memory usage (Cloud Carbon Footprint coefficients), not a "
           "measurement." if e.energy_estimated else "."),
        (f"- Quality-vs-age model: {e.prior}." if e.prior else
         f"- Quality-vs-age model (isotonic regression): cross-validated MAE {e.cv_mae:.4f}."),
        *([f"- Observed SLO compliance over the last {e.observed_windows} windows: {e.observed_compliance:.1%} "
           f"(SLO {policy.slo_compliance:.0%})."] if e.observed_compliance is not None else []),
        f"- Optuna: {e.trials} trials (seed {e.seed}) over {e.search_space} points (cadence, start hour, promotion "
        f"gate, training window) within minInterval {format_duration(policy.min_interval)} / maxInterval "
        f"{format_duration(policy.max_interval)}; "
        f"simulated over {e.horizon_days} days.",
        "",
        "### Risks and confidence",
        "- Compliance is predicted from bootstrap replicates; the lower bound is their 10th percentile.",
        f"- Model ages beyond {e.max_age_days:.1f} days were never observed and count as SLO misses.",
        "",
        "### How to reject or pin",
        "Close this merge request to decline, or set `spec.proposal.mode: observe` in the policy to pin the "
        "current schedule. Edit the policy, not the generated manifests.",
        "",
        f"<!-- {MACHINE_BLOCK} {json.dumps(machine_block(decision), sort_keys=True)} -->",
    ]
    return "\n".join(lines)


def _deploy_energy(e: Evidence) -> str:
    if e.deploy_energy_samples:
        return f"{e.energy_per_deploy_kwh:.3f} kWh, the mean of {e.deploy_energy_samples} logged deploys"
    if e.energy_per_deploy_kwh:
        return f"{e.energy_per_deploy_kwh:.3f} kWh, as the policy declares (spec.promotion.deployEnergyKWh)"
    return ("not measured, counted as 0 kWh, so the promotion gate is left as it is (log deploy_energy_kwh on "
            "training runs, or set spec.promotion.deployEnergyKWh)")


def _finite(forecast: Forecast) -> dict[str, object]:
    """JSON has no NaN/inf: unknown figures become null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(forecast).items()}


def machine_block(decision: Decision) -> dict[str, object]:
    return {"policy": decision.policy, "current": _finite(decision.current), "proposed": _finite(decision.proposed),
            "energy_estimated": decision.evidence.energy_estimated}
