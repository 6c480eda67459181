"""Write-back against real bare git remotes (a hook records push options) and the local forge.

Decisions come from the real decision code on synthetic histories, so these tests exercise branch and
merge-request handling without MLflow; test_reconcile covers the whole pass.
"""

import json
import subprocess
from dataclasses import replace
from functools import cache
from itertools import combinations, permutations
from pathlib import Path

import pytest
import yaml

from controller.cli import main
from controller.decision import Decision
from controller.errors import TransientError
from controller.forecast.costmodel import fit_cost_model
from controller.gitops import mr
from controller.gitops.block import declined_proposals, machine_block
from controller.gitops.forge import RETRY_LABEL, ForgeSettings, open_forge
from controller.gitops.localforge import LocalForge
from controller.gitops.retire import close_merge_request
from controller.gitops.workspace import Workspace
from controller.gitops.writeback import ChangeSet, WriteBack, ensure_merge_request, materially_different
from controller.optimize.decide import decide
from controller.policy.model import Policy
from controller.reconcile import _undecided_members, _with_their_groups, change_sets
from controller.render import GENERATED_DIR

from .conftest import (
    ALICE,
    BOB,
    git,
    human_commit,
    kubernetes_validate,
    kustomize_tree,
    make_remote,
    recorded_push_options,
)
from .test_decide import make_history, make_policy

LABELS = ("greenops", "energy")


@cache
def proposal(decay: float = 0.002, name: str = "fraud-detector", group: str | None = None,
             namespace: str = "payments-ml", hours: tuple[str, ...] = ()) -> tuple[Policy, Decision]:
    bounds = {"schedule__allowedHours": list(hours)} if hours else {}
    policy = replace(make_policy(schedule__minInterval="1d", schedule__maxInterval="10d", **bounds), name=name,
                     proposal_group=group, source_file=f"policies/{name}.yaml", namespace=namespace)
    history = make_history(decay)
    decision = decide(policy, history, [fit_cost_model(history, 0.9, policy.slo_window, 7, 250.0)], 7, 60)
    assert decision.propose
    return policy, replace(decision, policy=name)


def setup(tmp_path: Path) -> tuple[Path, Workspace, LocalForge]:
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    workspace = Workspace.open(str(remote), tmp_path / "state")
    return remote, workspace, LocalForge(tmp_path / "state", workspace)


def change_for(workspace: Workspace, *members: tuple[Policy, Decision]) -> ChangeSet:
    (change,) = change_sets(list(members), workspace)
    return change


def write(workspace: Workspace, forge: LocalForge, change: ChangeSet, tmp_path: Path, push: bool = True,
          may_open: bool = True) -> WriteBack:
    workspace.repo.remotes.origin.fetch(prune=True)
    return ensure_merge_request(workspace, forge, change, LABELS, push, may_open, tmp_path / "state")


