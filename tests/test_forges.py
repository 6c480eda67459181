"""GitHub and GitLab REST behaviour against the FAKE servers of fakeforges.py (git pushes stay real)."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from controller.errors import StalledError, TransientError
from controller.gitops.forge import RETRY_LABEL, Forge, ForgeSettings, open_forge, project_from_url
from controller.gitops.retire import close_merge_request
from controller.gitops.workspace import Workspace
from controller.gitops.writeback import WriteBack, ensure_merge_request

from .conftest import git, human_commit, make_remote, recorded_push_options
from .fakeforges import FakeForgeState, add_gitlab_merge_request, fake_forge
from .test_writeback import LABELS, change_for, proposal

TOKEN = "ghp_s3cretTOKENvalue1234"


@pytest.fixture(autouse=True)
def forge_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENOPS_FORGE_TOKEN", TOKEN)


@contextmanager
def against(kind: str, tmp_path: Path, token: str = TOKEN) -> Iterator[tuple[Path, Workspace, FakeForgeState, Forge]]:
    """A real bare remote, its clone, the FAKE forge of ``kind`` and the forge client pointed at it."""
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    workspace = Workspace.open(str(remote), tmp_path / "state")
    with fake_forge(kind, token) as fake:
        yield remote, workspace, fake, open_forge(ForgeSettings(kind, fake.base, "team/gitops"), str(remote),
                                                  tmp_path / "state")


def writes(requests: list[tuple[str, str, str]]) -> list[str]:
    return [f"{method} {path}" for method, path, _ in requests if method != "GET"]


def test_github_pull_request_is_opened_labelled_then_updated_and_left_alone_when_unchanged(tmp_path: Path) -> None:
    with against("github", tmp_path) as (remote, workspace, github, forge):
        first = ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True, tmp_path)
        assert first.status == "created" and first.request and first.request.number == "#1"
        (pull,) = github.pulls
        assert pull["head"]["ref"] == "greenops/fraud-detector" and pull["base"]["ref"] == "main"
        assert [label["name"] for label in pull["labels"]] == list(LABELS) and "greenops-decision" in pull["body"]
        pull["labels"].append({"name": "do-not-merge"})  # a reviewer's label
        github.requests.clear()
        workspace.repo.remotes.origin.fetch()
        same = ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True, tmp_path)
        assert same.status == "unchanged" and writes(github.requests) == []  # no API write
        newer = ensure_merge_request(workspace, forge, change_for(workspace, proposal(0.008)), LABELS, True, True,
                                     tmp_path)
        assert newer.status == "updated" and "PATCH /repos/team/gitops/pulls/1" in writes(github.requests)
        assert len(github.pulls) == 1 and github.pulls[0]["title"] == change_for(workspace, proposal(0.008)).title
        assert [label["name"] for label in github.pulls[0]["labels"]] == [*LABELS, "do-not-merge"]
    assert recorded_push_options(remote) == [[], []]


def test_github_closed_pull_request_is_a_declined_proposal(tmp_path: Path) -> None:
    with against("github", tmp_path) as (_remote, workspace, github, forge):
        ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True, tmp_path)
        github.pulls[0]["state"] = "closed"
        github.requests.clear()
        declined = ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True,
                                        tmp_path)
        assert declined.status == "declined" and "#1" in declined.message and writes(github.requests) == []
        reopened = ensure_merge_request(workspace, forge, change_for(workspace, proposal(0.012)), LABELS, True,
                                        True, tmp_path)
        assert reopened.status == "created" and reopened.request and reopened.request.number == "#2"


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_a_refused_token_is_stalled_and_never_shown(tmp_path: Path, kind: str) -> None:
    """The fake answers 401 and echoes the token it was sent into its error text."""
    with (against(kind, tmp_path, token="another-token") as (_remote, workspace, _fake, forge),
          pytest.raises(StalledError, match="refused the token") as raised):
        ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True, tmp_path)
    assert TOKEN not in str(raised.value)


def test_github_needs_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREENOPS_FORGE_TOKEN")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(StalledError, match="needs a token"):
        open_forge(ForgeSettings("github"), "git@github.com:team/gitops.git", tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    assert open_forge(ForgeSettings("github", token_file=token_file), "https://github.com/team/gitops.git",
                      tmp_path).name == "github"


@pytest.mark.parametrize(("url", "project"), [
    ("https://gitlab.example.com/group/sub/app.git", "group/sub/app"),
    ("git@github.com:owner/app.git", "owner/app"),
    ("https://bot:tok@github.com/owner/app", "owner/app"),
    ("/srv/git/remote.git", None),
    ("https://gitlab.example.com", None),
])
def test_project_from_repository_url(url: str, project: str | None) -> None:
    assert project_from_url(url) == project


def test_gitlab_reads_state_and_leaves_one_note_on_a_held_branch(tmp_path: Path) -> None:
    with against("gitlab", tmp_path) as (remote, workspace, gitlab, forge):
        change = change_for(workspace, proposal())
        created = ensure_merge_request(workspace, forge, change, LABELS, True, True, tmp_path)
        assert created.status == "created" and recorded_push_options(remote)[0][0] == "merge_request.create"
        # the fake cannot see push options, so the request was opened through the API, with the labels
        assert [path for method, path, _ in gitlab.requests if method == "POST"] == [
            "/api/v4/projects/team%2Fgitops/merge_requests"]
        assert len(gitlab.pulls) == 1 and gitlab.pulls[0]["labels"] == list(LABELS)
        human_commit(remote, change.branch, tmp_path / "human")
        for _ in range(2):
            workspace.repo.remotes.origin.fetch()
            held = ensure_merge_request(workspace, forge, change_for(workspace, proposal(0.008)), LABELS, True, True,
                                        tmp_path)
            assert held.status == "held"
        assert len(gitlab.comments) == 1 and "did not make" in gitlab.comments[0][1]


def test_gitlab_api_opens_a_low_confidence_proposal_as_a_draft(tmp_path: Path) -> None:
    with against("gitlab", tmp_path) as (_remote, workspace, gitlab, forge):
        change = replace(change_for(workspace, proposal()), draft=True)
        ensure_merge_request(workspace, forge, change, LABELS, True, True, tmp_path)
        assert gitlab.pulls[0]["title"] == f"Draft: {change.title}"


def test_gitlab_closed_merge_request_is_a_declined_proposal(tmp_path: Path) -> None:
    with against("gitlab", tmp_path) as (remote, workspace, gitlab, forge):
        change = change_for(workspace, proposal())
        ensure_merge_request(workspace, forge, change, LABELS, True, True, tmp_path)
        gitlab.pulls[0]["state"] = "closed"
        pushes = len(recorded_push_options(remote))
        declined = ensure_merge_request(workspace, forge, change, LABELS, True, True, tmp_path)
        assert declined.status == "declined" and declined.request and declined.request.number == "!1"
        assert len(recorded_push_options(remote)) == pushes


def test_gitlab_opens_the_request_through_the_api_when_push_options_left_none(tmp_path: Path) -> None:
    with against("gitlab", tmp_path) as (_remote, workspace, gitlab, forge):
        change = change_for(workspace, proposal())
        add_gitlab_merge_request(gitlab, "team/gitops", change.branch, "merged", "an earlier proposal")
        result = ensure_merge_request(workspace, forge, change, LABELS, True, True, tmp_path)
        assert result.status == "created" and result.request and result.request.number == "!2"
        assert [p["state"] for p in gitlab.pulls] == ["merged", "opened"]


def test_a_pull_request_that_failed_to_open_is_opened_on_the_next_pass(tmp_path: Path) -> None:
    with against("github", tmp_path) as (remote, workspace, github, forge):
        github.fail_next_post = True
        with pytest.raises(TransientError):
            ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True, tmp_path)
        assert github.pulls == [] and "greenops/fraud-detector" in git("branch", "--all", cwd=remote)
        workspace.repo.remotes.origin.fetch()
        again = ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True, tmp_path)
        assert again.status == "created" and len(github.pulls) == 1


def tokenless_gitlab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Workspace, Forge]:
    """A real remote and the GitLab forge without a token: greenops can push, not call the API."""
    monkeypatch.delenv("GREENOPS_FORGE_TOKEN")
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    workspace = Workspace.open(str(remote), tmp_path / "state")
    forge = open_forge(ForgeSettings("gitlab", project="team/gitops"), str(remote), tmp_path / "state")
    return remote, workspace, forge


def test_gitlab_without_a_token_counts_an_existing_branch_as_an_open_request(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    remote, workspace, forge = tokenless_gitlab(tmp_path, monkeypatch)
    assert ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True,
                                tmp_path).status == "created"
    workspace.repo.remotes.origin.fetch()
    update = ensure_merge_request(workspace, forge, change_for(workspace, proposal(0.008)), LABELS, True, False,
                                  tmp_path)  # the --max-mrs-per-run cap is reached, yet an update goes through
    assert update.status == "updated" and "merge_request.create" not in recorded_push_options(remote)[1]


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_an_unsupported_proposal_is_closed_and_a_retry_label_asks_again_for_a_declined_one(tmp_path: Path,
                                                                                         kind: str) -> None:
    """Issue 13: a stale proposal stayed open; a declined one could never be asked for again."""
    with against(kind, tmp_path) as (remote, workspace, fake, forge):
        def write() -> WriteBack:
            workspace.repo.remotes.origin.fetch(prune=True)
            return ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True,
                                        tmp_path)

        body = "body" if kind == "github" else "description"
        write()
        reason = "fraud-detector: no change proposed: below minSavingPercent 95"
        closed = close_merge_request(workspace, forge, "greenops/fraud-detector", reason, True, tmp_path)
        assert closed and closed.status == "closed"
        first = fake.pulls[0]
        assert first["state"] == "closed" and first["title"].endswith(" - autoclosed")
        assert first[body].startswith(f"> **Closed by greenops:** {reason}")
        assert fake.comments == [(1, f"greenops closed this merge request: {reason}. It deleted the branch "
                                  "`greenops/fraud-detector`. It opens a new merge request when it proposes a change "
                                  "again.")]
        assert "greenops/" not in git("branch", "--all", cwd=remote)
        assert write().status == "created"  # greenops closed the first one: not a declined proposal
        fake.pulls[1]["state"] = "closed"  # a reviewer declines the second
        assert write().status == "declined"
        fake.pulls[1]["labels"].append({"name": RETRY_LABEL} if kind == "github" else RETRY_LABEL)  # and asks again
        retried = write()
        assert retried.status == "created" and len(fake.pulls) == 3 and fake.pulls[2]["state"] in ("open", "opened")


def test_gitlab_without_a_token_deletes_the_branch_of_an_unsupported_proposal(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """It cannot close the merge request or comment, but the request then has nothing left to merge."""
    remote, workspace, forge = tokenless_gitlab(tmp_path, monkeypatch)
    ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True, tmp_path)
    workspace.repo.remotes.origin.fetch()
    args = (workspace, forge, "greenops/fraud-detector", "no change proposed", True, tmp_path)
    closed = close_merge_request(*args)
    assert closed and closed.status == "closed" and "close it by hand" in closed.message
    assert "greenops/" not in git("branch", "--all", cwd=remote)
    assert close_merge_request(*args) is None
