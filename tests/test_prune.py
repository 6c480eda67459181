"""Deleted policies (issue 13): a full pass against a real bare remote and the local forge.

Every policy file here is invalid or gone, so the passes decide nothing and need no telemetry: they
exercise only what greenops does for policies that are no longer there.
"""

import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from controller.cli import main
from controller.decision import Decision
from controller.gitops.localforge import LocalForge
from controller.gitops.workspace import Workspace
from controller.policy.model import Policy
from controller.reconcile import Outcome, Settings, _write_back, reconcile
from controller.render import header, render_changes

from .conftest import git, make_remote, recorded_push_options
from .test_writeback import change_for, proposal, write

INVALID = "apiVersion: greenops.dev/v1alpha1\nkind: RetrainingPolicy\nmetadata: {name: fraud-detector}\nspec: {}\n"
OLD = "manifests/generated/crm-ml/old-model"
HAND_MADE = ("manifests/generated/crm-ml/hand-made/hand-made.cronjob.yaml",
             "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: hand-made}\n")


def renamed(name: str, namespace: str = "crm-ml", decay: float = 0.002) -> tuple[Policy, Decision]:
    policy, decision = proposal(decay)
    return replace(policy, name=name, namespace=namespace, source_file=f"policies/{name}.yaml"), \
        replace(decision, policy=name)


def generated(name: str, namespace: str = "crm-ml") -> dict[str, str]:
    """What greenops generated for a policy, as merged on the target branch."""
    policy, decision = renamed(name, namespace)
    return {str(path): text for path, text in render_changes(policy, decision.proposed, set()).items()}


def settings(remote: Path, tmp_path: Path) -> Settings:
    return Settings(repo_url=str(remote), state_dir=tmp_path / "state", mlflow_uri="sqlite:///unused.db")


def full_pass(remote: Path, tmp_path: Path) -> dict[str, Outcome]:
    return {o.policy: o for o in reconcile(settings(remote, tmp_path), push=True)}


