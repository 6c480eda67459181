"""Write-back: one branch and one merge request per proposal, updated idempotently and safely.

The flat list of steps for one change set (one policy's proposal, a group's, or the removal of what
greenops generated for a deleted policy):
1. find the newest merge request of the branch (the forge says whether it was merged or closed);
2. a closed request is a declined proposal, unless greenops closed it itself or a reviewer labelled it
   ``greenops:retry``: greenops proposes again only a materially different decision
   (``materially_different``) or other files to remove (the declined content is read back from the
   request's hidden block);
3. rebuild the branch as target + one bot commit only when what it proposes changed or it no longer
   merges cleanly (a target that merely moved on is no reason): otherwise no commit, no push and no API
   write; a human commit on the branch means hands off, with one note on the merge request;
4. push (with the forge's push options) and open or update the merge request; new requests are
   capped per pass (``--max-mrs-per-run``).
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from controller.decision import Decision, Forecast
from controller.gitops.block import closed_by_greenops, declined_proposals, declined_removals, policy_inputs
from controller.gitops.forge import RETRY_LABEL, Forge, MergeRequest, Submission
from controller.gitops.localforge import record_name
from controller.gitops.workspace import ProposalResult, Workspace
from controller.policy.model import Policy
from controller.state import write_atomic

MATERIAL_COMPLIANCE_CHANGE = 0.01  # a point of predicted SLO compliance


@dataclass(frozen=True)
class ChangeSet:
    """What one merge request proposes."""

    branch: str
    policies: tuple[Policy, ...]
    decisions: tuple[Decision, ...]
    files: dict[PurePosixPath, str]
    title: str
    body: str
    draft: bool
    removed: str | None = None  # a deleted policy whose generated files this change removes (no decision)


@dataclass(frozen=True)
class WriteBack:
    status: str  # in-sync | unchanged | created | updated | planned | deferred | declined | held | closed
    branch: str
    message: str
    diff: str = ""
    commit: str | None = None
    request: MergeRequest | None = None


def _settings(proposed: Mapping[str, Any]) -> tuple[object, ...]:
    """A declined proposal's settings, in the order of ``Forecast.settings``."""
    rule = proposed.get("rule")
    threshold, gain = (rule.get("threshold"), rule.get("budget_gain")) if isinstance(rule, dict) else (None, None)
    return (proposed.get("schedule"), proposed.get("promotion_min_gain"), proposed.get("training_window_days"),
            threshold, gain if threshold is not None else 0.0)


def _figures_moved(declined: Mapping[str, Any], proposed: Forecast, policy: Policy) -> bool:
    """Energy moved by minSavingPercent of the declined figure, or predicted compliance by a point."""
    energy, compliance = declined.get("energy_kwh_per_period"), declined.get("compliance_lower")
    if not isinstance(energy, float | int) or not isinstance(compliance, float | int):
        return True
    threshold = max(abs(energy), 1e-9) * policy.min_saving_percent / 100
    energy_moved = abs(proposed.energy_kwh_per_period - energy) >= threshold
    return energy_moved or abs(proposed.compliance_lower - compliance) >= MATERIAL_COMPLIANCE_CHANGE


def materially_different(declined: Mapping[str, Any], proposed: Forecast, policy: Policy) -> bool:
    """Whether ``proposed`` is a new decision rather than the declined one again. The same settings
    (schedule, rule, promotion gate, training window) never are. Other settings are when a person changed
    the question since the decline (the policy's decision inputs, see ``policy_inputs``), or when the
    telemetry moved the answer (``_figures_moved``); otherwise they are the search's noise."""
    then = declined.get("proposed")
    if not isinstance(then, dict) or _settings(then) == proposed.settings:
        return False
    if declined.get("policy_inputs") not in (None, policy_inputs(policy)):
        return True
    return _figures_moved(then, proposed, policy)


def _still_declined(request: MergeRequest, change: ChangeSet) -> bool:
    if change.removed is not None:
        files = tuple(sorted(str(path) for path in change.files))
        return declined_removals(request.body) == {change.removed: files}
    declined = declined_proposals(request.body)
    return bool(change.policies) and all(
        p.name in declined and not materially_different(declined[p.name], d.proposed, p)
        for p, d in zip(change.policies, change.decisions, strict=True))


