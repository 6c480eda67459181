"""Closing a merge request that greenops no longer proposes (Renovate's "autoclose").

When the policy or the telemetry no longer supports an open proposal (the new decision is "no change"),
or its policy or group is gone, a reviewer must not be able to merge it by mistake. greenops leaves a
note saying why, closes the request with " - autoclosed" after its title and its hidden block marked as
closed by greenops (so it never counts as a declined proposal), and deletes the branch. A branch with
commits greenops did not make is a person's work: the request stays open, with one note.
"""

from pathlib import Path

from controller.gitops.block import closed_by_greenops, mark_closed
from controller.gitops.forge import Forge, MergeRequest
from controller.gitops.workspace import Workspace
from controller.gitops.writeback import WriteBack, held_marker
from controller.state import write_atomic

AUTOCLOSED = " - autoclosed"


def _autoclosed(title: str) -> str:
    return title if title.endswith(AUTOCLOSED) else f"{title}{AUTOCLOSED}"


def _note(branch: str, reason: str, deleted: bool) -> str:
    gone = f" It deleted the branch `{branch}`." if deleted else ""
    return (f"greenops closed this merge request: {reason}.{gone} It opens a new merge request when it proposes a "
            "change again.")


def _leave_open(forge: Forge, request: MergeRequest, humans: tuple[str, ...], reason: str, push: bool,
                state_dir: Path) -> WriteBack:
    """One note per set of human commits (none from a dry run); the request and branch stay as they are."""
    who = "; ".join(humans)
    marker, text = held_marker(state_dir, request.branch), f"unsupported: {who}"
    if push and (marker.read_text(encoding="utf-8") if marker.is_file() else None) != text:
        forge.comment(request, f"greenops no longer proposes this change ({reason}), but `{request.branch}` has "
                      f"commits greenops did not make ({who}), so it leaves this merge request open: close it, or "
                      "merge it if you still want it.")
        write_atomic(marker, text)
    return WriteBack("held", request.branch, f"merge request {request.number} left open: {request.branch} has commits "
                     f"greenops did not make ({who}); close it by hand", request=request)


def _delete_unreadable(workspace: Workspace, branch: str, head: str, push: bool) -> WriteBack:
    """A forge that cannot read merge requests (GitLab without a token): deleting the branch leaves its request
    nothing to merge; a person closes it."""
    humans = workspace.humans_on(branch)
    if humans:
        return WriteBack("held", branch, f"{branch} has commits greenops did not make ({'; '.join(humans)}): close "
                         "its merge request by hand")
    if not push:
        return WriteBack("planned", branch, f"would delete {branch}")
    workspace.delete_branch(branch, head)
    return WriteBack("closed", branch, f"deleted {branch}; without a forge token greenops cannot close its merge "
                     "request or leave a note there: close it by hand (it has nothing left to merge)")


def close_merge_request(workspace: Workspace, forge: Forge, branch: str, reason: str, push: bool,
                        state_dir: Path) -> WriteBack | None:
    """Close the open request of ``branch`` because of ``reason`` (see the module docstring); None when
    nothing is open there. ``push=False`` (``greenops plan``) only says what it would do. The message says
    what was done; the caller says why."""
    request, head = forge.find(branch), workspace.branch_head(branch)
    if request is None and not forge.knows_state and head is not None:
        return _delete_unreadable(workspace, branch, head, push)
    if request is None or request.state != "open":
        if request is not None and push and head is not None and closed_by_greenops(request.body) \
                and not workspace.humans_on(branch):
            workspace.delete_branch(branch, head)  # closed on an earlier pass whose deletion failed
        return None
    humans = workspace.humans_on(branch)
    if humans:
        return _leave_open(forge, request, humans, reason, push, state_dir)
    if not push:
        return WriteBack("planned", branch, f"would close merge request {request.number} on {branch}",
                         request=request)
    forge.comment(request, _note(branch, reason, head is not None))
    closed = forge.close(request, _autoclosed(request.title), mark_closed(request.body, reason))
    if head is not None:
        workspace.delete_branch(branch, head)
    return WriteBack("closed", branch, f"closed merge request {request.number} on {branch} with a note saying why"
                     f"{' and deleted the branch' if head is not None else ''}", request=closed)