def test_a_deleted_policy_gets_a_merge_request_removing_only_what_greenops_wrote(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13: deleting a policy left its CronJob on the target branch. Still there after the pass: the
    folder of a policy whose file is invalid (not removed), a person's folder, and a person's files in the
    removed policy's folder (one of them with greenops' header but not its labels)."""
    extra = f"{OLD}/extra.yaml"
    remote = make_remote(tmp_path, {
        "policies/fraud-detector.yaml": INVALID, **generated("fraud-detector", "payments-ml"), **generated("old-model"),
        f"{OLD}/NOTES.md": "why we run it\n", HAND_MADE[0]: HAND_MADE[1],
        extra: header(renamed("old-model")[0]) + "kind: ConfigMap\nmetadata: {name: x}\n"})
    outcomes = full_pass(remote, tmp_path)
    assert set(outcomes) == {"policies/fraud-detector.yaml", "old-model"}
    assert outcomes["policies/fraud-detector.yaml"].status == "stalled"
    removed = outcomes["old-model"]
    assert removed.status == "ok" and removed.proposal and removed.proposal.status == "created"
    assert removed.title == "greenops(old-model): remove the generated manifests of the deleted policy old-model"
    assert git("diff", "--name-status", "main", "greenops/old-model", cwd=remote).splitlines() == [
        f"D\t{path}" for path in sorted(generated("old-model"))]
    assert removed.body and f"- `{extra}`" in removed.body.split("Left in place")[1]
    assert "generated from `policies/old-model.yaml`" in removed.body
    assert git("branch", "--list", "greenops/*", cwd=remote) == "greenops/old-model"
    pushes = len(recorded_push_options(remote))
    again = full_pass(remote, tmp_path)["old-model"]
    assert again.proposal and again.proposal.status == "unchanged" and len(recorded_push_options(remote)) == pushes
    assert main(["mr", "close", "old-model", "--state-dir", str(tmp_path / "state")]) == 0
    capsys.readouterr()
    declined = full_pass(remote, tmp_path)["old-model"]
    assert declined.proposal and declined.proposal.status == "declined"
    assert "removing the same files was declined" in declined.message


@pytest.mark.parametrize(("policies", "why"), [
    ({"policies/notes.yaml": "key: [unclosed\n"}, "a policy file that cannot be read may define it"),
    ({"policies/README.md": "policies go here\n"}, "no policy file in policies/ on main at all"),
])
def test_nothing_is_removed_on_a_guess(tmp_path: Path, policies: dict[str, str], why: str) -> None:
    remote = make_remote(tmp_path, {**policies, **generated("old-model")})
    outcome = full_pass(remote, tmp_path)["old-model"]
    assert outcome.status == "stalled" and why in outcome.message and "removes nothing" in outcome.message
    assert "greenops/" not in git("branch", "--all", cwd=remote)


def test_open_proposals_of_deleted_policies_are_closed_or_turned_into_a_removal(tmp_path: Path) -> None:
    """ghost was deleted before its proposal was merged: nothing to remove, so its request is closed;
    old-model's folder is on the target, so its open proposal becomes the removal."""
    remote = make_remote(tmp_path, {"policies/fraud-detector.yaml": INVALID, **generated("old-model")})
    workspace = Workspace.open(str(remote), tmp_path / "state")
    forge = LocalForge(tmp_path / "state", workspace)
    for member in (renamed("ghost"), renamed("old-model", decay=0.008)):
        assert write(workspace, forge, change_for(workspace, member), tmp_path).status == "created"
    git("branch", "greenops/old/model", "main", cwd=remote)  # not a name greenops makes: left alone
    outcomes = full_pass(remote, tmp_path)
    ghost, old = outcomes["ghost"], outcomes["old-model"]
    assert ghost.status == "ok" and ghost.message.startswith("no policy named ghost is in policies/ on main any more; "
                                                             "closed merge request !1 on greenops/ghost")
    assert ghost.proposal and ghost.proposal.status == "closed"
    assert old.proposal and old.proposal.status == "updated" and old.proposal.request
    assert old.proposal.request.number == "!1" and old.proposal.request.title.startswith("greenops(old-model): remove")
    assert git("branch", "--list", "greenops/*", cwd=remote).split() == ["greenops/old-model", "greenops/old/model"]
    assert full_pass(remote, tmp_path)["old-model"].proposal.status == "unchanged"  # type: ignore[union-attr]
    assert "ghost" not in full_pass(remote, tmp_path)  # closed once, then nothing to say


def test_a_restored_policy_closes_its_removal_when_the_target_already_runs_its_decision(tmp_path: Path) -> None:
    """Otherwise the removal would stay open, and merging it would delete a governed CronJob."""
    remote = make_remote(tmp_path, {"policies/fraud-detector.yaml": INVALID, **generated("old-model")})
    assert full_pass(remote, tmp_path)["old-model"].proposal.status == "created"  # type: ignore[union-attr]
    workspace = Workspace.open(str(remote), tmp_path / "state")
    forge = LocalForge(tmp_path / "state", workspace)
    (back,) = _write_back(change_for(workspace, renamed("old-model")), settings(remote, tmp_path), workspace, forge,
                          True, True)
    assert back.status == "ok" and back.message.startswith("the target branch already has this schedule; closed "
                                                           "merge request !1 on greenops/old-model")
    assert back.proposal and back.proposal.status == "closed" and forge.all()[0].state == "closed"
    assert "greenops/" not in git("branch", "--all", cwd=remote)


def test_greenops_run_proposes_the_removal_at_discovery(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`greenops run` reconciles one unit per pass, so its discovery round takes the full pass's last step."""
    from controller.runtime import service
    from controller.runtime.metrics import Metrics

    caplog.set_level(logging.INFO)
    remote = make_remote(tmp_path, {"policies/fraud-detector.yaml": INVALID, **generated("old-model")})
    run = service.RunSettings(settings(remote, tmp_path), timedelta(hours=1), timedelta(0), timedelta(minutes=1),
                              "127.0.0.1", 0)
    controller = service.Controller(run, Metrics())
    controller.scheduler.start(paused=True)
    try:
        controller.discover()
    finally:
        controller.scheduler.shutdown(wait=False)
    assert controller.opened == 1 and git("branch", "--list", "greenops/*", cwd=remote) == "greenops/old-model"
    assert "ok: pushed greenops/old-model and opened merge request !1 (local)" in caplog.messages
