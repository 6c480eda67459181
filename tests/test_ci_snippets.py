"""The documented CI snippets and the pre-commit hook, run for real on a scratch GitOps repository.

Each snippet's shell commands run with this checkout's `greenops` on PATH (the snippets use the image,
whose entry point is the same console script). The pre-commit hook is run as pre-commit runs it:
its entry followed by the staged files that match its `files` pattern.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import PROJECT, VENV_BIN

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


def test_the_pre_commit_hook_checks_the_staged_policy_files(tmp_path: Path) -> None:
    (hook,) = yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "greenops-validate" and hook["language"] == "python"
    repo = scratch(tmp_path, broken=True)
    staged = ["README.md", "policies/churn-predictor.yaml", "policies/broken.yaml"]
    matching = [f for f in staged if re.search(hook["files"], f)]
    assert matching == ["policies/churn-predictor.yaml", "policies/broken.yaml"]
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    failed = subprocess.run([*hook["entry"].split(), *matching], cwd=repo, env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "policies/broken.yaml:4:7" in failed.stdout
    passed = subprocess.run([*hook["entry"].split(), matching[0]], cwd=repo, env=env, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stdout + passed.stderr
