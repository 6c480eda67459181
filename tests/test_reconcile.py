"""One reconcile pass against a real bare git remote and a real MLflow store (sqlite)."""

import json
import logging
import subprocess
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from controller.cli import main
from controller.demo.history import generate
from controller.demo.run import SCENARIOS
from controller.gitops.forge import ForgeSettings
from controller.policy.validate import validate_paths
from controller.reconcile import Outcome, Settings, reconcile
from controller.telemetry import mlflow_store
from controller.telemetry.mlflow_store import MlflowTelemetry

from .conftest import ALICE, PROJECT, example_policy, git, human_commit, make_remote, recorded_push_options
from .fakeforges import fake_forge

END = datetime(2026, 3, 1, tzinfo=UTC)
GHOST = example_policy("fraud-detector").replace("name: fraud-detector", "name: ghost-model")
BROKEN = "apiVersion: greenops.dev/v1alpha1\nkind: RetrainingPolicy\nmetadata: {name: broken}\nspec: {}\n"


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Real training and evaluation of two models over 40 simulated days, logged to MLflow."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    telemetry = MlflowTelemetry(uri, create=True)
    policies = {p.name: p for p in validate_paths([PROJECT / "policies"], relative_to=PROJECT).policies}
    for seed, name in enumerate(("churn-predictor", "fraud-detector")):
        spec = replace(SCENARIOS[name], train_rows=1000)
        generate(policies[name], spec, telemetry, END - timedelta(days=40), END, seed=seed)
    return uri


def repo_files() -> dict[str, str]:
    return {
        "policies/churn-predictor.yaml": example_policy("churn-predictor"),
        "policies/fraud-detector.yaml": example_policy("fraud-detector"),
        "policies/ghost.yaml": GHOST,
        "policies/broken.yaml": BROKEN,
        "README.md": "gitops\n",
    }


def settings(remote: Path, tmp_path: Path, mlflow_uri: str) -> Settings:
    return Settings(repo_url=str(remote), state_dir=tmp_path / "state", mlflow_uri=mlflow_uri, trials=40, now=END)


def by_policy(outcomes: list[Outcome]) -> dict[str, Outcome]:
    return {o.policy: o for o in outcomes}


