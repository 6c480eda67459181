"""The documented CI snippets and the pre-commit hook, run for real on a scratch GitOps repository.

Each snippet's shell commands run with this checkout's `greenops` on PATH (the snippets use the image,
whose entry point is the same console script). The pre-commit hook runs through pre-commit itself in a
scratch repository that uses it.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import ALICE, PROJECT, VENV_BIN, git, require_binary, require_offline_fixture

BROKEN = "apiVersion: greenops.dev/v1alpha1\nkind: RetrainingPolicy\nmetadata: {name: broken}\nspec: {}\n"


def gitlab_script() -> str:
    return "\n".join(yaml.safe_load((PROJECT / "ci" / "gitlab-ci.yml").read_text())["greenops-validate"]["script"])


def github_script() -> str:
    steps = yaml.safe_load((PROJECT / "ci" / "github-actions.yml").read_text())["jobs"]["validate"]["steps"]
    return next(step["run"] for step in steps if "run" in step)


def jenkins_script() -> str:
    match = re.search(r"sh '''(.*?)'''", (PROJECT / "ci" / "Jenkinsfile").read_text(), re.S)
    assert match
    return match.group(1)


def scratch(tmp_path: Path, broken: bool) -> Path:
    repo = tmp_path / "gitops"
    shutil.copytree(PROJECT / "policies", repo / "policies")
    (repo / "README.md").write_text("not a policy\n")
    if broken:
        (repo / "policies" / "broken.yaml").write_text(BROKEN)
    return repo


def run_shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-ec", script], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("script", [gitlab_script, github_script, jenkins_script], ids=["gitlab", "github", "jenkins"])
def test_ci_snippet_passes_valid_policies_and_fails_with_a_report(tmp_path: Path, script: object) -> None:
    assert callable(script)
    good = run_shell(script(), scratch(tmp_path / "good", broken=False))
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads((tmp_path / "good" / "gitops" / "greenops-validate.json").read_text())["valid"] is True
    bad = run_shell(script(), scratch(tmp_path / "bad", broken=True))
    report = json.loads((tmp_path / "bad" / "gitops" / "greenops-validate.json").read_text())
    assert bad.returncode == 1 and report["valid"] is False and report["problems"]
    assert "policies/broken.yaml:4:7: /spec: 'model' is a required property" in bad.stdout


def snapshot_of_this_checkout(destination: Path) -> str:
    """This checkout's files, uncommitted edits included, committed to a new repository: pre-commit installs
    a hook repository from a commit. Returns that commit."""
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=PROJECT)
    for relative in filter(None, listed.split("\0")):
        source, target = PROJECT / relative, destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():  # controller/schemas -> ../schemas ships the schema inside the package
            target.symlink_to(source.readlink())
        elif source.is_file():  # deleted but not yet committed files are left out
            shutil.copy2(source, target)
    git("init", "--quiet", str(destination))
    git("add", "--all", cwd=destination)
    git(*ALICE, "commit", "--quiet", "-m", "snapshot", cwd=destination)
    return git("rev-parse", "HEAD", cwd=destination)


def commit(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    git("add", "--all", cwd=repo)
    return subprocess.run(["git", *ALICE, "commit", "-m", "policies"], cwd=repo, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.integration
def test_pre_commit_runs_the_hook_in_a_scratch_repository_that_uses_it(tmp_path: Path) -> None:
    """pre-commit itself: it clones the hook repository, installs greenops into its own virtualenv (from the
    offline wheelhouse, as a mirror would serve it) and blocks a commit that adds a broken policy."""
    pre_commit = require_binary("pre-commit")
    wheelhouse = require_offline_fixture("wheelhouse")
    (hook,) = yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())
    assert hook["language"] == "python"  # users need not install greenops: pre-commit does
    rev = snapshot_of_this_checkout(tmp_path / "greenops")
    repo = scratch(tmp_path, broken=False)
    git("init", "--quiet", str(repo))
    config = {"repos": [{"repo": str(tmp_path / "greenops"), "rev": rev, "hooks": [{"id": "greenops-validate"}]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    # No greenops on PATH: the hook must run the one pre-commit installed in its own virtualenv.
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p) != VENV_BIN)
    env = {**os.environ, "PATH": path, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}
    subprocess.run([pre_commit, "install"], cwd=repo, env=env, check=True, capture_output=True)

    first = commit(repo, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.search(r"greenops validate\.+Passed", first.stdout), first.stdout

    (repo / "policies" / "broken.yaml").write_text(BROKEN)
    blocked = commit(repo, env)
    assert blocked.returncode == 1 and re.search(r"greenops validate\.+Failed", blocked.stdout), blocked.stdout
    assert "policies/broken.yaml:4:7: /spec: 'model' is a required property" in blocked.stdout
    assert git("log", "--format=%s", cwd=repo) == "policies"

    (repo / "policies" / "broken.yaml").unlink()
    (repo / "policies" / "copy.yaml").write_text((repo / "policies" / "churn-predictor.yaml").read_text())
    duplicate = commit(repo, env)  # valid on its own: only the whole folder shows the clash
    assert duplicate.returncode == 1 and "duplicate policy name 'churn-predictor'" in duplicate.stdout

    (repo / "policies" / "copy.yaml").unlink()
    (repo / "README.md").write_text("still not a policy\n")
    skipped = commit(repo, env)
    assert skipped.returncode == 0 and re.search(r"greenops validate\.+\(no files to check\)Skipped", skipped.stdout)
