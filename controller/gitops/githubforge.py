"""GitHub: pull requests through the REST API (PyGithub). The only PyGithub import.

Git pushes the branch; the API opens the pull request (title, body, base, draft, labels), updates
its title and body on later proposals, tells whether it was merged or closed (and its labels, where a
reviewer asks for a retry), comments, and closes a proposal greenops no longer makes.
"""

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import github
import requests
from github import BadCredentialsException, GithubException
from github.PullRequest import PullRequest
from github.Repository import Repository

from controller.errors import StalledError, TransientError
from controller.gitops.forge import MergeRequest, Submission
from controller.redact import scrub

T = TypeVar("T")


class GitHubForge:
    name = "github"
    knows_state = True

    def __init__(self, api_url: str, project: str, token: str) -> None:
        self.api_url, self.project = api_url, project
        self.owner = project.split("/", 1)[0]
        self._client = github.Github(auth=github.Auth.Token(token), base_url=api_url, timeout=30, retry=None,
                                     lazy=True)

    def _call(self, what: str, function: Callable[..., T], *args: object, **kwargs: object) -> T:
        try:
            return function(*args, **kwargs)
        except BadCredentialsException as err:
            raise StalledError(f"GitHub at {self.api_url} refused the token ({what}); check GREENOPS_FORGE_TOKEN "
                               "(pull requests: write, contents: read)") from err
        except GithubException as err:
            if err.status == 401:
                raise StalledError(f"GitHub at {self.api_url} refused the token ({what}); check "
                                   "GREENOPS_FORGE_TOKEN") from err
            if err.status in (403, 404, 422):
                raise StalledError(f"GitHub at {self.api_url} cannot {what} in {self.project} ({err.status}: "
                                   f"{scrub(str(err.data))[:300]}); check --forge-project and the token's "
                                   "permissions") from err
            raise TransientError(f"GitHub at {self.api_url} failed to {what} ({err.status})") from err
        except requests.RequestException as err:
            raise TransientError(f"GitHub at {self.api_url} is unreachable ({what}): {scrub(str(err))}") from err

    def _repo(self) -> Repository:
        return self._client.get_repo(self.project)

    def push_options(self, submission: Submission, creating: bool) -> list[str]:
        return []

    def _pull(self, branch: str) -> PullRequest | None:
        pulls = self._call("list pull requests", self._repo().get_pulls, state="all", head=f"{self.owner}:{branch}",
                           sort="created", direction="desc")
        return self._call("list pull requests", lambda: next(iter(pulls), None))

    def find(self, branch: str) -> MergeRequest | None:
        pull = self._pull(branch)
        return None if pull is None else self._call("read the pull request", _request, pull, branch)

    def submit(self, submission: Submission, existing: MergeRequest | None) -> MergeRequest:
        body = submission.body  # mr.body keeps it under GitHub's 65,536 characters
        if existing is not None and existing.state == "open":
            pull = self._call("read the pull request", self._repo().get_pull, int(existing.number.lstrip("#")))
            self._call("update the pull request", pull.edit, title=submission.title, body=body)
        else:
            pull = self._call("open a pull request", self._repo().create_pull, base=submission.target,
                              head=submission.branch, title=submission.title, body=body, draft=submission.draft)
        if submission.labels:  # added, never replaced: reviewers' own labels stay (as GitLab's push option does)
            self._call("label the pull request", pull.add_to_labels, *submission.labels)
        return MergeRequest(submission.branch, "open", submission.title, body, f"#{pull.number}", pull.html_url,
                            submission.draft if existing is None else existing.draft, submission.head)

    def comment(self, request: MergeRequest, text: str) -> None:
        pull = self._call("read the pull request", self._repo().get_pull, int(request.number.lstrip("#")))
        self._call("comment", pull.create_issue_comment, text)

    def close(self, request: MergeRequest, title: str, body: str) -> MergeRequest:
        pull = self._call("read the pull request", self._repo().get_pull, int(request.number.lstrip("#")))
        self._call("close the pull request", pull.edit, title=title, body=body, state="closed")
        return replace(request, state="closed", title=title, body=body)


def _request(pull: PullRequest, branch: str) -> MergeRequest:
    """From the list endpoint's fields: it carries ``merged_at`` but not ``merged`` (reading that would
    fetch each pull request again)."""
    state = "merged" if pull.merged_at is not None else "closed" if pull.state == "closed" else "open"
    return MergeRequest(branch, state, pull.title or "", pull.body or "", f"#{pull.number}", pull.html_url,
                        bool(pull.draft), pull.head.sha if pull.head else None,
                        tuple(label.name for label in pull.labels))
