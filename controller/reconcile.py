"""One reconcile pass: for each policy, a flat list of steps ending in ok, stalled or transient.

First every policy is decided (telemetry, cost model, tuning); then the proposals are grouped into
change sets (one per policy, or per ``proposal.group``) and written back, at most
``max_mrs_per_run`` new merge requests per pass; the open merge request of a unit whose policies all
decide "no change" now is closed with a note. A pass over every policy (no ``--policy``) ends with the
policies that are gone (``prune``): their generated files get a removal merge request, their stale
merge requests are closed. Level-triggered: everything is recomputed from Git and telemetry; one
broken policy never stops the others.
"""

import difflib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from controller.decision import ESTIMATE_NOTE, Decision
from controller.errors import SignalStalledError, StalledError, TransientError
from controller.forecast.windows import fit_window_models
from controller.gate.config import merged_rule
from controller.gitops import mr
from controller.gitops.forge import BRANCH_PREFIX, Forge, ForgeSettings, branch_for, open_forge
from controller.gitops.retire import close_merge_request
from controller.gitops.workspace import Workspace
from controller.gitops.writeback import ChangeSet, WriteBack, ensure_merge_request
from controller.optimize.decide import decide
from controller.policy.model import Policy
from controller.policy.problems import Problem, printable
from controller.policy.validate import ValidationResult, validate_paths
from controller.prune import generated_by_policy, gone_reason, maybe_defined, removal, stale_branches
from controller.redact import safe_url
from controller.render import GENERATED_DIR, render_changes
from controller.telemetry.assemble import Sources, load_history, open_sources

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
    forge: ForgeSettings = field(default_factory=ForgeSettings)
    max_mrs_per_run: int | None = None  # new merge requests per pass; updates of open ones always go through

    @property
    def study_storage(self) -> str:
        return self.optuna_storage or f"sqlite:///{(self.state_dir / 'optuna.db').resolve()}"


@dataclass(frozen=True)
class Outcome:
    policy: str
    status: str  # ok | stalled | transient | error (a bug in greenops)
    message: str
    decision: Decision | None = None
    proposal: WriteBack | None = None
    title: str | None = None
    body: str | None = None


def _decide(policy: Policy, settings: Settings, sources: Sources, now: datetime, root: Path) -> Decision:
    history = load_history(policy, sources, now)
    windows = fit_window_models(history, policy, settings.seed)
    return decide(policy, history, windows.models, settings.seed, settings.trials, settings.study_storage,
                  windows.note, merged_rule(root, policy, GENERATED_DIR))


def _no_change(policy: Policy, decision: Decision) -> Outcome:
    current = decision.current
    estimate = f" ({ESTIMATE_NOTE})" if decision.evidence.energy_estimated else ""
    figures = (f"today: {current.retrains_per_month:.0f} retrains/month, predicted SLO compliance "
               f"{current.compliance_lower:.1%} (lower bound), {current.energy_kwh_per_period:.1f} kWh per period"
               f"{estimate}")
    note = f"; {decision.budget_note}" if decision.budget_note else ""
    return Outcome(policy.name, "ok", f"no change proposed: {decision.reason} ({figures}){note}", decision)


def unit_name(policy: Policy) -> str:
    """What a policy is reconciled and proposed with: itself, or its ``proposal.group``."""
    return f"group-{policy.proposal_group}" if policy.proposal_group else policy.name


def change_sets(proposals: list[tuple[Policy, Decision]], workspace: Workspace) -> list[ChangeSet]:
    """One change set per policy, or per ``proposal.group`` (its policies in one merge request)."""
    groups: dict[str, list[tuple[Policy, Decision]]] = {}
    for policy, decision in proposals:
        groups.setdefault(unit_name(policy), []).append((policy, decision))
    changes = []
    on_target = workspace.generated_files(GENERATED_DIR)
    for name, members in groups.items():
        policies, decisions = [p for p, _ in members], [d for _, d in members]
        files: dict[PurePosixPath, str] = {}
        for policy, decision in members:
            files.update(render_changes(policy, decision.proposed, on_target))
        if len(members) == 1 and not policies[0].proposal_group:
            title, body = mr.title(policies[0], decisions[0]), mr.body(policies[0], decisions[0])
        else:
            group = str(policies[0].proposal_group)
            title, body = mr.group_title(group, policies, decisions), mr.group_body(group, policies, decisions)
        draft = any(mr.confidence(p, d)[0] == "low" for p, d in members)
        changes.append(ChangeSet(branch_for(name), tuple(policies), tuple(decisions), files, title, body, draft))
    return changes


