"""Merge request title and body: the evidence a reviewer needs, in Markdown."""

from collections.abc import Sequence

from controller.decision import ESTIMATE_NOTE, Decision, Evidence, Forecast, percent_change
from controller.forecast.costmodel import CURVE_REPLICATES
from controller.gitops.block import hidden_block, removal_block
from controller.gitops.chart import quality_chart
from controller.gitops.forge import RETRY_LABEL
from controller.optimize.candidates import describe
from controller.optimize.simulate import PATHS_PER_REPLICATE
from controller.policy.durations import format_days, format_duration
from controller.policy.model import Policy

MAX_BODY_BYTES = 60_000  # under GitLab's 64 KiB per push option and GitHub's 65,536-character body
MEDIUM_MARGIN = 0.02
MEDIUM_EVALUATIONS = 60


def title(policy: Policy, decision: Decision) -> str:
    change = decision.energy_change_percent
    estimated = ", estimated" if decision.evidence.energy_estimated else ""
    current, proposed = decision.current, decision.proposed
    also = []
    if proposed.promotion_min_gain != current.promotion_min_gain:
        also.append(f"promote at +{proposed.promotion_min_gain:g}")
    if proposed.training_window_days != current.training_window_days:
        also.append(f"train on {_window(proposed)}")
    return (f"greenops({policy.name}): {plan_words(proposed)}{''.join(f', {a}' for a in also)} "
            f"({change:+.0f}% energy{estimated})")


def plan_words(forecast: Forecast) -> str:
    """``retrain daily at 02:00`` for a plain cron; ``check daily at 02:00, retrain when it pays off (~4/month)``."""
    if not forecast.rule.gated:
        return f"retrain {describe(forecast.schedule)}"
    return f"check {describe(forecast.schedule)}, retrain when it pays off (~{forecast.retrains_per_month:.1f}/month)"


def _retrains(forecast: Forecast) -> str:
    low, high = forecast.retrains_per_month_range
    if not forecast.rule.gated or abs(high - low) < 0.05:
        return f"{forecast.retrains_per_month:.1f}"
    return f"{forecast.retrains_per_month:.1f} ({low:.1f}-{high:.1f})"


def _rule(forecast: Forecast) -> str:
    return forecast.rule.describe() if forecast.rule.gated else "retrain at every fire (plain cron)"


def _window(forecast: Forecast) -> str:
    days = forecast.training_window_days
    return "all data" if days is None else format_days(days)


def _row(label: str, current: str, proposed: str) -> str:
    return f"| {label} | {current} | {proposed} |"


