"""The scheduled-pipeline snippets (`ci/*retrain*`), run for real: the gate step decides from a real MLflow
store and the policy and merged rule of a scratch GitOps checkout, and training runs only on retrain."""

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from controller.gate.manifest import gate_config_path
from controller.render import GENERATED_DIR

from .conftest import PROJECT, VENV_BIN
from .test_gate import gate_config, gate_policy, store

TRAIN = "python train.py --window 3d"


def gitlab_jobs() -> tuple[str, str]:
    jobs = yaml.safe_load((PROJECT / "ci" / "gitlab-ci-retrain.yml").read_text())
    assert jobs["retrain"]["needs"] == ["greenops-gate"]
    assert jobs["greenops-gate"]["artifacts"]["reports"]["dotenv"] == "gate.env"
    return "\n".join(jobs["greenops-gate"]["script"]), "\n".join(jobs["retrain"]["script"])


def checkout(tmp_path: Path) -> Path:
    """policies/ with the policy and manifests/generated/ with its merged, gated rule."""
    repo = tmp_path / "gitops"
    policy = gate_policy()
    (repo / "policies").mkdir(parents=True)
    shutil.copy(PROJECT / "policies" / "fraud-detector.yaml", repo / "policies" / "fraud-detector.yaml")
    text = (repo / "policies" / "fraud-detector.yaml").read_text()
    text = text.replace("target: 0.90", "target: 0.9").replace("maxInterval: 7d", "maxInterval: 30d")
    text = text.replace("  telemetry:\n", "  telemetry:\n    maxStaleness: 7d\n")
    (repo / "policies" / "fraud-detector.yaml").write_text(text)
    gate_config(repo / gate_config_path(policy, GENERATED_DIR), policy)
    return repo


def run(script: str, cwd: Path, uri: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_TRACKING_URI": uri,
                   "GREENOPS_POLICY": "fraud-detector", **env}
    return subprocess.run(["bash", "-ec", script], cwd=cwd, env=environment, capture_output=True, text=True)


def fresh_and_stale(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Two checkouts and stores: the last retrain an hour ago (skip), and four days ago (retrain)."""
    now = datetime.now(UTC)
    cases = {"skip": now + timedelta(hours=21), "retrain": now - timedelta(days=3)}
    return {name: (checkout(tmp_path / name), store(tmp_path / name, end=end)) for name, end in cases.items()}


@pytest.mark.integration
def test_gitlab_scheduled_pipeline_trains_only_when_the_gate_says_retrain(tmp_path: Path) -> None:
    gate, retrain = gitlab_jobs()
    assert retrain.rstrip().endswith(TRAIN)
    for expected, (repo, uri) in fresh_and_stale(tmp_path).items():
        decided = run(gate, repo, uri)
        assert decided.returncode == 0, decided.stdout + decided.stderr
        assert (repo / "gate.env").read_text() == f"GREENOPS_DECISION={expected}\n"
        trained = run(retrain.replace(TRAIN, "touch trained"), repo, uri, GREENOPS_DECISION=expected)
        assert trained.returncode == 0 and (repo / "trained").exists() == (expected == "retrain")


@pytest.mark.integration
def test_github_scheduled_workflow_trains_only_when_the_gate_says_retrain(tmp_path: Path) -> None:
    workflow = yaml.safe_load((PROJECT / "ci" / "github-actions-retrain.yml").read_text())
    jobs = workflow["jobs"]
    assert workflow[True]["schedule"][0]["cron"] and jobs["retrain"]["needs"] == "gate"  # YAML reads `on` as True
    assert jobs["retrain"]["if"] == "needs.gate.outputs.decision == 'retrain'"
    step = next(s for s in jobs["gate"]["steps"] if s.get("id") == "gate")
    for expected, (repo, uri) in fresh_and_stale(tmp_path).items():
        outputs = repo / "github-output"
        decided = run(step["run"], repo, uri, GITHUB_OUTPUT=str(outputs))
        assert decided.returncode == 0, decided.stdout + decided.stderr
        assert outputs.read_text() == f"decision={expected}\n"


@pytest.mark.integration
def test_jenkins_pipeline_trains_only_when_the_gate_says_retrain(tmp_path: Path) -> None:
    text = (PROJECT / "ci" / "Jenkinsfile.retrain").read_text()
    assert re.search(r"triggers \{ cron\('[^']+'\) \}", text)
    assert "when { expression { env.GREENOPS_DECISION == 'retrain' } }" in text
    match = re.search(r"sh\(returnStatus: true, script: '''(.*?)'''\)", text, re.S)
    assert match
    for expected, (repo, uri) in fresh_and_stale(tmp_path).items():
        decided = run(match.group(1), repo, uri)
        assert decided.returncode == {"retrain": 0, "skip": 4}[expected], decided.stdout + decided.stderr
        assert (repo / "decision").read_text().strip() == expected
