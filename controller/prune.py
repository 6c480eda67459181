"""What greenops proposes for policies that are gone: the last step of a full pass.

A deleted policy's folders ``manifests/generated/<namespace>/<policy>/`` get a merge request that removes
the files greenops wrote there: those that start with greenops' header naming the policy and whose
objects carry its labels (``render.written_by_greenops``). Anything else stays, and the merge request
lists it. The open merge request of a bot branch whose policy or group is gone is closed with a note.
Nothing is removed on a guess: not for a name that an invalid policy file may still define (an invalid
policy is not a removed one), not while a policy file cannot be read at all, and not from a policy
folder without a single policy file.
"""

import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import yaml

from controller.confine import symlink_on_the_way
from controller.gitops import mr
from controller.gitops.forge import BRANCH_PREFIX, branch_for
from controller.gitops.workspace import Workspace
from controller.gitops.writeback import ChangeSet
from controller.policy.model import Policy
from controller.policy.problems import Problem
from controller.render import GENERATED_DIR, generated_from, written_by_greenops

UNIT = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # a policy name, or group-<group>


def _names_in(path: Path) -> set[str] | None:
    """Units a policy file may define (names, and ``group-<group>``) however invalid it is; None when it
    cannot be read as YAML or a document names nothing."""
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    names: set[str] = set()
    for document in documents:
        if document is None:  # an empty document (a trailing ---)
            continue
        metadata = document.get("metadata") if isinstance(document, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if not isinstance(name, str):
            return None
        spec = document.get("spec")
        proposal = spec.get("proposal") if isinstance(spec, dict) else None
        group = proposal.get("group") if isinstance(proposal, dict) else None
        names |= {name, *([f"group-{group}"] if isinstance(group, str) else [])}
    return names


def maybe_defined(root: Path, problems: Iterable[Problem]) -> set[str] | None:
    """What the invalid policy files may still define; None when one of them names nothing readable (then
    any policy may be in it, and greenops removes nothing)."""
    names: set[str] = set()
    for file in sorted({problem.file for problem in problems}):
        path = root / file
        found = None if symlink_on_the_way(root, path) else _names_in(path)  # a link is read nowhere
        if found is None:
            return None
        names |= found
    return names


def generated_by_policy(workspace: Workspace) -> dict[str, list[PurePosixPath]]:
    """Files under ``manifests/generated/<namespace>/<name>/`` on the target branch, by ``<name>``."""
    folders: dict[str, list[PurePosixPath]] = {}
    for path in workspace.generated_files(GENERATED_DIR):
        parts = path.relative_to(GENERATED_DIR).parts
        if len(parts) >= 3:
            folders.setdefault(parts[1], []).append(path)
    return folders


def removal(workspace: Workspace, name: str, paths: Sequence[PurePosixPath], where: str) -> ChangeSet | None:
    """A change set deleting what greenops generated for the deleted policy ``name``; None if it wrote none
    of ``paths`` (a folder of a person's files is theirs)."""
    ours: list[PurePosixPath] = []
    source = None
    for path in sorted(paths):
        text = workspace.read_on_target(path) if len(path.relative_to(GENERATED_DIR).parts) == 3 else None
        if text is not None and written_by_greenops(text, name):
            ours.append(path)
            source = source or (generated_from(text) or (None, None))[0]
    if not ours:
        return None
    kept = [str(path) for path in sorted(paths) if path not in ours]
    body = mr.removal_body(name, source, where, [str(path) for path in ours], kept)
    return ChangeSet(branch_for(name), (), (), {path: "" for path in ours}, mr.removal_title(name), body, False,
                     removed=name)


def gone_reason(unit: str, policies: Sequence[Policy], where: str) -> str:
    """Why the bot branch of ``unit`` proposes nothing any more."""
    moved = next((p for p in policies if p.name == unit and p.proposal_group), None)
    if moved is not None:
        return f"{unit} is now proposed with its group, on {branch_for(f'group-{moved.proposal_group}')}"
    if unit.startswith("group-"):
        return f"no policy in {where} has spec.proposal.group {unit.removeprefix('group-')} any more"
    return f"no policy named {unit} is in {where} any more"


def stale_branches(workspace: Workspace, units: set[str], skip: set[str]) -> list[str]:
    """Bot branches of no current unit (policy or group), except those in ``skip``. Only names greenops could
    have made (``greenops/<DNS label>``): ``greenops/a/b`` is someone else's, and would share a local record
    with ``greenops/a-b``."""
    return [branch for branch in workspace.bot_branches(BRANCH_PREFIX)
            if UNIT.fullmatch(branch.removeprefix(BRANCH_PREFIX)) and branch.removeprefix(BRANCH_PREFIX) not in
            units | skip]
