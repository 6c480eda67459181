"""GitLab: merge requests through git push options, the REST API (python-gitlab) for the rest.

The only python-gitlab import. Push options create and update the merge request in the same push
as the commit (title, description, target, labels, draft, remove-source-branch), so greenops works
with nothing more than push access. With a token it also reads whether a merge request was merged
or closed (a closed one is a declined proposal) and its labels, leaves notes, and closes a proposal
greenops no longer makes; without one it cannot tell, and says so in the log.
"""

import logging
from dataclasses import replace
from typing import Any

import gitlab
import gitlab.exceptions
import requests

from controller.errors import StalledError, TransientError
from controller.gitops.forge import MergeRequest, Submission
from controller.redact import scrub

log = logging.getLogger("greenops.forge")

STATES = {"opened": "open", "locked": "open", "merged": "merged", "closed": "closed"}


def push_option_text(text: str) -> str:
    """GitLab turns a literal backslash-n into a newline; push options cannot hold real ones. (mr.body keeps
    the encoded text under GitLab's 64 KiB per option.)"""
    return text.replace("\r", "").replace("\n", "\\n")


class GitLabForge:
    name = "gitlab"

    def __init__(self, api_url: str, project: str, token: str | None) -> None:
        self.api_url, self.project_path = api_url, project
        self._client = gitlab.Gitlab(api_url, private_token=token, timeout=30, retry_transient_errors=False) \
            if token else None
        self.knows_state = self._client is not None

    def push_options(self, submission: Submission, creating: bool) -> list[str]:
        options = ["merge_request.create"] if creating else []
        options += [f"merge_request.target={submission.target}",
                    f"merge_request.title={push_option_text(submission.title)}",
                    f"merge_request.description={push_option_text(submission.body)}",
                    "merge_request.remove_source_branch",
                    *(f"merge_request.label={label}" for label in submission.labels)]
        if submission.draft:
            options.append("merge_request.draft")
        return options

    def _call(self, what: str, function: object, *args: object, **kwargs: object) -> object:
        assert callable(function)
        try:
            return function(*args, **kwargs)
        except gitlab.exceptions.GitlabAuthenticationError as err:
            raise StalledError(f"GitLab at {self.api_url} refused the token ({what}): {scrub(str(err))}; "
                               "check GREENOPS_FORGE_TOKEN (scope api)") from err
        except gitlab.exceptions.GitlabError as err:
            if err.response_code in (403, 404):
                raise StalledError(f"GitLab at {self.api_url} cannot {what} in {self.project_path} "
                                   f"({err.response_code}); check --forge-project and the token's access") from err
            raise TransientError(f"GitLab at {self.api_url} failed to {what}: {scrub(str(err))}") from err
        except requests.RequestException as err:
            raise TransientError(f"GitLab at {self.api_url} is unreachable ({what}): {scrub(str(err))}") from err

    def _project(self) -> object:
        assert self._client is not None
        return self._call("read the project", self._client.projects.get, self.project_path, lazy=True)

    def find(self, branch: str) -> MergeRequest | None:
        if self._client is None:
            log.info("no GitLab token: cannot tell whether the merge request of %s was merged or closed", branch)
            return None
        found = self._call("list merge requests", self._project().mergerequests.list,  # type: ignore[attr-defined]
                           source_branch=branch, order_by="created_at", sort="desc", per_page=1, get_all=False)
        assert isinstance(found, list)
        return _request(found[0]) if found else None

    def submit(self, submission: Submission, existing: MergeRequest | None) -> MergeRequest:
        """The push options did the work; with a token, read the result back, and open the merge request
        through the API when none is open (a branch pushed on an earlier pass whose request failed)."""
        if existing is not None and existing.state == "open":  # the push options updated it
            return replace(existing, title=submission.title, body=submission.body, head=submission.head)
        if self._client is None:
            return MergeRequest(submission.branch, "open", submission.title, submission.body, "?", None,
                                submission.draft, submission.head)
        found = self.find(submission.branch)  # the one the push options just opened, if GitLab was quick
        if found is not None and found.state == "open":
            return found
        try:
            created = self._call("open a merge request", self._project().mergerequests.create,  # type: ignore[attr-defined]
                                 {"source_branch": submission.branch, "target_branch": submission.target,
                                  # the API has no draft field: GitLab reads it from the title prefix
                                  "title": f"Draft: {submission.title}" if submission.draft else submission.title,
                                  "description": submission.body,
                                  "labels": ",".join(submission.labels), "remove_source_branch": True})
        except (StalledError, TransientError):
            again = self.find(submission.branch)  # 409: the push options' request appeared meanwhile
            if again is not None and again.state == "open":
                return again
            raise
        return _request(created)

    def comment(self, request: MergeRequest, text: str) -> None:
        if self._client is None:
            log.warning("no GitLab token: cannot leave a note on the merge request of %s: %s", request.branch, text)
            return
        merge_request = self._call("read the merge request", self._project().mergerequests.get,  # type: ignore[attr-defined]
                                   request.number.lstrip("!"), lazy=True)
        self._call("comment", merge_request.notes.create, {"body": text})  # type: ignore[attr-defined]

    def close(self, request: MergeRequest, title: str, body: str) -> MergeRequest:
        """PUT the merge request with ``state_event=close`` and the new title and description."""
        if self._client is None:  # greenops never finds a request to close without a token
            return request
        merge_request: Any = self._call("read the merge request", self._project().mergerequests.get,  # type: ignore[attr-defined]
                                        request.number.lstrip("!"), lazy=True)
        merge_request.state_event, merge_request.title, merge_request.description = "close", title, body
        self._call("close the merge request", merge_request.save)
        return replace(request, state="closed", title=title, body=body)


def _request(merge_request: object) -> MergeRequest:
    data = merge_request.attributes  # type: ignore[attr-defined]
    return MergeRequest(data["source_branch"], STATES.get(data["state"], "open"), data.get("title") or "",
                        data.get("description") or "", f"!{data['iid']}", data.get("web_url"),
                        bool(data.get("draft") or data.get("work_in_progress")), data.get("sha"),
                        tuple(str(label) for label in data.get("labels") or ()))
