"""The main job on embedded defaults: `greenops demo` from scratch, then again with no new commit."""

import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import PROJECT, git, require_binary


def run_demo(state: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "greenops"), "demo", "--state-dir", str(state),
               "--policies", str(PROJECT / "policies")]
    return subprocess.run(command, capture_output=True, text=True, cwd=state.parent, timeout=300)


def test_demo_proposes_new_schedules_and_is_idempotent(tmp_path: Path) -> None:
    require_binary("git")
    state = tmp_path / ".greenops"
    first = run_demo(state)
    assert first.returncode == 0, first.stdout + first.stderr
    remote = state / "demo" / "remote.git"
    branches = git("for-each-ref", "--format=%(refname:short)", "refs/heads/greenops", cwd=remote).split()
    assert branches, first.stdout
    changed = []
    for branch in branches:
        name = branch.split("/", 1)[1]
        policy = yaml.safe_load((PROJECT / "policies" / f"{name}.yaml").read_text())
        files = git("ls-tree", "-r", "--name-only", branch, "manifests/generated", cwd=remote).split()
        cronjob = yaml.safe_load(git("show", f"{branch}:{next(f for f in files if f.endswith(name + '.cronjob.yaml'))}",
                                     cwd=remote))
        if cronjob["spec"]["schedule"] != policy["spec"]["schedule"]["current"]:
            changed.append(name)
        assert (state / "demo" / "state" / "merge-requests" / f"{name}.md").is_file()
    assert changed
    assert "--- merge request (greenops/" in first.stdout
    assert "| Retrains per month (10th-90th percentile) |" in first.stdout
    titles = [line for line in first.stdout.splitlines() if line.startswith("Title: ")]
    assert titles and not any("(+" in title for title in titles)  # no demo proposal adds energy

    refs = git("show-ref", cwd=remote)
    second = run_demo(state)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "up to date (no new commit)" in second.stdout
    assert git("show-ref", cwd=remote) == refs