def _with_their_groups(only: Sequence[str], policies: Sequence[Policy]) -> set[str]:
    """The named policies and the rest of their proposal groups: a group's merge request is only rebuilt
    from a pass that decides all of it."""
    units = {unit_name(p) for p in policies if p.name in only}
    return {p.name for p in policies if p.name in only or unit_name(p) in units}


def _undecided_members(change: ChangeSet, policies: Sequence[Policy], decided: set[str]) -> list[str]:
    """Policies of the change's group that this pass did not decide (filtered out, stalled or failed):
    rebuilding the group's branch without them would drop their part of the merge request."""
    group = change.policies[0].proposal_group if change.policies else None
    return sorted(p.name for p in policies if group and p.proposal_group == group and p.name not in decided)


def _each(change: ChangeSet, status: str, message: str, result: WriteBack | None = None) -> list[Outcome]:
    """The same outcome for every policy of a change set; the title and body only once written back."""
    title, body = (change.title, change.body) if result is not None else (None, None)
    if change.removed is not None:
        return [Outcome(change.removed, status, message, None, result, title, body)]
    return [Outcome(p.name, status, message, d, result, title, body)
            for p, d in zip(change.policies, change.decisions, strict=True)]


def _attempt(unit: str, step: Callable[[], WriteBack | None]) -> tuple[str, str, WriteBack | None]:
    """Run one git/forge step: ("ok", "", its result), or the status and message of its failure (a bug in
    one step must not cost the other policies their outcomes)."""
    try:
        return "ok", "", step()
    except StalledError as err:
        return "stalled", str(err), None
    except TransientError as err:
        return "transient", f"{err} (will retry)", None
    except Exception as err:
        log.exception("internal error", extra={"policy": unit})
        return "error", (f"internal error: {type(err).__name__}: {err}; please report it (GREENOPS_DEBUG=1 prints "
                         "the traceback)"), None


def _write_back(change: ChangeSet, settings: Settings, workspace: Workspace, forge: Forge, push: bool,
                may_open: bool) -> list[Outcome]:
    status, error, result = _attempt(change.branch, lambda: ensure_merge_request(
        workspace, forge, change, settings.forge.labels, push, may_open, settings.state_dir))
    if result is None:
        return _each(change, status, error)
    message = result.message or _summary(result, forge)
    if result.status == "in-sync" and result.request is not None:  # open, yet proposing something else
        reason = "the target branch already has what greenops proposes now"
        status, error, closed = _close(change.branch.removeprefix(BRANCH_PREFIX), reason, settings, workspace, forge,
                                       push)
        return _each(change, status, f"{message}; {closed.message if closed else error}", closed or result)
    return _each(change, "ok", message, result)


def _write_changes(changes: Iterable[ChangeSet], policies: Sequence[Policy], decided: set[str], settings: Settings,
                   workspace: Workspace, forge: Forge, push: bool, opened: int) -> tuple[list[Outcome], int]:
    """Write back each change set; ``opened`` counts new merge requests against ``max_mrs_per_run``."""
    outcomes: list[Outcome] = []
    for change in changes:
        missing = _undecided_members(change, policies, decided)
        if missing:
            outcomes += _each(change, "ok", f"not written back: group {change.policies[0].proposal_group} also "
                              f"holds {', '.join(missing)}, not decided in this pass; its merge request is only "
                              "rebuilt from a pass that decides every policy of the group")
            continue
        may_open = settings.max_mrs_per_run is None or opened < settings.max_mrs_per_run
        written = _write_back(change, settings, workspace, forge, push, may_open)
        opened += any(o.proposal is not None and o.proposal.status == "created" for o in written)
        outcomes += written
    return outcomes, opened


