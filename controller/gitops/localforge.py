"""The embedded forge: merge requests kept as files in the state directory.

For any git remote without a forge API (the default, and the demo). Each bot branch has one record,
``<state>/merge-requests/<name>.json`` (machine-readable) and ``<name>.md`` (title, body and diff for
people); ``greenops mr list``, ``mr show``, ``mr close`` and ``mr retry`` read and change them. A merge
request is merged when its commit (or, after a squash, its content) reaches the target branch, and closed
when ``greenops mr close`` declines it, greenops closes it or its branch is deleted; ``find`` checks the
first and last with git. ``mr retry`` labels a closed request ``greenops:retry``, as a reviewer would on
GitLab or GitHub. Earlier requests of the same branch are kept in the record's history.
"""

import json
from pathlib import Path
from typing import Any

from controller.errors import StalledError
from controller.gitops.forge import BRANCH_PREFIX, RETRY_LABEL, MergeRequest, Submission
from controller.gitops.workspace import Workspace
from controller.state import merge_request_dir, write_atomic


def record_name(branch: str) -> str:
    return branch.removeprefix(BRANCH_PREFIX).replace("/", "-")


class LocalForge:
    name = "local"
    knows_state = True

    def __init__(self, state_dir: Path, workspace: Workspace | None = None) -> None:
        self.folder = merge_request_dir(state_dir)
        self.workspace = workspace  # None: records only (`greenops mr`), no git to learn merges from

    def _path(self, branch: str) -> Path:
        return self.folder / f"{record_name(branch)}.json"

    def _load(self, branch: str) -> dict[str, Any] | None:
        path = self._path(branch)
        if not path.is_file():
            return None
        try:
            record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise StalledError(f"{path} is not a readable merge-request record ({err}); delete it to start over") \
                from err
        if not isinstance(record, dict) or "branch" not in record:
            raise StalledError(f"{path} is not a merge-request record of this greenops version; delete it to start "
                               "over")
        for key, default in (("history", []), ("number", 0), ("state", "open"), ("title", ""), ("body", "")):
            record.setdefault(key, default)
        return record

    def _save(self, record: dict[str, Any]) -> None:
        write_atomic(self._path(record["branch"]), json.dumps(record, indent=2, sort_keys=True) + "\n")
        write_atomic(self._path(record["branch"]).with_suffix(".md"), render(record))

    def push_options(self, submission: Submission, creating: bool) -> list[str]:
        return []

    def find(self, branch: str) -> MergeRequest | None:
        """The branch's request; an open one is marked merged once git shows its commit (or content) on the
        target, and closed once its branch was deleted without that."""
        record = self._load(branch)
        if record is None:
            return None
        request = _request(record)
        if request.state != "open" or request.head is None or self.workspace is None:
            return request
        if self.workspace.merged(request.head):
            return self.mark(request, "merged")
        if self.workspace.branch_head(branch) is None:
            return self.mark(request, "closed")
        return request

    def submit(self, submission: Submission, existing: MergeRequest | None) -> MergeRequest:
        record = self._load(submission.branch) or {"branch": submission.branch, "history": [], "number": 0}
        if existing is None or existing.state != "open":
            if record.get("state"):
                record["history"].append({k: record[k] for k in ("number", "state", "title", "body")})
            record["number"] = int(record["number"]) + 1
            record["notes"] = []
        record.update(state="open", title=submission.title, body=submission.body, draft=submission.draft,
                      target=submission.target, labels=list(submission.labels), diff=submission.diff,
                      head=submission.head)
        self._save(record)
        return _request(record)

    def comment(self, request: MergeRequest, text: str) -> None:
        record = self._load(request.branch)
        if record is not None:
            record.setdefault("notes", []).append(text)
            self._save(record)

    def close(self, request: MergeRequest, title: str, body: str) -> MergeRequest:
        record = self._load(request.branch)
        if record is None:
            return request
        record.update(state="closed", title=title, body=body)
        self._save(record)
        return _request(record)

    def retry(self, request: MergeRequest) -> MergeRequest:
        """Label a closed request ``greenops:retry``: the next pass proposes its policy's decision again."""
        record = self._load(request.branch)
        if record is None:
            return request
        record["labels"] = [*(label for label in record.get("labels", []) if label != RETRY_LABEL), RETRY_LABEL]
        self._save(record)
        return _request(record)

    def mark(self, request: MergeRequest, state: str) -> MergeRequest:
        """Record that ``request`` was merged or closed."""
        record = self._load(request.branch)
        if record is None:
            return request
        record["state"] = state
        self._save(record)
        return _request(record)

    def all(self) -> list[MergeRequest]:
        if not self.folder.is_dir():
            return []
        requests = [self._load(path.stem) for path in sorted(self.folder.glob("*.json"))]
        return [_request(r) for r in requests if r is not None]

    def show(self, name: str) -> str | None:
        path = self.folder / f"{record_name(name)}.md"
        return path.read_text(encoding="utf-8") if path.is_file() else None


def _request(record: dict[str, Any]) -> MergeRequest:
    return MergeRequest(record["branch"], record.get("state", "open"), record.get("title", ""),
                        record.get("body", ""), f"!{record.get('number', 0)}", None, bool(record.get("draft")),
                        record.get("head"), tuple(record.get("labels", ())))


def render(record: dict[str, Any]) -> str:
    """The merge request as people read it: state, title, body, notes and diff."""
    draft = "Draft: " if record.get("draft") else ""
    notes = "".join(f"\n\n> **Note:** {note}" for note in record.get("notes", []))
    return (f"# {draft}{record['title']}\n\n_State: {record['state']} · !{record['number']} · "
            f"{record['branch']} → {record['target']} · labels: {', '.join(record.get('labels', []))}_\n\n"
            f"{record['body']}{notes}\n\n```diff\n{record.get('diff', '')}\n```\n")