def _table(policy: Policy, current: Forecast, proposed: Forecast, estimated: bool) -> list[str]:
    period = format_duration(policy.budget_period)
    estimate = f" ({ESTIMATE_NOTE})" if estimated else ""
    figures = [
        ("Schedule", f"`{current.schedule}`", f"`{proposed.schedule}`"),
        ("In words", describe(current.schedule), describe(proposed.schedule)),
        ("At each fire", _rule(current), _rule(proposed)),
        ("Checks per month (fires)", f"{current.checks_per_month:.1f}", f"{proposed.checks_per_month:.1f}"),
        ("Retrains per month (10th-90th percentile)", _retrains(current), _retrains(proposed)),
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


def _alternatives(policy: Policy, decision: Decision) -> list[str]:
    """The runners-up the search considered, so a reviewer can check what the pick was compared with."""
    if not decision.alternatives:
        return []
    period = format_duration(policy.budget_period)
    rows = [f"| {plan_words(f)} | `{f.schedule}` | {_retrains(f)} | {f.compliance:.1%} ({f.compliance_lower:.1%}) | "
            f"{f.energy_kwh_per_period:.1f} | {f.carbon_kg_per_period:.2f} |" for f in decision.alternatives]
    return ["", "**Alternatives considered** (the best of other cadences and rules, best first):", "",
            f"| Alternative | Schedule | Retrains/month | SLO compliance (lower bound) | kWh per {period} | "
            f"kgCO2e per {period} |", "|---|---|---|---|---|---|", *rows]


def confidence(policy: Policy, decision: Decision) -> tuple[str, list[str]]:
    """High, medium or low, with the reasons; a low-confidence proposal is opened as a draft."""
    e, proposed = decision.evidence, decision.proposed
    low = [reason for reason, applies in (
        ("the history is thin (conservative prior)", e.prior is not None),
        ("no schedule is predicted to keep the SLO", proposed.compliance_lower < policy.slo_compliance),
        ("energy is estimated, not measured", e.energy_estimated),
    ) if applies]
    if low:
        return "low", low
    margin = proposed.compliance_lower - policy.slo_compliance
    medium = [reason for reason, applies in (
        (f"the SLO lower bound clears the target by only {margin:.1%}", margin < MEDIUM_MARGIN),
        (f"only {e.evaluations} evaluations", e.evaluations < MEDIUM_EVALUATIONS),
        ("no shadow evaluations: a hard period cannot be told apart from a stale model",
         proposed.rule.gated and not e.separated),
    ) if applies]
    if medium:
        return "medium", medium
    return "high", [f"{e.evaluations} evaluations, SLO lower bound {margin:.1%} above the target"]


def _summary(policy: Policy, decision: Decision) -> list[str]:
    """What is never trimmed: the table, why, the budget note and the confidence."""
    level, reasons = confidence(policy, decision)
    lines = [*_table(policy, decision.current, decision.proposed, decision.evidence.energy_estimated), "",
             f"**Why:** {decision.reason}."]
    if decision.budget_note:
        lines += ["", f"**Budget:** {decision.budget_note}"]
    lines += ["", f"**Confidence: {level}** ({'; '.join(reasons)})."]
    return lines + _alternatives(policy, decision)


def _evidence(policy: Policy, decision: Decision) -> list[str]:
    e = decision.evidence
    return [
        f"- Telemetry: {e.source}, samples from {e.first_sample} to {e.last_sample}.",
        f"- {e.trainings} training runs (mean {e.energy_per_retrain_kwh:.3f} kWh per retrain); "
        f"{e.evaluations} production evaluations covering model ages up to {e.max_age_days:.1f} days.",
        f"- Energy per deploy: {_deploy_energy(e)}.",
        *([f"- {note[0].upper()}{note[1:]}." for note in (e.window_note, e.drift_note) if note]),
        f"- Carbon intensity {e.carbon_intensity_g_per_kwh:.0f} gCO2e/kWh on average, by {e.carbon_resolution}"
        + (". Energy is an **estimate** from CPU and memory usage (Cloud Carbon Footprint coefficients), not a "
           "measurement." if e.energy_estimated else "."),
        (f"- Quality forecaster: {e.prior}." if e.prior else _forecaster(e)),
        *([f"- Gate: {e.gate_summary}."] if e.gate_summary else []),
        *([f"- Gate: {e.gate_note}."] if e.gate_note else []),
        *([f"- Observed SLO compliance over the last {e.observed_windows} windows: {e.observed_compliance:.1%} "
           f"(SLO {policy.slo_compliance:.0%})."] if e.observed_compliance is not None else []),
        f"- Optuna: {e.trials} trials (seed {e.seed}) over {e.search_space} points (cadence, start hour, "
        "promotion gate, training window; every rule price simulated at each) within minInterval "
        f"{format_duration(policy.min_interval)} / maxInterval {format_duration(policy.max_interval)}; simulated "
        f"over {e.horizon_days} days.",
        ("- Compliance is simulated from the conservative prior's chance to meet the SLO at each age (one curve, "
         "no bootstrap: the history is too thin for one)." if e.prior else
         f"- Compliance is simulated with the rule deciding at every fire, on {PATHS_PER_REPLICATE} paths of window "
         f"effects for each of {CURVE_REPLICATES} bootstrap replicates of the age curve; the lower bound is the "
         "10th percentile over the replicates."),
        f"- Model ages beyond {e.max_age_days:.1f} days were never observed and count as SLO misses.",
    ]


def _forecaster(e: Evidence) -> str:
    how = (f"window effects and an age curve learnt apart from {e.compared_windows} windows scored on two versions or "
           "more (production and shadow evaluations), so hard periods are not taken for stale models"
           if e.separated else "quality by age alone: no window was scored on two versions (log shadow evaluations "
           "so hard periods can be told apart from stale models)")
    score = (f"one-step forecast error on the history (rolling origin, {e.forecast_origins} origins): MAE "
             f"{e.cv_mae:.4f}, against {e.naive_mae:.4f} for 'same as the last window'" if e.forecast_origins
             else "too few windows to score its forecasts on the history")
    return f"- Quality forecaster: {how}; {score}."


def _sections(policy: Policy, decision: Decision, heading: str) -> tuple[list[str], list[str]]:
    """(kept whole, trimmable) Markdown for one policy; trimming drops whole items, so the chart (one
    item) goes in one piece and never leaves a code fence open."""
    kept = [f"{heading}**{policy.name}**: model `{policy.mlflow_model}`, policy `{policy.source_file}`.", "",
            *_summary(policy, decision)]
    chart = "\n".join(quality_chart(policy.slo_metric, policy.slo_target, decision.current, decision.proposed))
    return kept, [*(["", chart] if chart else []), "", "#### Evidence", *_evidence(policy, decision)]


ASK_AGAIN = (f"To ask again, add the label `{RETRY_LABEL}` to the closed merge request (local forge: "
             "`greenops mr retry NAME`).")
HOW_TO_REJECT = ["### How to reject or pin",
                 "Close this merge request to decline: greenops will not propose the same settings again, only a "
                 "materially different decision: other settings (schedule, rule, promotion gate or training "
                 "window) after the policy changed, or with at least `minSavingPercent` more or less predicted "
                 f"energy or a point of SLO compliance. {ASK_AGAIN} If the policy or the telemetry stops "
                 "supporting this proposal, greenops closes this merge request with a note. To pin today's "
                 "schedule set `spec.proposal.mode: observe` in the policy. Edit the policy, not the generated "
                 "manifests."]


def _assemble(parts: list[tuple[list[str], list[str]]], hidden: str, limit: int) -> str:
    """Join the parts; drop evidence lines from the end until the body fits the forge's limit."""
    trimmable = [list(t) for _, t in parts]
    dropped = 0

    def render() -> str:
        lines: list[str] = []
        for (kept, _), rest in zip(parts, trimmable, strict=True):
            lines += [*kept, *rest, ""]
        note = [f"_{dropped} evidence lines trimmed to fit the forge's size limit; `greenops plan` shows them "
                "all._", ""] if dropped else []
        return "\n".join([*lines, *note, *HOW_TO_REJECT, "", hidden])

    text = render()
    while _size(text) > limit and any(trimmable):
        longest = max(trimmable, key=len)
        longest.pop()
        dropped += 1
        text = render()
    return text


def _size(text: str) -> int:
    """Bytes as a forge receives them: a newline counts twice, since GitLab's push options carry it as ``\\n``."""
    return len(text.encode()) + text.count("\n")


def body(policy: Policy, decision: Decision, limit: int = MAX_BODY_BYTES) -> str:
    """Summary table, why, confidence, chart, evidence, how to reject, and a hidden machine-readable block."""
    return _assemble([_sections(policy, decision, "greenops proposes a new retraining schedule for ")],
                     hidden_block([policy], [decision]), limit)


def group_title(group: str, policies: list[Policy], decisions: list[Decision]) -> str:
    before = sum(d.current.energy_kwh_per_period for d in decisions)
    after = sum(d.proposed.energy_kwh_per_period for d in decisions)
    estimated = ", estimated" if any(d.evidence.energy_estimated for d in decisions) else ""
    return (f"greenops({group}): new schedules for {len(policies)} models ({', '.join(p.name for p in policies)}) "
            f"({percent_change(before, after):+.0f}% energy{estimated})")


def group_body(group: str, policies: list[Policy], decisions: list[Decision], limit: int = MAX_BODY_BYTES) -> str:
    intro = (f"greenops proposes new retraining schedules for the {len(policies)} policies of group **{group}** "
             "(`spec.proposal.group`), in one merge request.")
    parts: list[tuple[list[str], list[str]]] = [([intro, ""], [])]
    parts += [_sections(p, d, "### ") for p, d in zip(policies, decisions, strict=True)]
    return _assemble(parts, hidden_block(policies, decisions), limit)


def _deploy_energy(e: Evidence) -> str:
    if e.deploy_energy_samples:
        return f"{e.energy_per_deploy_kwh:.3f} kWh, the mean of {e.deploy_energy_samples} logged deploys"
    if e.energy_per_deploy_kwh:
        return f"{e.energy_per_deploy_kwh:.3f} kWh, as the policy declares (spec.promotion.deployEnergyKWh)"
    return ("not measured, counted as 0 kWh, so the promotion gate is left as it is (log deploy_energy_kwh on "
            "training runs, or set spec.promotion.deployEnergyKWh)")


def removal_title(name: str) -> str:
    return f"greenops({name}): remove the generated manifests of the deleted policy {name}"


def removal_body(name: str, source: str | None, where: str, removed: Sequence[str], kept: Sequence[str]) -> str:
    """Why the files go, which go, which stay (greenops did not write them), and how to keep them."""
    origin = f" (they were generated from `{source}`)" if source else ""
    lines = [f"greenops proposes removing what it generated for **{name}**: no policy of that name is in {where} "
             f"any more{origin}. Once merged, Argo CD or Flux prunes the CronJob (with pruning enabled).", "",
             f"Removed (greenops wrote them: each starts with its header naming {name}, and its objects carry "
             "`app.kubernetes.io/managed-by: greenops`):",
             *(f"- `{path}`" for path in removed)]
    if kept:
        lines += ["", "Left in place (greenops did not write them; delete them yourself if they belonged to the "
                  "policy):", *(f"- `{path}`" for path in kept)]
    lines += ["", "### How to keep them",
              "Restore the policy file to keep the schedule governed: greenops then replaces this merge request "
              "with a proposal, or closes it. Close this merge request to keep the files ungoverned: greenops "
              f"will not propose removing the same files again. {ASK_AGAIN}", "", removal_block({name: removed})]
    return "\n".join(lines)