def _close(unit: str, reason: str, settings: Settings, workspace: Workspace, forge: Forge,
           push: bool) -> tuple[str, str, WriteBack | None]:
    return _attempt(unit, lambda: close_merge_request(workspace, forge, branch_for(unit), reason, push,
                                                      settings.state_dir))


def _close_unsupported(outcomes: list[Outcome], policies: Sequence[Policy], settings: Settings, workspace: Workspace,
                       forge: Forge, push: bool) -> list[Outcome]:
    """The open merge request of a unit whose every policy now decides "no change" proposes what neither
    the policy nor the telemetry supports any more: closed, with the decisions' reasons as the note."""
    quiet = {o.policy: o for o in outcomes if o.decision is not None and not o.decision.propose}
    units: dict[str, list[Policy]] = {}
    for policy in policies:
        units.setdefault(unit_name(policy), []).append(policy)
    changed: dict[str, Outcome] = {}
    for unit, members in units.items():
        if not all(m.name in quiet for m in members):
            continue
        reason = "; ".join(f"{m.name}: {quiet[m.name].message}" for m in members)
        status, error, result = _close(unit, reason, settings, workspace, forge, push)
        if status == "ok" and result is None:
            continue
        for member in members:
            before = quiet[member.name]
            changed[member.name] = replace(before, status=status, proposal=result,
                                           message=f"{before.message}; {result.message if result else error}")
    return [changed.get(o.policy, o) if o.decision is not None else o for o in outcomes]


def _prune(workspace: Workspace, forge: Forge, result: ValidationResult, settings: Settings, push: bool,
           opened: int) -> tuple[list[Outcome], int]:
    """Policies that are gone (see controller/prune.py): a removal merge request for what greenops generated
    for each, then the stale merge requests of units no policy has any more, closed with a note."""
    where = f"{settings.policies_dir}/ on {workspace.target}"
    valid = {p.name for p in result.policies}
    folders = {name: paths for name, paths in generated_by_policy(workspace).items() if name not in valid}
    branches = stale_branches(workspace, {unit_name(p) for p in result.policies}, set())
    if not folders and not branches:
        return [], opened
    unsure = maybe_defined(workspace.root, result.problems)
    if result.files == 0 or unsure is None:
        why = (f"no policy file in {where} at all (check --policies-dir)" if result.files == 0 else
               "a policy file that cannot be read may define it (fix the invalid policy files above)")
        names = sorted(set(folders) | {b.removeprefix(BRANCH_PREFIX) for b in branches})
        return [Outcome(name, "stalled", f"no valid policy named {name}, but {why}: greenops removes nothing and "
                        "closes no merge request until then") for name in names], opened
    changes = [c for name in sorted(set(folders) - unsure) if (c := removal(workspace, name, folders[name], where))]
    outcomes, opened = _write_changes(changes, result.policies, valid, settings, workspace, forge, push, opened)
    for branch in stale_branches(workspace, {unit_name(p) for p in result.policies},
                                 unsure | {str(c.removed) for c in changes}):
        unit = branch.removeprefix(BRANCH_PREFIX)
        reason = gone_reason(unit, result.policies, where)
        status, error, closed = _close(unit, reason, settings, workspace, forge, push)
        if status != "ok" or closed is not None:
            outcomes.append(Outcome(unit, status, f"{reason}; {closed.message if closed else error}", None, closed))
    return outcomes, opened


def _summary(result: WriteBack, forge: Forge) -> str:
    request = result.request
    number = f" {request.number}{f' ({request.url})' if request and request.url else ''}" if request else ""
    return {
        "in-sync": "the target branch already has this schedule",
        "unchanged": f"merge request{number} on {result.branch} is up to date (no new commit)",
        "created": f"pushed {result.branch} and opened merge request{number} ({forge.name})",
        "updated": f"pushed a new proposal to {result.branch} and updated merge request{number}",
        "planned": f"would push {result.branch} and open or update its merge request",
    }[result.status]


def _problem_outcomes(problems: tuple[Problem, ...]) -> Iterator[Outcome]:
    by_file: dict[str, list[Problem]] = {}
    for problem in problems:
        by_file.setdefault(problem.file, []).append(problem)
    for file, found in by_file.items():
        details = "\n".join(f"  {p.render()}" for p in found)
        yield Outcome(printable(file), "stalled", f"invalid policy file; fix it and push:\n{details}")


