"""`greenops run` as a real process: a real bare remote, a real MLflow store, HTTP probes, SIGTERM."""

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .conftest import VENV_BIN, git, make_remote
from .test_reconcile import END, mlflow_uri, repo_files

__all__ = ["mlflow_uri"]  # the module-scoped MLflow fixture, shared with test_reconcile


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@contextmanager
def controller(arguments: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`greenops run` in its own process group; always stopped."""
    with log.open("wb") as stream:
        process = subprocess.Popen([str(VENV_BIN / "greenops"), "--log-format", "json", "--log-level", "INFO", "run",
                                    *arguments], stdout=stream, stderr=stream, start_new_session=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_for_port(log: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_text().splitlines():
            message = json.loads(line)["message"]
            if message.startswith("serving /metrics"):
                return int(message.split(" on ")[1].split(";")[0].rsplit(":", 1)[1])
        time.sleep(0.2)
    raise AssertionError(f"greenops run did not start:\n{log.read_text()}")


def test_run_reconciles_serves_probes_and_stops_cleanly_on_sigterm(tmp_path: Path, mlflow_uri: str) -> None:
    remote = make_remote(tmp_path, repo_files())
    log = tmp_path / "run.log"
    arguments = ["--repo", str(remote), "--state-dir", str(tmp_path / "state"), "--mlflow-uri", mlflow_uri,
                 "--as-of", END.isoformat(), "--trials", "40", "--listen", "127.0.0.1:0", "--interval", "1h",
                 "--jitter", "1m"]
    with controller(arguments, log) as process:
        base = f"http://127.0.0.1:{wait_for_port(log, process)}"
        assert get(f"{base}/healthz")[0] == 200
        deadline = time.monotonic() + 180
        while get(f"{base}/readyz")[0] != 200:
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.5)
        status, metrics = get(f"{base}/metrics")
        assert status == 200
        assert 'greenops_reconcile_total{outcome="ok",policy="churn-predictor"} 1.0' in metrics
        assert 'greenops_reconcile_total{outcome="stalled",policy="ghost-model"} 1.0' in metrics
        assert 'greenops_retrains_per_month{policy="churn-predictor",schedule="current"} 30.0' in metrics
        assert 'greenops_predicted_energy_saving_kwh{policy="churn-predictor"}' in metrics
        assert 'greenops_last_successful_reconcile_timestamp_seconds{policy="churn-predictor"}' in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert all("policy" in line and "level" in line for line in lines)
    assert any(line["policy"] == "churn-predictor" for line in lines)
    assert any(line["message"] == "stopped" for line in lines)
    assert git("rev-list", "--count", "main..greenops/churn-predictor", cwd=remote) == "1"  # one whole commit
    git("fsck", "--no-progress", cwd=remote)
    clone = next((tmp_path / "state" / "workspaces").iterdir())
    assert git("status", "--porcelain", cwd=clone) == "" and not (clone / ".git" / "index.lock").exists()


def test_run_takes_settings_from_a_config_file_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "greenops.yaml"
    config.write_text("repo: /nowhere.git\ninterval: 30m\nmr-label: [energy, ml]\n")
    from controller.cli import RUN_OPTIONS, build_parser, parse_arguments

    parser = build_parser()
    args = parse_arguments(parser, ["run", "--config", str(config), "--interval", "2h"])
    assert args.repo == "/nowhere.git" and args.interval.total_seconds() == 7200 and args.mr_label == ["energy", "ml"]
    config.write_text("repo: /x.git\nintervall: 30m\n")
    with pytest.raises(SystemExit, match=r"unknown setting 'intervall'; allowed: .*interval"):
        parse_arguments(parser, ["run", "--config", str(config)])
    assert "--listen" in RUN_OPTIONS


def test_transient_failures_bring_the_next_pass_sooner_with_backoff(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.reconcile import Outcome, Settings
    from controller.runtime import service
    from controller.runtime.metrics import Metrics

    statuses = iter(["transient", "transient", "transient", "ok"])
    monkeypatch.setattr(service, "reconcile", lambda settings, push: [Outcome("p", next(statuses), "MLflow is down")])
    settings = service.RunSettings(Settings("/repo.git", tmp_path, "sqlite:///x.db"), timedelta(minutes=3),
                                   timedelta(0), timedelta(minutes=1), "127.0.0.1", 0)
    controller = service.Controller(settings, Metrics())
    controller.scheduler.start(paused=True)
    try:
        controller.scheduler.add_job(controller.reconcile_unit, controller._trigger(), id="unit:p", args=["p", ("p",)])
        delays = []
        for _ in range(4):
            before = datetime.now(UTC)
            controller.reconcile_unit("p", ("p",))
            job = controller.scheduler.get_job("unit:p")
            delays.append(round((job.next_run_time - before).total_seconds() / 60))
        assert delays[:3] == [1, 2, 3] and controller.failures == {}  # 1, 2, then capped at the interval
        exported = controller.metrics.exposition().decode()
        assert 'greenops_reconcile_total{outcome="transient",policy="p"} 3.0' in exported
    finally:
        controller.scheduler.shutdown(wait=False)


def paused_controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcomes: object) -> object:
    """A Controller whose reconcile returns ``outcomes`` (a callable), its scheduler started paused."""
    from controller.reconcile import Settings
    from controller.runtime import service
    from controller.runtime.metrics import Metrics

    monkeypatch.setattr(service, "reconcile", outcomes)
    settings = service.RunSettings(Settings("/repo.git", tmp_path, "sqlite:///x.db"), timedelta(hours=1),
                                   timedelta(0), timedelta(minutes=1), "127.0.0.1", 0)
    controller = service.Controller(settings, Metrics())
    controller.scheduler.start(paused=True)
    return controller


def test_a_group_merge_request_counts_once_against_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.gitops.writeback import WriteBack
    from controller.reconcile import Outcome

    opened = WriteBack("created", "greenops/group-payments", "")
    members = ("card-risk", "fraud-detector")
    controller = paused_controller(tmp_path, monkeypatch, lambda settings, push: [
        Outcome(name, "ok", "opened", proposal=opened) for name in members])
    try:
        controller.scheduler.add_job(controller.reconcile_unit, controller._trigger(), id="unit:group-payments",
                                     args=["group-payments", members])
        controller.reconcile_unit("group-payments", members)
        assert controller.opened == 1
    finally:
        controller.scheduler.shutdown(wait=False)


def test_a_long_outage_backs_off_at_the_interval_without_overflowing(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.reconcile import Outcome

    controller = paused_controller(tmp_path, monkeypatch, lambda settings, push: [Outcome("p", "transient", "down")])
    try:
        controller.scheduler.add_job(controller.reconcile_unit, controller._trigger(), id="unit:p", args=["p", ("p",)])
        controller.failures["p"] = 100  # days of MLflow being down
        before = datetime.now(UTC)
        controller.reconcile_unit("p", ("p",))
        delay = controller.scheduler.get_job("unit:p").next_run_time - before
        assert timedelta(minutes=59) < delay <= timedelta(hours=1, seconds=1)
    finally:
        controller.scheduler.shutdown(wait=False)


def test_run_names_an_unknown_policy_and_schedules_nothing_for_it(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from dataclasses import replace

    from controller.reconcile import Settings
    from controller.runtime import service
    from controller.runtime.metrics import Metrics

    remote = make_remote(tmp_path, repo_files())
    wanted = replace(Settings(str(remote), tmp_path / "state", "sqlite:///x.db"), only=("churn-predictor", "ghost"))
    settings = service.RunSettings(wanted, timedelta(hours=1), timedelta(0), timedelta(minutes=1), "127.0.0.1", 0)
    controller = service.Controller(settings, Metrics())
    controller.scheduler.start(paused=True)
    try:
        controller.discover()
        assert [job.id for job in controller.scheduler.get_jobs()] == ["unit:churn-predictor"]
    finally:
        controller.scheduler.shutdown(wait=False)
    (record,) = [r for r in caplog.records if "--policy ghost" in r.getMessage()]
    assert record.levelname == "ERROR" and "valid policies: churn-predictor, fraud-detector, ghost-model" in \
        record.getMessage()


def test_a_listen_address_in_use_is_a_clear_user_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([str(VENV_BIN / "greenops"), "run", "--repo", str(tmp_path / "r.git"), "--listen",
                               f"127.0.0.1:{port}", "--state-dir", str(tmp_path)], capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "internal error" not in done.stderr


def test_stopping_during_a_failing_pass_waits_for_it_and_never_deadlocks(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() (what SIGTERM calls) while the pass ends transient, so it reschedules itself while stop() is
    waiting: the case that deadlocked when stop() held the scheduler's lock."""
    from controller.reconcile import Outcome, Settings
    from controller.runtime import service
    from controller.runtime.metrics import Metrics

    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_transient(settings: Settings, push: bool) -> list[Outcome]:
        started.set()
        release.wait(10)
        finished.set()
        return [Outcome("p", "transient", "MLflow is down")]

    monkeypatch.setattr(service, "reconcile", slow_transient)
    settings = service.RunSettings(Settings("/repo.git", tmp_path, "sqlite:///x.db"), timedelta(hours=1),
                                   timedelta(0), timedelta(minutes=1), "127.0.0.1", 0)
    controller = service.Controller(settings, Metrics())
    controller.scheduler.start()
    controller.scheduler.add_job(controller.reconcile_unit, controller._trigger(), id="unit:p", args=["p", ("p",)],
                                 next_run_time=datetime.now(UTC))
    try:
        assert started.wait(10)
        stopper = threading.Thread(target=controller.stop)
        stopper.start()
        time.sleep(0.2)
        assert stopper.is_alive() and not finished.is_set()  # stop() waits for the running pass ...
        release.set()
        stopper.join(10)
        assert not stopper.is_alive() and finished.is_set()  # ... and returns once it has finished
    finally:
        release.set()
        if controller.scheduler.running:  # an assertion failed before stop() shut it down
            controller.scheduler.shutdown(wait=False)


def test_config_lists_nulls_and_abbreviations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from controller.cli import build_parser, parse_arguments

    config = tmp_path / "greenops.yaml"
    config.write_text("repo: /r.git\nmr-label: [a, b]\ntarget-branch: null\n")
    parser = build_parser()
    args = parse_arguments(parser, ["run", "--config", str(config), "--mr-label", "c"])
    assert args.mr_label == ["c"] and args.target_branch is None  # the flag's list replaces the file's
    config.write_text("repo: /r.git\ninterval: yes\n")
    with pytest.raises(SystemExit, match="interval must be a string or a number"):
        parse_arguments(parser, ["run", "--config", str(config)])
    with pytest.raises(SystemExit):
        parse_arguments(parser, ["run", "--repo", "/r.git", "--conf", str(config)])  # no silent abbreviation
    assert "unrecognized arguments: --conf" in capsys.readouterr().err