def test_first_proposal_then_unchanged_rerun_then_updated_proposal(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    first = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert first.status == "created" and first.request and first.request.number == "!1"
    assert git("log", "-1", "--format=%an <%ae>", "greenops/fraud-detector", cwd=remote) == \
        "greenops <greenops@users.noreply>"
    again = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert again.status == "unchanged" and len(git("rev-list", "--all", cwd=remote).split()) == 2
    updated = write(workspace, forge, change_for(workspace, proposal(0.008)), tmp_path)
    assert updated.status == "updated" and updated.request and updated.request.number == "!1"
    assert git("rev-list", "--count", "main..greenops/fraud-detector", cwd=remote) == "1"
    assert recorded_push_options(remote) == [[], []]  # the local forge needs none
    (listed,) = forge.all()
    assert listed.state == "open" and listed.head == updated.commit


def test_a_moved_target_alone_pushes_nothing_and_a_merge_is_recognised(tmp_path: Path) -> None:
    """Issue 13: any commit on the target force-pushed every open bot branch, reported as a new proposal."""
    remote, workspace, forge = setup(tmp_path)
    first = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    record = tmp_path / "state" / "merge-requests" / "fraud-detector.json"
    before = record.read_text()
    human = tmp_path / "human"
    human_commit(remote, "main", human, "OTHER.md")
    moved = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert moved.status == "unchanged" and moved.commit == first.commit
    assert git("rev-parse", "greenops/fraud-detector", cwd=remote) == first.commit
    assert len(recorded_push_options(remote)) == 2  # greenops' first push and Bob's, nothing since
    assert record.read_text() == before  # and no write to the merge request
    git("pull", "--quiet", "--no-rebase", "origin", "greenops/fraud-detector", cwd=human)
    git("push", "--quiet", "origin", "main", cwd=human)
    merged = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert merged.status == "in-sync" and forge.all()[0].state == "merged"


def test_a_branch_that_no_longer_merges_cleanly_is_rebuilt_on_the_target(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    change = change_for(workspace, proposal())
    first = write(workspace, forge, change, tmp_path)
    kustomization = next(str(path) for path in change.files if path.name == "kustomization.yaml")
    human = tmp_path / "human"
    human_commit(remote, "main", human, kustomization)  # Bob adds the same file on the target
    assert merge(human, "greenops/fraud-detector").returncode != 0  # CONFLICT (add/add)
    git("merge", "--abort", cwd=human)
    rebuilt = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert rebuilt.status == "updated" and rebuilt.commit != first.commit
    assert git("rev-parse", "greenops/fraud-detector~1", cwd=remote) == git("rev-parse", "main", cwd=remote)
    git("fetch", "--quiet", "origin", cwd=human)
    assert merge(human, "greenops/fraud-detector").returncode == 0


def test_human_commit_stops_the_bot_with_one_note(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    tip = human_commit(remote, "greenops/fraud-detector", tmp_path / "human")
    for decay in (0.006, 0.004):
        held = write(workspace, forge, change_for(workspace, proposal(decay)), tmp_path)
        assert held.status == "held" and "Bob <bob@example.com>" in held.message
    assert git("rev-parse", "greenops/fraud-detector", cwd=remote) == tip
    record = (tmp_path / "state" / "merge-requests" / "fraud-detector.md").read_text()
    assert record.count("greenops found commits it did not make") == 1


def test_a_dry_run_on_a_held_branch_reports_it_and_writes_nothing(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    human_commit(remote, "greenops/fraud-detector", tmp_path / "human")
    planned = write(workspace, forge, change_for(workspace, proposal(0.006)), tmp_path, push=False)
    assert planned.status == "held"
    record = (tmp_path / "state" / "merge-requests" / "fraud-detector.md").read_text()
    assert "did not make" not in record and not (tmp_path / "state" / "held").exists()
    held = write(workspace, forge, change_for(workspace, proposal(0.006)), tmp_path)  # the real pass notes it
    assert held.status == "held" and "did not make" in (tmp_path / "state" / "merge-requests" /
                                                        "fraud-detector.md").read_text()


def test_a_branch_force_pushed_with_unrelated_history_is_held(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    orphan = tmp_path / "orphan"
    git("init", "--quiet", "--initial-branch=main", str(orphan))
    (orphan / "OTHER.md").write_text("a different project\n")
    git("add", ".", cwd=orphan)
    git(*BOB, "commit", "--quiet", "-m", "unrelated", cwd=orphan)
    git("push", "--quiet", "--force", str(remote), "main:greenops/fraud-detector", cwd=orphan)
    held = write(workspace, forge, change_for(workspace, proposal(0.006)), tmp_path)
    assert held.status == "held" and "Bob <bob@example.com>" in held.message


def test_a_declined_proposal_is_not_reopened_until_it_changes_materially(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    remote, workspace, forge = setup(tmp_path)
    first = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert main(["mr", "close", "fraud-detector", "--state-dir", str(tmp_path / "state")]) == 0
    assert "declined" in capsys.readouterr().out
    declined = declined_proposals(forge.all()[0].body)["fraud-detector"]
    assert declined["proposed"]["schedule"] == proposal()[1].proposed.schedule
    same = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert same.status == "declined" and git("rev-parse", "greenops/fraud-detector", cwd=remote) == first.commit
    fast = write(workspace, forge, change_for(workspace, proposal(0.012)), tmp_path)
    assert fast.status == "created" and fast.request and fast.request.number == "!2"
    assert main(["mr", "list", "--state-dir", str(tmp_path / "state")]) == 0
    listing = capsys.readouterr().out
    assert "fraud-detector" in listing and " open " in listing


def test_a_declined_proposal_is_proposed_again_when_the_policy_changed_the_decision(tmp_path: Path) -> None:
    """Issue 13: declined, then allowedHours moved: the new proposal (another hour, the same energy and
    compliance) stayed declined forever."""
    _, workspace, forge = setup(tmp_path)
    write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert main(["mr", "close", "fraud-detector", "--state-dir", str(tmp_path / "state")]) == 0
    evening = proposal(hours=("20-23",))
    assert evening[1].proposed.schedule != proposal()[1].proposed.schedule
    again = write(workspace, forge, change_for(workspace, evening), tmp_path)
    assert again.status == "created" and again.request and again.request.number == "!2"


def test_what_makes_a_declined_decision_materially_different() -> None:
    policy, decision = proposal()
    declined = json.loads(json.dumps(machine_block(policy, decision)))  # as a closed request's hidden block has it
    same, other = decision.proposed, replace(decision.proposed, schedule="0 3 */2 * *")
    stricter = replace(policy, slo_target=policy.slo_target + 0.01)
    assert not materially_different(declined, same, stricter)  # the same settings: the same decision
    assert not materially_different(declined, other, policy)  # same question, same figures: the search's noise
    assert materially_different(declined, other, stricter)  # a person changed the question since the decline
    assert not materially_different(declined, other, replace(policy, job=replace(policy.job, image="train:2")))
    moved = replace(other, energy_kwh_per_period=same.energy_kwh_per_period * (1 + policy.min_saving_percent / 99))
    assert materially_different(declined, moved, policy)  # the telemetry moved the answer
    legacy = {key: value for key, value in declined.items() if key != "policy_inputs"}
    assert not materially_different(legacy, other, stricter)  # recorded before the inputs were: figures only


def test_a_reviewer_asks_again_for_a_declined_proposal_with_mr_retry(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _, workspace, forge = setup(tmp_path)
    state = ["--state-dir", str(tmp_path / "state")]
    write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert main(["mr", "retry", "fraud-detector", *state]) == 1
    assert "is open, not closed: only a declined proposal can be retried" in capsys.readouterr().err
    assert main(["mr", "close", "fraud-detector", *state]) == 0
    declined = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert declined.status == "declined" and "greenops mr retry fraud-detector" in declined.message
    assert main(["mr", "retry", "fraud-detector", *state]) == 0 and RETRY_LABEL in forge.all()[0].labels
    again = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert again.status == "created" and again.request and again.request.number == "!2"
    assert RETRY_LABEL not in again.request.labels  # the new request starts without it: closing it declines again
    assert main(["mr", "close", "fraud-detector", *state]) == 0
    assert write(workspace, forge, change_for(workspace, proposal()), tmp_path).status == "declined"


def test_a_proposal_greenops_no_longer_makes_is_closed_with_a_note_and_is_not_a_decline(tmp_path: Path) -> None:
    """Issue 13: when the decision became "no change", the old merge request stayed open and mergeable."""
    remote, workspace, forge = setup(tmp_path)
    write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    reason = "fraud-detector: no change proposed: the best schedule saves 93% energy, below minSavingPercent 95"
    args = (workspace, forge, "greenops/fraud-detector", reason)
    planned = close_merge_request(*args, False, tmp_path / "state")
    assert planned and planned.status == "planned" and forge.all()[0].state == "open"
    closed = close_merge_request(*args, True, tmp_path / "state")
    assert closed and closed.status == "closed" and "deleted the branch" in closed.message
    (request,) = forge.all()
    assert request.state == "closed" and request.title.endswith(" - autoclosed")
    assert "greenops/" not in git("branch", "--all", cwd=remote)  # nothing left that a reviewer could merge
    record = (tmp_path / "state" / "merge-requests" / "fraud-detector.md").read_text()
    assert f"> **Note:** greenops closed this merge request: {reason}." in record
    assert f"> **Closed by greenops:** {reason}" in record
    assert close_merge_request(*args, True, tmp_path / "state") is None  # nothing open: no second note
    again = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert again.status == "created" and again.request and again.request.number == "!2"  # not declined


def test_an_unsupported_proposal_on_a_branch_with_human_commits_stays_open_with_one_note(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    tip = human_commit(remote, "greenops/fraud-detector", tmp_path / "human")
    workspace.repo.remotes.origin.fetch()
    for _ in range(2):
        held = close_merge_request(workspace, forge, "greenops/fraud-detector", "no change proposed", True,
                                   tmp_path / "state")
        assert held and held.status == "held" and "Bob <bob@example.com>" in held.message
    assert forge.all()[0].state == "open" and git("rev-parse", "greenops/fraud-detector", cwd=remote) == tip
    record = (tmp_path / "state" / "merge-requests" / "fraud-detector.md").read_text()
    assert record.count("greenops no longer proposes this change (no change proposed)") == 1


def test_grouped_policies_share_one_branch_and_merge_request(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    members = [proposal(name="fraud-detector", group="payments"), proposal(0.004, name="card-risk", group="payments")]
    (change,) = change_sets(members, workspace)
    gated = sum(d.proposed.rule.gated for d in change.decisions)
    assert change.branch == "greenops/group-payments"
    assert len(change.files) == 4 + gated  # 2 CronJobs, 2 kustomizations, a gate ConfigMap per gated policy
    result = write(workspace, forge, change, tmp_path)
    assert result.status == "created" and "new schedules for 2 models" in change.title
    assert set(declined_proposals(change.body)) == {"fraud-detector", "card-risk"}
    files = git("ls-tree", "-r", "--name-only", "greenops/group-payments", cwd=remote).splitlines()
    assert "manifests/generated/payments-ml/card-risk/card-risk.cronjob.yaml" in files


def test_new_merge_requests_are_capped_but_updates_go_through(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    deferred = write(workspace, forge, change_for(workspace, proposal()), tmp_path, may_open=False)
    assert deferred.status == "deferred" and "greenops/" not in git("branch", "--all", cwd=remote)
    write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    update = write(workspace, forge, change_for(workspace, proposal(0.008)), tmp_path, may_open=False)
    assert update.status == "updated"


def test_rejected_push_writes_nothing_and_is_retried(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    hook = remote / "hooks" / "pre-receive"
    recording = hook.read_text()
    hook.write_text("#!/bin/sh\necho 'quota exceeded' >&2\nexit 1\n")
    with pytest.raises(TransientError, match="quota exceeded"):
        write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert forge.all() == [] and "greenops/" not in git("branch", "--all", cwd=remote)
    hook.write_text(recording)
    assert write(workspace, forge, change_for(workspace, proposal()), tmp_path).status == "created"


def test_gitlab_push_options_create_with_target_labels_and_draft(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("GREENOPS_FORGE_TOKEN", "GITLAB_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    remote = make_remote(tmp_path, {"README.md": "gitops\n"})
    workspace = Workspace.open(str(remote), tmp_path / "state")
    forge = open_forge(ForgeSettings("gitlab", project="team/gitops"), str(remote), tmp_path / "state")
    change = replace(change_for(workspace, proposal()), draft=True, body="line one\nline two")
    assert ensure_merge_request(workspace, forge, change, LABELS, True, True, tmp_path).status == "created"
    (options,) = recorded_push_options(remote)
    assert options[:2] == ["merge_request.create", "merge_request.target=main"]
    assert "merge_request.description=line one\\nline two" in options
    assert {"merge_request.label=greenops", "merge_request.label=energy", "merge_request.draft",
            "merge_request.remove_source_branch"} <= set(options)


def test_the_body_fits_the_forge_limit_by_trimming_evidence_never_the_table() -> None:
    policy, decision = proposal()
    full = mr.body(policy, decision)
    assert "```mermaid\nxychart-beta" in full and "**Confidence: high**" in full
    limit = len(full.encode()) - 300
    short = mr.body(policy, decision, limit=limit)
    assert len(short.encode()) <= limit and "evidence lines trimmed" in short
    assert short.split("**Why:**")[0] == full.split("**Why:**")[0]  # the table is whole
    assert declined_proposals(short) == declined_proposals(full)  # and so is the hidden block


def test_low_confidence_proposals_are_opened_as_drafts(tmp_path: Path) -> None:
    _, workspace, _ = setup(tmp_path)
    policy, decision = proposal()
    thin = replace(decision, evidence=replace(decision.evidence, prior="thin history: 2 training runs"))
    assert mr.confidence(policy, thin) == ("low", ["the history is thin (conservative prior)"])
    assert change_for(workspace, (policy, thin)).draft and not change_for(workspace, (policy, decision)).draft


def test_deleting_a_held_branch_lets_greenops_propose_again(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    human_commit(remote, "greenops/fraud-detector", tmp_path / "human")
    assert write(workspace, forge, change_for(workspace, proposal()), tmp_path).status == "held"
    git("branch", "-D", "greenops/fraud-detector", cwd=remote)  # as the note suggests
    again = write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    assert again.status == "created" and again.request and again.request.number == "!2"


def test_squash_merged_human_work_releases_the_branch(tmp_path: Path) -> None:
    remote, workspace, forge = setup(tmp_path)
    write(workspace, forge, change_for(workspace, proposal()), tmp_path)
    human = tmp_path / "human"
    human_commit(remote, "greenops/fraud-detector", human)
    git("checkout", "--quiet", "main", cwd=human)
    git("merge", "--quiet", "--squash", "greenops/fraud-detector", cwd=human)
    git(*BOB, "commit", "--quiet", "-m", "squash", cwd=human)
    git("push", "--quiet", "origin", "main", cwd=human)
    newer = write(workspace, forge, change_for(workspace, proposal(0.008)), tmp_path)
    assert newer.status == "created" and newer.request and newer.request.number == "!2"  # !1 was merged
    assert git("rev-list", "--count", "main..greenops/fraud-detector", cwd=remote) == "1"


def test_trimming_never_leaves_the_chart_half_open() -> None:
    policy, decision = proposal()
    full = mr.body(policy, decision)
    for cut in range(200, 2400, 100):
        assert mr.body(policy, decision, limit=len(full.encode()) + full.count("\n") - cut).count("```") % 2 == 0


def test_a_group_is_not_rebuilt_from_part_of_its_policies(tmp_path: Path) -> None:
    _, workspace, _ = setup(tmp_path)
    first = proposal(name="fraud-detector", group="payments")
    second = proposal(0.004, name="card-risk", group="payments")
    (change,) = change_sets([first], workspace)
    policies = [first[0], second[0], proposal(name="other")[0]]
    assert _undecided_members(change, policies, {"fraud-detector"}) == ["card-risk"]
    assert _undecided_members(change, policies, {"fraud-detector", "card-risk"}) == []


def test_naming_one_policy_of_a_group_brings_the_whole_group() -> None:
    """`plan --policy fraud-detector` must decide card-risk too, or the group's request is never rebuilt."""
    policies = [proposal(name="fraud-detector", group="payments")[0],
                proposal(0.004, name="card-risk", group="payments")[0], proposal(name="other")[0]]
    assert _with_their_groups(("fraud-detector",), policies) == {"fraud-detector", "card-risk"}
    assert _with_their_groups(("other",), policies) == {"other"}


def merge(work: Path, branch: str) -> subprocess.CompletedProcess[str]:
    """What a reviewer's merge button does: a merge commit of the bot branch into the checked-out target."""
    return subprocess.run(["git", *ALICE, "merge", "--no-ff", "-m", f"Merge {branch}", f"origin/{branch}"], cwd=work,
                          capture_output=True, text=True)


def test_three_open_proposals_merge_in_any_order_and_render_after_each_merge(tmp_path: Path) -> None:
    """Issue 13: merging the churn branch, then the demand branch, gave CONFLICT (add/add) in a shared
    kustomization.yaml. Two of the three share a namespace, as teams' models do."""
    remote, workspace, forge = setup(tmp_path)
    members = [proposal(0.002, "churn-predictor", namespace="crm-ml"),
               proposal(0.004, "demand-forecaster", namespace="crm-ml"), proposal(0.008, "fraud-detector")]
    changes = change_sets(members, workspace)
    assert [write(workspace, forge, change, tmp_path).status for change in changes] == ["created"] * 3
    branches = [change.branch for change in changes]
    touched = {b: set(git("diff", "--name-only", f"main...{b}", cwd=remote).split()) for b in branches}
    for first, second in combinations(branches, 2):
        both = touched[first] & touched[second]
        assert not both, f"{first} and {second} both write {both}"
    human = tmp_path / "human"
    git("clone", "--quiet", str(remote), str(human))
    trees: dict[frozenset[str], str] = {}
    for order in permutations(branches):
        git("checkout", "--quiet", "--detach", "origin/main", cwd=human)
        for done, branch in enumerate(order, 1):
            merged = merge(human, branch)
            assert merged.returncode == 0, f"{' then '.join(order[:done])}: {merged.stdout}{merged.stderr}"
            subset, tree = frozenset(order[:done]), git("rev-parse", "HEAD^{tree}", cwd=human)
            if subset in trees:
                assert trees[subset] == tree  # the same merged proposals give the same files, whatever the order
                continue
            trees[subset] = tree
            built = kustomize_tree(human / GENERATED_DIR)  # renders after every merge, not only after all three
            names = sorted(d["metadata"]["name"] for d in yaml.safe_load_all(built) if d["kind"] == "CronJob")
            assert names == sorted(b.removeprefix("greenops/") for b in subset)
            if len(subset) == len(branches):
                (tmp_path / "built.yaml").write_text(built)
                checked = kubernetes_validate(tmp_path / "built.yaml")
                assert checked.returncode == 0, checked.stdout + checked.stderr
    assert len(trees) == 7  # every non-empty subset of the three