def _load_policies(settings: Settings) -> tuple[Workspace, ValidationResult]:
    """Fetch the repository and validate its policy folder. Raises StalledError or TransientError."""
    workspace = Workspace.open(settings.repo_url, settings.state_dir, settings.target_branch)
    return workspace, validate_paths([workspace.root / settings.policies_dir], relative_to=workspace.root)


def unknown_policy(name: str, known: Iterable[str], settings: Settings) -> str:
    """Why ``--policy name`` matches nothing, with the names that would (a typo is the usual cause)."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    listing = f"valid policies: {', '.join(names)}" if names else "it holds no valid policy"
    return (f"--policy {name}: no valid policy of that name in {settings.policies_dir}/ of "
            f"{safe_url(settings.repo_url)}{hint}; {listing}")


def _open_repository(settings: Settings) -> tuple[Workspace, ValidationResult, Forge]:
    """The clone, its policies and the forge a pass writes to. Raises StalledError or TransientError."""
    workspace, result = _load_policies(settings)
    return workspace, result, open_forge(settings.forge, settings.repo_url, settings.state_dir, workspace)


def _unreachable(err: StalledError | TransientError, names: Iterable[str]) -> list[Outcome]:
    """One outcome per name when the repository or the forge cannot be used at all."""
    status = "stalled" if isinstance(err, StalledError) else "transient"
    return [Outcome(name, status, str(err)) for name in names]


def policy_units(settings: Settings) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The repository's valid policies as units reconciled together (a policy, or a ``proposal.group``),
    by unit name, and the problems of the invalid files. Raises StalledError or TransientError."""
    _, result = _load_policies(settings)
    units: dict[str, list[str]] = {}
    for policy in sorted(result.policies, key=lambda p: p.name):
        units.setdefault(unit_name(policy), []).append(policy.name)
    return {name: tuple(members) for name, members in units.items()}, [p.render() for p in result.problems]


def reconcile(settings: Settings, push: bool) -> list[Outcome]:
    """Run one pass over every policy in the repository (``push=False`` for ``greenops plan``)."""
    try:
        workspace, result, forge = _open_repository(settings)
    except (StalledError, TransientError) as err:
        return _unreachable(err, settings.only or (safe_url(settings.repo_url),))
    outcomes = list(_problem_outcomes(result.problems))
    known = [p.name for p in result.policies]
    unknown = [name for name in dict.fromkeys(settings.only) if name not in known]
    if unknown:  # a mistyped --policy must not turn into a pass over every policy
        return outcomes + [Outcome(name, "stalled", f"{unknown_policy(name, known, settings)}; nothing was "
                                   "reconciled") for name in unknown]
    sources = open_sources(settings.mlflow_uri, settings.prometheus_url)
    now = settings.now or datetime.now(UTC)
    wanted = _with_their_groups(settings.only, result.policies)
    proposals: list[tuple[Policy, Decision]] = []
    for policy in sorted(result.policies, key=lambda p: p.name):
        if settings.only and policy.name not in wanted:
            continue
        log.info("reconciling", extra={"policy": policy.name})
        try:
            decision = _decide(policy, settings, sources, now, workspace.root)
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
        else:
            if decision.propose:
                proposals.append((policy, decision))
            else:
                outcomes.append(_no_change(policy, decision))
    decided = {o.policy for o in outcomes if o.decision is not None} | {p.name for p, _ in proposals}
    written, opened = _write_changes(change_sets(proposals, workspace), result.policies, decided, settings,
                                     workspace, forge, push, 0)
    outcomes = _close_unsupported(outcomes + written, result.policies, settings, workspace, forge, push)
    if not settings.only:
        outcomes += _prune(workspace, forge, result, settings, push, opened)[0]
    return outcomes


def prune_pass(settings: Settings, push: bool) -> list[Outcome]:
    """Only the last step of a full pass, for ``greenops run`` (whose passes each cover one unit)."""
    try:
        workspace, result, forge = _open_repository(settings)
    except (StalledError, TransientError) as err:
        return _unreachable(err, (safe_url(settings.repo_url),))
    return _prune(workspace, forge, result, settings, push, 0)[0]
