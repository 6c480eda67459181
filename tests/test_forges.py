"""GitHub and GitLab REST behaviour against the FAKE servers of fakeforges.py (git pushes stay real)."""

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from controller.errors import StalledError
from controller.gitops.forge import ForgeSettings, open_forge, project_from_url
from controller.gitops.workspace import Workspace
from controller.gitops.writeback import ensure_merge_request

from .conftest import human_commit, make_remote, recorded_push_options
from .fakeforges import add_gitlab_merge_request, fake_forge
from .test_writeback import LABELS, change_for, proposal

TOKEN = "ghp_s3cretTOKENvalue1234"


@pytest.fixture(autouse=True)
def forge_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENOPS_FORGE_TOKEN", TOKEN)


def writes(requests: list[tuple[str, str, str]]) -> list[str]:
    return [f"{method} {path}" for method, path, _ in requests if method != "GET"]


def test_github_pull_request_is_opened_labelled_then_updated_and_left_alone_when_unchanged(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    workspace = Workspace.open(str(remote), tmp_path / "state")
    with fake_forge("github", TOKEN) as github:
        forge = open_forge(ForgeSettings("github", github.base, "team/gitops"), str(remote), tmp_path / "state")
        first = ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True, tmp_path)
        assert first.status == "created" and first.request and first.request.number == "#1"
        (pull,) = github.pulls
        assert pull["head"]["ref"] == "greenops/fraud-detector" and pull["base"]["ref"] == "main"
        assert [label["name"] for label in pull["labels"]] == list(LABELS) and "greenops-decision" in pull["body"]
        github.requests.clear()
        workspace.repo.remotes.origin.fetch()
        same = ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True, tmp_path)
        assert same.status == "unchanged" and writes(github.requests) == []  # no API write
        newer = ensure_merge_request(workspace, forge, change_for(workspace, proposal(0.008)), LABELS, True, True,
                                     tmp_path)
        assert newer.status == "updated" and "PATCH /repos/team/gitops/pulls/1" in writes(github.requests)
        assert len(github.pulls) == 1 and github.pulls[0]["title"] == change_for(workspace, proposal(0.008)).title
    assert recorded_push_options(remote) == [[], []]


def test_github_closed_pull_request_is_a_declined_proposal(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    workspace = Workspace.open(str(remote), tmp_path / "state")
    with fake_forge("github", TOKEN) as github:
        forge = open_forge(ForgeSettings("github", github.base, "team/gitops"), str(remote), tmp_path / "state")
        ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True, tmp_path)
        github.pulls[0]["state"] = "closed"
        github.requests.clear()
        declined = ensure_merge_request(workspace, forge, change_for(workspace, proposal()), LABELS, True, True,
                                        tmp_path)
        assert declined.status == "declined" and "#1" in declined.message and writes(github.requests) == []
        reopened = ensure_merge_request(workspace, forge, change_for(workspace, proposal(0.012)), LABELS, True,
                                        True, tmp_path)
        assert reopened.status in ("created", "updated") and reopened.request and reopened.request.number == "#2"


def test_github_refused_token_is_stalled_and_never_shown(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    workspace = Workspace.open(str(remote), tmp_path / "state")
    with fake_forge("github", "another-token") as github:
        forge = open_forge(ForgeSettings("github", github.base, "team/gitops"), str(remote), tmp_path / "state")
        with pytest.raises(StalledError, match="refused the token") as raised:
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
])
def test_project_from_repository_url(url: str, project: str | None) -> None:
    assert project_from_url(url) == project


def test_gitlab_reads_state_and_leaves_one_note_on_a_held_branch(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    workspace = Workspace.open(str(remote), tmp_path / "state")
    with fake_forge("gitlab", TOKEN) as gitlab:
        forge = open_forge(ForgeSettings("gitlab", gitlab.base, "team/gitops"), str(remote), tmp_path / "state")
        change = change_for(workspace, proposal())
        created = ensure_merge_request(workspace, forge, change, LABELS, True, True, tmp_path)
        assert created.status == "created" and recorded_push_options(remote)[0][0] == "merge_request.create"
        add_gitlab_merge_request(gitlab, "team/gitops", change.branch, "opened", change.body)  # what the push did
        human_commit(remote, change.branch, tmp_path / "human")
        for _ in range(2):
            workspace.repo.remotes.origin.fetch()
            held = ensure_merge_request(workspace, forge, change_for(workspace, proposal(0.008)), LABELS, True, True,
                                        tmp_path)
            assert held.status == "held"
        assert len(gitlab.comments) == 1 and "did not make" in gitlab.comments[0][1]
        gitlab.pulls[0]["state"] = "closed"
        declined = ensure_merge_request(workspace, forge, replace(change), LABELS, True, True, tmp_path)
        assert declined.status == "declined" and declined.request and declined.request.number == "!1"
    seen = "\n".join(r.getMessage() for r in caplog.records) + str(gitlab.requests)
    assert TOKEN not in seen
