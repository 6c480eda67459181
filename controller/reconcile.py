"""One reconcile pass: for each policy, a flat list of steps ending in ok, stalled or transient.

Level-triggered: everything is recomputed from Git and telemetry; one broken policy never
stops the others.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from controller.decision import ESTIMATE_NOTE, Decision
from controller.errors import SignalStalledError, StalledError, TransientError
from controller.gitops import mr
from controller.gitops.workspace import ProposalResult, Workspace
from controller.optimize.decide import decide
from controller.policy.model import Policy
from controller.policy.problems import Problem
from controller.policy.validate import validate_paths
from controller.redact import safe_url
from controller.render import GENERATED_DIR, render_changes
from controller.state import save_merge_request
from controller.telemetry.assemble import Sources, load_history, open_sources
from controller.trainingwindows import fit_window_models

log = logging.getLogger("greenops.reconcile")


@dataclass(frozen=True)
class Settings:
    repo_url: str
    state_dir: Path
    mlflow_uri: str
    target_branch: str | None = None
    policies_dir: str = "policies"
    seed: int = 42
    trials: int = 80
    only: tuple[str, ...] = ()
    prometheus_url: str | None = None
    now: datetime | None = None  # None: the wall clock; the demo passes its simulated "now"
    optuna_storage: str | None = None  # None: a SQLite file in the state directory

    @property
    def study_storage(self) -> str:
        return self.optuna_storage or f"sqlite:///{(self.state_dir / 'optuna.db').resolve()}"


@dataclass(frozen=True)
class Outcome:
    policy: str
    status: str  # ok | stalled | transient | error (a bug in greenops)
    message: str
    decision: Decision | None = None
    proposal: ProposalResult | None = None
    title: str | None = None
    body: str | None = None


def _reconcile_policy(policy: Policy, settings: Settings, workspace: Workspace, sources: Sources, now: datetime,
                      push: bool) -> Outcome:
    history = load_history(policy, sources, now)
    windows = fit_window_models(history, policy, settings.seed)
    decision = decide(policy, history, windows.models, settings.seed, settings.trials, settings.study_storage,
                      windows.note)
    if not decision.propose:
        current = decision.current
        estimate = f" ({ESTIMATE_NOTE})" if decision.evidence.energy_estimated else ""
        figures = (f"today: {current.retrains_per_month:.0f} retrains/month, predicted SLO compliance "
                   f"{current.compliance_lower:.1%} (lower bound), {current.energy_kwh_per_period:.1f} kWh per period"
                   f"{estimate}")
        note = f"; {decision.budget_note}" if decision.budget_note else ""
        return Outcome(policy.name, "ok", f"no change proposed: {decision.reason} ({figures}){note}", decision)
    title, body = mr.title(policy, decision), mr.body(policy, decision)
    files = render_changes(policy, decision.proposed, workspace.generated_files(GENERATED_DIR))
    proposal = workspace.propose(f"greenops/{policy.name}", files, title, body, push)
    if proposal.status in ("created", "updated"):
        record = {"policy": policy.name, "branch": proposal.branch, "target": workspace.target,
                  "commit": proposal.commit, "title": title, "repository": safe_url(settings.repo_url)}
        save_merge_request(settings.state_dir, policy.name, record,
                           f"# {title}\n\n{body}\n\n```diff\n{proposal.diff}\n```\n")
    return Outcome(policy.name, "ok", _summary(proposal), decision, proposal, title, body)


def _summary(proposal: ProposalResult) -> str:
    return {
        "in-sync": "the target branch already has this schedule",
        "unchanged": f"merge request on {proposal.branch} is up to date (no new commit)",
        "created": f"pushed {proposal.branch} and opened a merge request",
        "updated": f"pushed a new proposal to {proposal.branch}",
        "planned": f"would push {proposal.branch} and open or update its merge request",
    }[proposal.status]


def _problem_outcomes(problems: tuple[Problem, ...]) -> Iterator[Outcome]:
    by_file: dict[str, list[Problem]] = {}
    for problem in problems:
        by_file.setdefault(problem.file, []).append(problem)
    for file, found in by_file.items():
        details = "\n".join(f"  {p.render()}" for p in found)
        yield Outcome(file, "stalled", f"invalid policy file; fix it and push:\n{details}")


def reconcile(settings: Settings, push: bool) -> list[Outcome]:
    """Run one pass over every policy in the repository (``push=False`` for ``greenops plan``)."""
    try:
        workspace = Workspace.open(settings.repo_url, settings.state_dir, settings.target_branch)
    except (StalledError, TransientError) as err:
        status = "stalled" if isinstance(err, StalledError) else "transient"
        return [Outcome(safe_url(settings.repo_url), status, str(err))]
    result = validate_paths([workspace.root / settings.policies_dir], relative_to=workspace.root)
    outcomes = list(_problem_outcomes(result.problems))
    sources = open_sources(settings.mlflow_uri, settings.prometheus_url)
    now = settings.now or datetime.now(UTC)
    known = {p.name for p in result.policies}
    outcomes += [Outcome(name, "stalled", f"no valid policy named {name} in {settings.policies_dir}/ of "
                         f"{safe_url(settings.repo_url)}") for name in settings.only if name not in known]
    for policy in sorted(result.policies, key=lambda p: p.name):
        if settings.only and policy.name not in settings.only:
            continue
        log.info("reconciling", extra={"policy": policy.name})
        try:
            outcomes.append(_reconcile_policy(policy, settings, workspace, sources, now, push))
        except StalledError as err:
            hint = (f" (`greenops telemetry check {policy.name}` shows what each query finds)"
                    if isinstance(err, SignalStalledError) else "")
            outcomes.append(Outcome(policy.name, "stalled", f"{policy.source_file}:{policy.source_line}: {err}{hint}"))
        except TransientError as err:
            outcomes.append(Outcome(policy.name, "transient", f"{err} (will retry)"))
        except Exception as err:  # a bug must not stop the other policies
            log.exception("internal error", extra={"policy": policy.name})
            outcomes.append(Outcome(policy.name, "error", f"internal error: {type(err).__name__}: {err}; please "
                                    "report it (GREENOPS_DEBUG=1 prints the traceback)"))
    return outcomes