def held_marker(state_dir: Path, branch: str) -> Path:
    return state_dir / "held" / f"{record_name(branch)}.txt"


def _hold(forge: Forge, request: MergeRequest | None, result: ProposalResult, state_dir: Path,
          push: bool) -> WriteBack:
    """Hands off a branch with human commits; one note per set of human commits, not one per pass, and
    none from a dry run (``greenops plan`` writes nothing anywhere)."""
    humans = "; ".join(result.humans)
    marker = held_marker(state_dir, result.branch)
    if push and _read(marker) != humans:
        if request is not None and request.state == "open":
            forge.comment(request, f"greenops found commits it did not make on `{result.branch}` ({humans}). It "
                          "will not update this merge request until they are merged or the branch is deleted.")
        write_atomic(marker, humans)
    return WriteBack("held", result.branch, f"branch {result.branch} has commits greenops did not make ({humans}); "
                     "left untouched until they are merged or the branch is deleted", result.diff, None, request)


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _declined(request: MergeRequest | None, change: ChangeSet, state_dir: Path) -> bool:
    """Closed without merge by a person, not labelled for a retry, and not because greenops asked for the
    branch to be deleted (a held branch)."""
    if request is None or request.state != "closed":
        return False
    if RETRY_LABEL in request.labels or closed_by_greenops(request.body):
        return False
    return not held_marker(state_dir, change.branch).exists() and _still_declined(request, change)


def _declined_message(request: MergeRequest, change: ChangeSet) -> str:
    what = ("removing the same files" if change.removed is not None else "the same proposal")
    again = ("other files to remove" if change.removed is not None else "a materially different decision")
    return (f"{what} was declined ({request.number} closed without merge); greenops proposes again for {again}, or "
            f"when a reviewer adds the label {RETRY_LABEL} to {request.number} (local forge: greenops mr retry "
            f"{record_name(change.branch)})")


def ensure_merge_request(workspace: Workspace, forge: Forge, change: ChangeSet, labels: tuple[str, ...],
                         push: bool, may_open: bool, state_dir: Path) -> WriteBack:
    """Bring the branch and merge request of ``change`` up to date (see the module docstring)."""
    existing = forge.find(change.branch)
    if _declined(existing, change, state_dir):
        assert existing is not None
        return WriteBack("declined", change.branch, _declined_message(existing, change), request=existing)
    open_request = existing if existing is not None and existing.state == "open" else None
    # Without a way to read requests back (GitLab without a token), an existing branch stands for an open one.
    updating = open_request is not None or (not forge.knows_state and workspace.branch_head(change.branch) is not None)
    submission = Submission(change.branch, workspace.target, change.title, change.body, change.draft, labels, "")
    result = workspace.propose(change.branch, change.files, f"{change.title}\n\n{change.body}",
                               push and (updating or may_open), forge.push_options(submission, creating=not updating))
    if result.status == "held":
        return _hold(forge, open_request, result, state_dir, push)
    if push:
        held_marker(state_dir, change.branch).unlink(missing_ok=True)  # the human work was merged or deleted
    if result.status == "planned" and push:
        return WriteBack("deferred", change.branch, "--max-mrs-per-run reached: proposed on a later pass",
                         result.diff)
    if result.status == "unchanged" and open_request is None and push and forge.knows_state and may_open:
        # pushed on an earlier pass, but its merge request was never opened (or was merged/closed since)
        request = forge.submit(replace(submission, diff=result.diff, head=result.commit), None)
        return WriteBack("created", change.branch, "", result.diff, result.commit, request)
    if result.status not in ("created", "updated"):
        return WriteBack(result.status, change.branch, "", result.diff, result.commit, open_request)
    request = forge.submit(replace(submission, diff=result.diff, head=result.commit), open_request)
    return WriteBack("updated" if updating else "created", change.branch, "", result.diff, result.commit, request)
