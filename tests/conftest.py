"""Shared fixtures: real bare git remotes that record push options, binaries that must exist under CI."""

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

PROJECT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

RECORD_HOOK = """#!/bin/sh
# Records the push options of every push, one JSON line each (GitLab reads the same ones).
python3 - "$@" <<'PY'
import json, os
count = int(os.environ.get("GIT_PUSH_OPTION_COUNT", "0"))
options = [os.environ[f"GIT_PUSH_OPTION_{i}"] for i in range(count)]
with open(os.path.join(os.environ.get("GIT_DIR", "."), "push-options.jsonl"), "a") as log:
    log.write(json.dumps(options) + "\\n")
PY
"""


CI_CACHE = PROJECT / ".ci" / "cache"
ALICE = ("-c", "user.name=Alice", "-c", "user.email=alice@example.com")  # git identity of test commits
BOB = ("-c", "user.name=Bob", "-c", "user.email=bob@example.com")  # a human committing to a bot branch


def _missing(message: str) -> NoReturn:
    """Skip on a laptop; under CI a missing prerequisite is a failure, never a silent skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must provide it")
    pytest.skip(message)


def require_binary(name: str) -> str:
    """Path of ``name`` (venv first); skip on a laptop without it, fail under CI."""
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        _missing(f"{name} is not installed")
    return found


def require_offline_fixture(name: str) -> Path:
    """A file `.ci/offline-fixtures` prepared (wheelhouse, Debian root filesystem) for tests that must not
    reach a registry; skip on a laptop without it, fail under CI."""
    path = CI_CACHE / name
    if not path.exists():
        _missing(f"{path} is missing: run .ci/offline-fixtures (as root, with the registries reachable)")
    return path


def kustomize(directory: Path) -> str:
    """What real `kubectl kustomize` renders from ``directory``."""
    kubectl = require_binary("kubectl")
    return subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True).stdout


def kustomize_tree(folder: Path) -> str:
    """What Flux's kustomize-controller builds from ``folder`` when it has no kustomization.yaml of its own:
    every subfolder holding one, not descending further (an Argo CD ApplicationSet makes one app of each)."""
    root = folder / "kustomization.yaml"
    assert not root.exists(), f"{root} exists: greenops writes no file outside a policy's folder"
    found = sorted(str(k.parent.relative_to(folder)) for k in folder.rglob("kustomization.yaml"))
    outermost = [f for f in found if not any(f.startswith(f"{other}/") for other in found)]
    root.write_text("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
                    + "".join(f"- {leaf}\n" for leaf in outermost))
    try:
        return kustomize(folder)
    finally:
        root.unlink()


def kubernetes_validate(manifests: Path) -> subprocess.CompletedProcess[str]:
    """`kubernetes-validate --strict` on a file of manifests (Kubernetes' own schemas, unknown fields refused)."""
    validator = require_binary("kubernetes-validate")
    return subprocess.run([validator, "--strict", str(manifests)], capture_output=True, text=True)


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_remote(root: Path, files: dict[str, str], name: str = "remote.git") -> Path:
    """A bare repo on branch main holding ``files``, accepting push options and recording them."""
    require_binary("git")
    remote = root / name
    git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    git("config", "receive.advertisePushOptions", "true", cwd=remote)
    seed = root / f"{name}.seed"
    git("init", "--quiet", "--initial-branch=main", str(seed))
    for relative, text in files.items():
        (seed / relative).parent.mkdir(parents=True, exist_ok=True)
        (seed / relative).write_text(text)
    git("add", "--all", cwd=seed)
    git(*ALICE, "commit", "--quiet", "-m", "init", cwd=seed)
    git("push", "--quiet", str(remote), "main", cwd=seed)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(RECORD_HOOK)
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    return remote


def recorded_push_options(remote: Path) -> list[list[str]]:
    log = remote / "push-options.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def remote_factory(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    return lambda files: make_remote(tmp_path, files)


def example_policy(name: str = "fraud-detector") -> str:
    return (PROJECT / "policies" / f"{name}.yaml").read_text()


def human_commit(remote: Path, branch: str, work: Path, file: str = "NOTES.md") -> str:
    """Bob (not the bot) clones ``branch`` into ``work``, commits ``file`` and pushes; returns the new tip."""
    git("clone", "--quiet", "--branch", branch, str(remote), str(work))
    (work / file).parent.mkdir(parents=True, exist_ok=True)
    (work / file).write_text("wait for the quarter close\n")
    git("add", ".", cwd=work)
    git(*BOB, "commit", "--quiet", "-m", "hold", cwd=work)
    git("push", "--quiet", "origin", branch, cwd=work)
    return git("rev-parse", branch, cwd=remote)
