"""The GitOps repository is untrusted input (issue 14): committed symbolic links, against a real bare remote.

Whoever can push to the policy repository must not make greenops read a file outside its clone (and print
it in a message) or write the generated manifests through a link to somewhere else.
"""

import json
import os
from pathlib import Path, PurePosixPath

import pytest

from controller.cli import main
from controller.confine import unsafe_to_write
from controller.gitops.localforge import LocalForge
from controller.gitops.workspace import Workspace
from controller.policy.validate import validate_paths
from controller.reconcile import Settings, _write_back, policy_units

from .conftest import ALICE, example_policy, git, make_remote
from .test_prune import INVALID, full_pass, generated
from .test_writeback import change_for, proposal

SECRET = "s3cret-content-that-must-never-be-printed"


def outside(tmp_path: Path) -> Path:
    """A folder beside the clone holding a planted secret (as if /etc/passwd or a token file)."""
    folder = tmp_path / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "secret.yaml").write_text(f"{SECRET}: {SECRET}\n")
    (folder / "passwd").write_text(f"root:x:0:0:{SECRET}:/root:/bin/bash\n")
    return folder


def commit_links(remote: Path, work: Path, links: dict[str, str]) -> None:
    """Alice commits symbolic links (path -> target, as `ln -s` takes it) to main and pushes."""
    if not work.exists():
        git("clone", "--quiet", str(remote), str(work))
    for path, target in links.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, work / path)
    git("add", "--all", cwd=work)
    git(*ALICE, "commit", "--quiet", "-m", "links", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)


def policy_links(tmp_path: Path) -> dict[str, str]:
    """A file link by absolute path, a relative one climbing out with .., /etc/passwd and a folder link."""
    secrets = outside(tmp_path)
    climbing = os.path.relpath(secrets / "secret.yaml", tmp_path / "w" / "policies" / "nested")
    return {"policies/absolute.yaml": str(secrets / "passwd"),
            "policies/nested/climbing.yml": climbing,
            "policies/passwd.yaml": "/etc/passwd",
            "policies/folder": str(secrets)}


def assert_refused(problems: list[str], shown: str) -> None:
    (line,) = [p for p in problems if p.startswith(f"{shown}:")]
    assert line == f"{shown}:1:1: (root): is a symbolic link; greenops never follows symbolic links in the " \
        "repository (they can reach files outside it): replace the symlink with a regular file (or folder), " \
        "or remove it"


def test_policy_symlinks_are_located_problems_and_their_targets_are_never_read(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"policies/churn-predictor.yaml": example_policy("churn-predictor")})
    commit_links(remote, tmp_path / "w", policy_links(tmp_path))
    units, problems = policy_units(Settings(str(remote), tmp_path / "state", "sqlite:///unused.db"))
    assert units == {"churn-predictor": ("churn-predictor",)}  # the regular file is still reconciled
    for shown in ("policies/absolute.yaml", "policies/nested/climbing.yml", "policies/passwd.yaml",
                  "policies/folder"):
        assert_refused(problems, shown)
    assert len(problems) == 4 and not any(SECRET in p or "root:x:0:0" in p for p in problems)


def test_validate_refuses_policy_symlinks_named_or_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """CI validates merge requests from anyone: a link must not print the runner's files into the log."""
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    commit_links(remote, tmp_path / "w", policy_links(tmp_path))
    monkeypatch.chdir(tmp_path / "w")
    assert main(["validate"]) == 1
    out, err = capsys.readouterr()
    assert "policies/folder:1:1: (root): is a symbolic link" in out and len(out.splitlines()) == 4
    assert main(["validate", "--output", "json", "policies/passwd.yaml", "policies/nested"]) == 1
    report, more = capsys.readouterr()
    assert [p["file"] for p in json.loads(report)["problems"]] == ["policies/nested/climbing.yml",
                                                                     "policies/passwd.yaml"]
    assert not any(SECRET in text or "root:x:0:0" in text for text in (out, err, report, more))


def test_a_link_in_a_parent_folder_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "policies").symlink_to(outside(tmp_path))
    result = validate_paths([tmp_path / "repo" / "policies" / "secret.yaml"], relative_to=tmp_path / "repo")
    assert [p.render() for p in result.problems] == [
        "policies:1:1: (root): is a symbolic link; greenops never follows symbolic links in the repository (they "
        "can reach files outside it): replace the symlink with a regular file (or folder), or remove it"]


def test_reconcile_reports_a_policy_symlink_and_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    remote = make_remote(tmp_path, {"policies/churn-predictor.yaml": example_policy("churn-predictor")})
    commit_links(remote, tmp_path / "w", {"policies/passwd.yaml": str(outside(tmp_path) / "passwd")})
    store = tmp_path / "no-store" / "mlflow.db"
    code = main(["reconcile", "--repo", str(remote), "--state-dir", str(tmp_path / "state"), "--mlflow-uri",
                 f"sqlite:///{store}", "--output", "json"])
    out = capsys.readouterr().out
    report = {o["policy"]: o for o in json.loads(out)}
    assert code == 1 and SECRET not in out
    assert report["policies/passwd.yaml"]["status"] == "stalled"
    assert "policies/passwd.yaml:1:1: (root): is a symbolic link" in report["policies/passwd.yaml"]["message"]
    assert report["churn-predictor"]["status"] == "stalled"  # reached: its MLflow store is missing


