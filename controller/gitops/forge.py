"""Where merge requests live: the Forge interface, and the provider chosen by configuration.

Git does the pushing (workspace.py); a forge only opens, reads, updates and comments on the merge
request for a pushed branch. Three providers: ``local`` (records in the state directory, the
embedded default), ``gitlab`` (push options, plus the REST API when a token is given) and
``github`` (the REST API). Tokens come from the environment or a file, never from the policy
repository, and are registered with ``redact`` so no message can carry them.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from controller.errors import StalledError
from controller.redact import register_secret

if TYPE_CHECKING:
    from controller.gitops.workspace import Workspace

BRANCH_PREFIX = "greenops/"
RETRY_LABEL = "greenops:retry"  # on a closed merge request: a reviewer asks greenops to propose it again
TOKEN_VARIABLES = {"gitlab": ("GREENOPS_FORGE_TOKEN", "GITLAB_TOKEN"),
                   "github": ("GREENOPS_FORGE_TOKEN", "GITHUB_TOKEN")}
DEFAULT_API = {"gitlab": "https://gitlab.com", "github": "https://api.github.com"}


def branch_for(unit: str) -> str:
    """The bot branch of a policy or of ``group-<group>``: one branch, one merge request."""
    return BRANCH_PREFIX + unit


@dataclass(frozen=True)
class MergeRequest:
    """A merge request as the forge reports it."""

    branch: str
    state: str  # open | merged | closed (closed without merge: the proposal was declined)
    title: str
    body: str
    number: str  # the forge's id, for people (GitLab !iid, GitHub #number, local counter)
    url: str | None = None
    draft: bool = False
    head: str | None = None  # the commit it proposes
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Submission:
    """What greenops wants a merge request to say."""

    branch: str
    target: str
    title: str
    body: str
    draft: bool
    labels: tuple[str, ...]
    diff: str
    head: str | None = None  # the pushed commit


class Forge(Protocol):
    name: str
    knows_state: bool  # False: cannot read merge requests back (GitLab without a token)

    def push_options(self, submission: Submission, creating: bool) -> list[str]:
        """Options for the push that carries ``submission`` (GitLab creates and updates MRs with them)."""
        ...

    def find(self, branch: str) -> MergeRequest | None:
        """The newest merge request from ``branch``, whatever its state; None if there is none (or the
        forge cannot tell without a token)."""
        ...

    def submit(self, submission: Submission, existing: MergeRequest | None) -> MergeRequest:
        """Open a merge request for the pushed branch, or update ``existing`` when it is open."""
        ...

    def comment(self, request: MergeRequest, text: str) -> None:
        """Leave a note on ``request`` for the people reviewing it."""
        ...

    def close(self, request: MergeRequest, title: str, body: str) -> MergeRequest:
        """Close the open ``request`` without merging it, with a new title and body (which say why)."""
        ...


@dataclass(frozen=True)
class ForgeSettings:
    kind: str = "local"  # local | gitlab | github
    api_url: str | None = None  # default: gitlab.com / api.github.com
    project: str | None = None  # GitLab project path or GitHub owner/name; default: from the repository URL
    token_file: Path | None = None
    labels: tuple[str, ...] = ("greenops",)


def read_token(settings: ForgeSettings) -> str | None:
    """The forge token from ``--forge-token-file`` or the environment; registered for redaction."""
    token = None
    if settings.token_file is not None:
        try:
            token = settings.token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise StalledError(f"cannot read the forge token file {settings.token_file}: {err.strerror}; "
                               "check --forge-token-file") from err
        if not token:
            raise StalledError(f"the forge token file {settings.token_file} is empty")
    for variable in TOKEN_VARIABLES.get(settings.kind, ()):
        token = token or os.environ.get(variable, "").strip() or None
    if token:
        register_secret(token)
    return token


def project_from_url(url: str) -> str | None:
    """``https://gitlab.example.com/group/sub/app.git`` or ``git@github.com:owner/app.git`` -> the path."""
    path = urlsplit(url).path.lstrip("/") if "://" in url else url.split(":", 1)[-1]
    path = path.removesuffix("/").removesuffix(".git")
    return path if "/" in path and not path.startswith("/") else None


def open_forge(settings: ForgeSettings, repo_url: str, state_dir: Path, workspace: "Workspace | None" = None) -> Forge:
    """The configured provider; each SDK is imported only when its provider is chosen. The local forge
    learns from ``workspace`` (git) whether its requests were merged."""
    if settings.kind == "local":
        from controller.gitops.localforge import LocalForge

        return LocalForge(state_dir, workspace)
    project = settings.project or project_from_url(repo_url)
    if project is None:
        raise StalledError(f"cannot tell the {settings.kind} project from the repository URL; pass --forge-project")
    token = read_token(settings)
    api_url = settings.api_url or DEFAULT_API[settings.kind]
    if settings.kind == "gitlab":
        from controller.gitops.gitlabforge import GitLabForge

        return GitLabForge(api_url, project, token)
    if token is None:
        raise StalledError("the github forge needs a token: set GREENOPS_FORGE_TOKEN (or GITHUB_TOKEN), or pass "
                           "--forge-token-file")
    from controller.gitops.githubforge import GitHubForge

    return GitHubForge(api_url, project, token)