def test_first_pass_opens_merge_request_with_push_options(tmp_path: Path, mlflow_uri: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("GREENOPS_FORGE_TOKEN", "GITLAB_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    remote = make_remote(tmp_path, repo_files())
    main_before = git("rev-parse", "main", cwd=remote)
    gitlab = replace(settings(remote, tmp_path, mlflow_uri), forge=ForgeSettings("gitlab", project="team/gitops"))
    outcomes = by_policy(reconcile(gitlab, push=True))

    churn = outcomes["churn-predictor"]
    assert churn.status == "ok" and churn.proposal and churn.proposal.status == "created"
    assert churn.decision and churn.decision.proposed.schedule != "30 1 * * *"
    assert outcomes["ghost-model"].status == "stalled"
    assert outcomes["ghost-model"].message.startswith(
        "policies/ghost.yaml:6: no finished training runs tagged greenops.policy=ghost-model")
    assert outcomes["policies/broken.yaml"].status == "stalled"
    assert "policies/broken.yaml:4:7: /spec: 'model' is a required property" in outcomes["policies/broken.yaml"].message

    branch = "greenops/churn-predictor"
    assert git("rev-parse", "main", cwd=remote) == main_before  # never pushes to the target
    assert git("rev-parse", f"{branch}~1", cwd=remote) == main_before
    assert git("log", "-1", "--format=%an <%ae>|%s", branch, cwd=remote) == (
        f"greenops <greenops@users.noreply>|{churn.title}")
    path = "manifests/generated/crm-ml/churn-predictor/churn-predictor.cronjob.yaml"
    manifest = yaml.safe_load(git("show", f"{branch}:{path}", cwd=remote))
    assert manifest["spec"]["schedule"] == churn.decision.proposed.schedule

    pushes = recorded_push_options(remote)
    churn_push = next(p for p in pushes if f"merge_request.title={churn.title}" in p)
    assert "merge_request.create" in churn_push and "merge_request.target=main" in churn_push
    description = next(o for o in churn_push if o.startswith("merge_request.description="))
    assert "\n" not in description and "\\n| | Current | Proposed |\\n" in description
    assert "```mermaid\\nxychart-beta" in description and "merge_request.label=greenops" in churn_push


def test_the_local_forge_keeps_the_merge_request_where_mr_show_finds_it(
        tmp_path: Path, mlflow_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    remote = make_remote(tmp_path, repo_files())
    outcomes = by_policy(reconcile(settings(remote, tmp_path, mlflow_uri), push=True))
    churn = outcomes["churn-predictor"]
    assert churn.proposal and churn.proposal.status == "created" and recorded_push_options(remote)[0] == []
    assert main(["mr", "show", "churn-predictor", "--state-dir", str(tmp_path / "state")]) == 0
    record = capsys.readouterr().out
    assert record.startswith(f"# {churn.title}") and "| Retrains per month (10th-90th percentile) | 30.0 |" in record
    assert "_State: open · !1 · greenops/churn-predictor → main" in record and "```diff" in record
    assert main(["mr", "show", "nope", "--state-dir", str(tmp_path / "state")]) == 1


def test_second_pass_without_new_telemetry_adds_no_commit(tmp_path: Path, mlflow_uri: str) -> None:
    """Even after an unrelated commit on the target: the proposal is the same, so nothing is pushed."""
    remote = make_remote(tmp_path, repo_files())
    reconcile(settings(remote, tmp_path, mlflow_uri), push=True)
    human_commit(remote, "main", tmp_path / "human", "OTHER.md")
    refs, pushes = git("for-each-ref", "refs/heads/greenops/", cwd=remote), len(recorded_push_options(remote))
    again = by_policy(reconcile(settings(remote, tmp_path, mlflow_uri), push=True))
    churn = again["churn-predictor"]
    assert churn.proposal and churn.proposal.status == "unchanged" and "up to date (no new commit)" in churn.message
    assert git("for-each-ref", "refs/heads/greenops/", cwd=remote) == refs
    assert len(recorded_push_options(remote)) == pushes


def test_a_proposal_the_policy_no_longer_supports_is_closed_with_a_note(tmp_path: Path, mlflow_uri: str) -> None:
    """Issue 13: after a policy change that leaves "no change proposed", the old merge request stayed open and a
    reviewer could still merge it."""
    remote = make_remote(tmp_path, repo_files())
    churn = replace(settings(remote, tmp_path, mlflow_uri), only=("churn-predictor",))
    first = by_policy(reconcile(churn, push=True))["churn-predictor"]
    assert first.proposal and first.proposal.status == "created"
    work = tmp_path / "human"
    git("clone", "--quiet", str(remote), str(work))
    policy = work / "policies" / "churn-predictor.yaml"
    policy.write_text(policy.read_text().replace("minSavingPercent: 10", "minSavingPercent: 95"))
    git(*ALICE, "commit", "--quiet", "-am", "only propose big savings", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    second = by_policy(reconcile(churn, push=True))["churn-predictor"]
    assert second.status == "ok" and second.message.startswith("no change proposed: ")
    assert "below minSavingPercent 95" in second.message and "closed merge request !1" in second.message
    assert second.proposal and second.proposal.status == "closed"
    assert "greenops/" not in git("branch", "--all", cwd=remote)  # nothing left to merge
    record = (tmp_path / "state" / "merge-requests" / "churn-predictor.md").read_text()
    assert "_State: closed · !1" in record and " - autoclosed" in record.splitlines()[0]
    assert "> **Note:** greenops closed this merge request: churn-predictor: no change proposed: " in record


def test_plan_shows_the_diff_and_pushes_nothing(tmp_path: Path, mlflow_uri: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    remote = make_remote(tmp_path, repo_files())
    code = main(["plan", "--repo", str(remote), "--state-dir", str(tmp_path / "state"), "--mlflow-uri",
                 mlflow_uri, "--trials", "40", "--policy", "churn-predictor", "--as-of", END.isoformat()])
    out = capsys.readouterr().out
    assert code == 1  # the repository's broken policy file is reported even when planning one policy
    assert "policies/broken.yaml: stalled" in out
    assert "Title: greenops(churn-predictor): " in out and "--- diff ---" in out
    assert "+  schedule:" in out and "would push greenops/churn-predictor" in out
    assert "greenops/" not in git("branch", "--all", cwd=remote) and recorded_push_options(remote) == []
    assert not (tmp_path / "state" / "merge-requests").exists()


@pytest.mark.parametrize(("command", "name", "hint"), [
    ("reconcile", "fraud-detectr", " (did you mean fraud-detector?)"),
    ("plan", "broken", ""),  # the name of a policy whose file is invalid
])
def test_an_unknown_policy_name_is_an_error_and_nothing_is_reconciled(
        tmp_path: Path, mlflow_uri: str, capsys: pytest.CaptureFixture[str], command: str, name: str,
        hint: str) -> None:
    remote = make_remote(tmp_path, repo_files())
    code = main([command, "--repo", str(remote), "--state-dir", str(tmp_path / "state"), "--mlflow-uri", mlflow_uri,
                 "--trials", "40", "--as-of", END.isoformat(), "--policy", "churn-predictor", "--policy", name])
    out = capsys.readouterr().out
    assert code == 1
    assert "greenops/" not in git("branch", "--all", cwd=remote) and recorded_push_options(remote) == []
    assert not (tmp_path / "state" / "merge-requests").exists()
    assert (f"{name}: stalled: --policy {name}: no valid policy of that name in policies/ of {remote}{hint}; valid "
            "policies: churn-predictor, fraud-detector, ghost-model; nothing was reconciled") in out
    assert "policies/broken.yaml: stalled: invalid policy file" in out  # why `broken` is not valid
    assert "churn-predictor: " not in out and "Traceback" not in out


def test_human_commit_on_bot_branch_is_never_overwritten(tmp_path: Path, mlflow_uri: str) -> None:
    remote = make_remote(tmp_path, repo_files())
    reconcile(settings(remote, tmp_path, mlflow_uri), push=True)
    human_tip = human_commit(remote, "greenops/churn-predictor", tmp_path / "human")

    outcome = by_policy(reconcile(settings(remote, tmp_path, mlflow_uri), push=True))["churn-predictor"]
    assert outcome.proposal and outcome.proposal.status == "held" and "Bob <bob@example.com>" in outcome.message
    assert git("rev-parse", "greenops/churn-predictor", cwd=remote) == human_tip


def test_rejected_push_is_transient_and_leaves_nothing_half_written(tmp_path: Path, mlflow_uri: str) -> None:
    remote = make_remote(tmp_path, repo_files())
    hook = remote / "hooks" / "pre-receive"
    recording = hook.read_text()
    hook.write_text("#!/bin/sh\necho 'quota exceeded' >&2\nexit 1\n")
    outcome = by_policy(reconcile(settings(remote, tmp_path, mlflow_uri), push=True))["churn-predictor"]
    assert outcome.status == "transient" and "quota exceeded" in outcome.message
    assert "greenops/" not in git("branch", "--all", cwd=remote)
    assert not (tmp_path / "state" / "merge-requests" / "churn-predictor.md").exists()
    hook.write_text(recording)
    retried = by_policy(reconcile(settings(remote, tmp_path, mlflow_uri), push=True))["churn-predictor"]
    assert retried.proposal and retried.proposal.status == "created"


def test_unreachable_repository_is_a_clear_user_error(tmp_path: Path, mlflow_uri: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-repo.git"
    code = main(["reconcile", "--repo", str(missing), "--state-dir", str(tmp_path / "state"),
                 "--mlflow-uri", mlflow_uri])
    out = capsys.readouterr().out
    assert code == 1
    assert f"cannot clone or fetch {missing}" in out and "check the URL" in out
    assert "Traceback" not in out


def test_remote_without_push_options_says_how_to_enable_them(tmp_path: Path, mlflow_uri: str) -> None:
    remote = make_remote(tmp_path, repo_files())
    git("config", "receive.advertisePushOptions", "false", cwd=remote)
    gitlab = replace(settings(remote, tmp_path, mlflow_uri), forge=ForgeSettings("gitlab", project="team/gitops"))
    outcome = by_policy(reconcile(gitlab, push=True))["churn-predictor"]
    assert outcome.status == "stalled" and "receive.advertisePushOptions" in outcome.message


def test_history_is_paged(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry = MlflowTelemetry(mlflow_uri)
    whole = telemetry.history("churn-predictor", "accuracy", "energy_kwh")
    assert telemetry.trainings("churn-predictor", "accuracy", "energy_kwh", since=END - timedelta(days=10)) == tuple(
        t for t in whole.trainings if t.finished_at >= END - timedelta(days=10, minutes=-5))
    monkeypatch.setattr(mlflow_store, "PAGE_SIZE", 7)
    paged = telemetry.history("churn-predictor", "accuracy", "energy_kwh")
    assert len(whole.trainings) == 40 and paged == whole
    assert all(t.energy_kwh and t.energy_kwh > 0 for t in whole.trainings)


def test_cli_reconcile_reports_every_policy_and_exits_1_on_a_broken_one(
        tmp_path: Path, mlflow_uri: str) -> None:
    remote = make_remote(tmp_path, repo_files())
    done = subprocess.run(["greenops", "reconcile", "--repo", str(remote), "--state-dir", str(tmp_path / "s"),
                           "--mlflow-uri", mlflow_uri, "--output", "json", "--trials", "30",
                           "--as-of", END.isoformat()],
                          capture_output=True, text=True, env={"PATH": str(Path(__import__("sys").executable).parent)
                                                               + ":/usr/bin:/bin"})
    assert done.returncode == 1, done.stderr
    import json

    report = {r["policy"]: r for r in json.loads(done.stdout)}
    assert report["churn-predictor"]["proposal"] == "created"
    assert report["policies/broken.yaml"]["status"] == "stalled"


def test_missing_sqlite_store_is_reported_not_created(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, repo_files())
    store = tmp_path / "nowhere" / "mlflow.db"
    outcome = by_policy(reconcile(settings(remote, tmp_path, f"sqlite:///{store}"), push=True))["churn-predictor"]
    assert outcome.status == "stalled" and f"MLflow store {store} does not exist" in outcome.message
    assert not store.parent.exists()


def test_a_bug_in_one_policy_does_not_stop_the_others(tmp_path: Path, mlflow_uri: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import controller.reconcile as reconcile_module

    real_decide = reconcile_module.decide

    def flaky_decide(policy, *args, **kwargs):  # type: ignore[no-untyped-def]
        if policy.name == "fraud-detector":
            raise ZeroDivisionError("simulated bug")
        return real_decide(policy, *args, **kwargs)

    monkeypatch.setattr(reconcile_module, "decide", flaky_decide)
    remote = make_remote(tmp_path, repo_files())
    outcomes = reconcile(settings(remote, tmp_path, mlflow_uri), push=True)
    found = by_policy(outcomes)
    assert found["fraud-detector"].status == "error" and "simulated bug" in found["fraud-detector"].message
    assert found["churn-predictor"].status == "ok"
    from controller.cli import exit_code

    assert exit_code(outcomes) == 3


def test_a_bug_in_one_write_back_does_not_stop_the_others(tmp_path: Path, mlflow_uri: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import controller.reconcile as reconcile_module

    real_write = reconcile_module.ensure_merge_request

    def flaky_write(workspace, forge, change, *args, **kwargs):  # type: ignore[no-untyped-def]
        if change.branch == "greenops/fraud-detector":
            raise ZeroDivisionError("simulated write-back bug")
        return real_write(workspace, forge, change, *args, **kwargs)

    monkeypatch.setattr(reconcile_module, "ensure_merge_request", flaky_write)
    found = by_policy(reconcile(settings(make_remote(tmp_path, repo_files()), tmp_path, mlflow_uri), push=True))
    assert found["fraud-detector"].status == "error" and "simulated write-back bug" in found["fraud-detector"].message
    assert found["churn-predictor"].status == "ok"


def test_an_unreachable_repository_is_reported_under_the_policies_asked_for(tmp_path: Path) -> None:
    only = replace(settings(tmp_path / "no-such-repo.git", tmp_path, "sqlite:///unused.db"),
                   only=("churn-predictor", "fraud-detector"))
    outcomes = reconcile(only, push=True)
    assert [(o.policy, o.status) for o in outcomes] == [("churn-predictor", "stalled"), ("fraud-detector", "stalled")]


def test_credentials_in_the_repository_url_are_never_printed(tmp_path: Path, mlflow_uri: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://bot:s3cr3t-token@127.0.0.1:9/gitops.git"  # loopback, closed port: fails at once
    assert main(["plan", "--repo", url, "--state-dir", str(tmp_path / "state"), "--mlflow-uri", mlflow_uri]) == 1
    captured = capsys.readouterr()
    assert "s3cr3t-token" not in captured.out + captured.err
    assert "cannot clone or fetch http://***@127.0.0.1:9/gitops.git" in captured.out


class EchoingPrometheus(BaseHTTPRequestHandler):
    """Rejects every query and echoes the Authorization header it was sent in its error text."""

    def do_GET(self) -> None:
        body = json.dumps({"status": "error", "errorType": "bad_data",
                           "error": f"not allowed: {self.headers.get('Authorization')}"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def test_telemetry_credentials_from_the_environment_are_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROMETHEUS_BEARER_TOKEN", "prom-Bearer-0042")
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingPrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = main(["telemetry", "check", str(PROJECT / "tests/golden/valid/prometheus-telemetry.yaml"),
                     "--prometheus-url", f"http://127.0.0.1:{server.server_port}", "--state-dir", str(tmp_path)])
    finally:
        server.shutdown()
        server.server_close()
    printed = capsys.readouterr()
    assert code == 1 and "not allowed: Bearer ***" in printed.out  # the server did echo it
    assert "prom-Bearer-0042" not in printed.out + printed.err


def test_a_forge_token_appears_nowhere(tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """Token in the environment; a pass against the FAKE GitHub, then one where the server refuses it and
    echoes it back: the token is in no output, log record, commit, merge request or state file."""
    token = "ghp_TokenThatMustNeverLeak0042"
    monkeypatch.setenv("GREENOPS_FORGE_TOKEN", token)
    caplog.set_level(logging.DEBUG)
    remote = make_remote(tmp_path, repo_files())
    state = tmp_path / "state"
    args = ["--log-level", "DEBUG", "reconcile", "--repo", str(remote), "--state-dir", str(state), "--mlflow-uri",
            mlflow_uri, "--as-of", END.isoformat(), "--trials", "40", "--forge", "github", "--forge-project",
            "team/gitops"]
    with fake_forge("github", token) as github:
        assert main([*args, "--forge-url", github.base]) == 1  # ghost and broken policies are stalled
        assert len(github.pulls) == 2
        bodies = json.dumps([github.pulls, github.comments, [body for _, _, body in github.requests]])
    with fake_forge("github", "rotated") as refusing:
        main([*args, "--forge-url", refusing.base])
    printed = capsys.readouterr()
    assert "refused the token" in printed.out
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "reconciling" in logged  # the scan reads real log records
    history = git("log", "-p", "--all", cwd=remote)
    stored = "\n".join(p.read_text(errors="ignore") for p in state.rglob("*") if p.is_file() and p.stat().st_size
                       < 5_000_000 and p.suffix not in (".db", ".pack", ".idx"))
    for where, text in {"stdout": printed.out, "stderr": printed.err, "logs": logged, "commits": history,
                        "merge requests": bodies, "state": stored}.items():
        assert token not in text, where