def test_a_policy_symlink_is_never_read_to_decide_what_a_deleted_policy_leaves(tmp_path: Path) -> None:
    """The removal of a deleted policy's files asks the invalid files which names they may define: a link
    is not asked (it pointed at a file outside naming another policy), so nothing is removed on its word."""
    remote = make_remote(tmp_path, {**generated("old-model"), "policies/fraud-detector.yaml": INVALID})
    (tmp_path / "elsewhere.yaml").write_text("metadata: {name: someone-else}\n")
    commit_links(remote, tmp_path / "w", {"policies/linked.yaml": str(tmp_path / "elsewhere.yaml")})
    outcome = full_pass(remote, tmp_path)["old-model"]
    assert outcome.status == "stalled" and "a policy file that cannot be read may define it" in outcome.message
    assert "greenops/" not in git("branch", "--all", cwd=remote)


GENERATED = "manifests/generated/payments-ml"


def write_links(tmp_path: Path, workspace: Workspace) -> dict[str, dict[str, str]]:
    """Each way a link can send the generated files out of the clone (the folder holds the policy's files)."""
    secrets = outside(tmp_path)
    policy_folder = workspace.root / GENERATED / "fraud-detector"
    return {
        "file link": {f"{GENERATED}/fraud-detector/fraud-detector.cronjob.yaml": str(secrets / "passwd")},
        "dangling file link": {f"{GENERATED}/fraud-detector/kustomization.yaml": str(secrets / "new.yaml")},
        "folder link": {GENERATED: str(secrets)},
        "relative folder link with ..": {f"{GENERATED}/fraud-detector": os.path.relpath(secrets, policy_folder.parent)},
        "link that stays in the clone": {GENERATED: "../.."},
    }


@pytest.mark.parametrize("kind", ["file link", "dangling file link", "folder link", "relative folder link with ..",
                                  "link that stays in the clone"])
def test_generated_files_are_never_written_through_a_symlink(tmp_path: Path, kind: str) -> None:
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    state = tmp_path / "state"
    workspace = Workspace.open(str(remote), state)
    links = write_links(tmp_path, workspace)[kind]
    commit_links(remote, tmp_path / "w", links)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file() and ".git" not in path.parts}
    workspace.repo.remotes.origin.fetch(prune=True)
    settings = Settings(str(remote), state, "sqlite:///unused.db")
    forge = LocalForge(state, workspace)
    (outcome,) = _write_back(change_for(workspace, proposal()), settings, workspace, forge, True, True)

    assert outcome.status == "stalled" and outcome.proposal is None
    (link,) = links
    assert f"{link} is a symbolic link in the repository" in outcome.message
    assert "replace the symlink with a regular file" in outcome.message and "nothing was written" in outcome.message
    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file() and ".git" not in path.parts}
    changed = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
    assert not {path for path in changed if state / "workspaces" not in path.parents}  # nothing outside the clone
    assert not (workspace.root / "fraud-detector").exists()  # nor elsewhere in it
    assert "greenops/" not in git("branch", "--all", cwd=remote) and not forge.all()
    assert git("status", "--porcelain", cwd=workspace.root) == ""  # the clone is back on the target

    other = change_for(workspace, proposal(name="churn-predictor", namespace="crm-ml"))  # not behind a link
    (written,) = _write_back(other, settings, workspace, forge, True, True)
    assert written.status == "ok" and written.proposal and written.proposal.status == "created", written.message


@pytest.mark.parametrize(("path", "reason"), [
    ("../outside.yaml", "is not a path inside the repository"),
    ("manifests/../../outside.yaml", "is not a path inside the repository"),
    ("/etc/cron.d/greenops", "is not a path inside the repository"),
    ("README.md/x.yaml", "README.md is a file where greenops writes the folder for README.md/x.yaml"),
])
def test_paths_out_of_the_clone_are_refused_before_writing(tmp_path: Path, path: str, reason: str) -> None:
    (tmp_path / "README.md").write_text("gitops\n")
    found = unsafe_to_write(tmp_path, PurePosixPath(path))
    assert found is not None and reason in found
    assert unsafe_to_write(tmp_path, PurePosixPath("manifests/generated/ns/p/p.cronjob.yaml")) is None


def test_the_gate_still_reads_a_configmap_mounted_as_kubelet_symlinks(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as links into ..data: those are the kubelet's, not the repository's."""
    mount = tmp_path / "mount"
    (mount / "..2026_03_01").mkdir(parents=True)
    (mount / "..2026_03_01" / "policy.yaml").write_text(example_policy("fraud-detector"))
    (mount / "..data").symlink_to("..2026_03_01")
    (mount / "policy.yaml").symlink_to("..data/policy.yaml")
    from controller.gate.config import _only_policy

    assert _only_policy(mount / "policy.yaml", "policy.yaml", mounted=True).name == "fraud-detector"
