"""`greenops track`: real CodeCarbon offline measurement, real MLflow store, exit codes and output unchanged."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from controller import track as track_module
from controller.telemetry.mlflow_store import MlflowTelemetry
from controller.track import TrackOptions, measure, run_tracked

from .conftest import require_binary
from .servers import free_port

GREENOPS = str(Path(sys.executable).parent / "greenops")
BUSY = "sum(i * i for i in range(4_000_000))"


def track(tmp_path: Path, *command: str, policy: str = "demo-model", uri: str | None = None,
          flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    uri = uri or f"sqlite:///{tmp_path / 'mlflow.db'}"
    return subprocess.run([GREENOPS, "track", "--policy", policy, "--mlflow-uri", uri, *flags, "--", *command],
                          capture_output=True, text=True, timeout=180)


def runs(tmp_path: Path) -> list:  # type: ignore[type-arg]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(experiments, "tags.`greenops.kind` = 'training'"))


def test_records_energy_and_passes_output_through_with_no_network(tmp_path: Path) -> None:
    """Run inside a fresh network namespace (not even loopback is up): CodeCarbon's offline tracker needs none."""
    isolated = [require_binary("unshare"), "--map-root-user", "--net", GREENOPS]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([*isolated, "track", "--policy", "demo-model", "--mlflow-uri", uri, "--", sys.executable,
                           "-c", f"{BUSY}; print('trained')"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "trained"
    [run] = runs(tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.tags["greenops.policy"] == "demo-model" and run.data.tags["model_version"] == run.info.run_id
    assert run.data.metrics["energy_kwh"] > 0 and run.data.metrics["emissions_kg"] > 0
    assert run.data.metrics["duration_s"] > 0


def test_failing_command_keeps_its_exit_code_and_is_recorded_as_failed(tmp_path: Path) -> None:
    done = track(tmp_path, sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)")
    assert done.returncode == 3 and "boom" in done.stderr
    [run] = runs(tmp_path)
    assert run.info.status == "FAILED" and run.data.metrics["energy_kwh"] > 0


def test_command_using_mlflow_logs_into_the_same_run(tmp_path: Path) -> None:
    script = (f"import mlflow\n{BUSY}\nwith mlflow.start_run():\n    mlflow.log_metric('accuracy', 0.91)\n")
    done = track(tmp_path, sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    [run] = runs(tmp_path)
    assert run.data.metrics["accuracy"] == 0.91 and run.data.metrics["energy_kwh"] > 0


def test_command_choosing_its_own_experiment_and_nested_runs_counts_as_one_retrain(tmp_path: Path) -> None:
    """A script that sets its experiment and logs child runs works as it does alone; only its top run is the retrain."""
    script = ("import mlflow\nmlflow.set_experiment('fraud')\nwith mlflow.start_run() as top:\n"
              "    mlflow.log_metric('accuracy', 0.93)\n    mlflow.set_tag('model_version', '17')\n"
              "    for trial in range(2):\n        with mlflow.start_run(nested=True):\n"
              "            mlflow.log_metric('loss', trial)\n    print(top.info.run_id)\n")
    done = track(tmp_path, sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    [run] = runs(tmp_path)
    assert run.info.run_id == done.stdout.strip()
    assert run.data.tags["model_version"] == "17" and run.data.metrics["accuracy"] == 0.93
    assert run.data.metrics["energy_kwh"] > 0 and run.info.status == "FINISHED"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_experiment(run.info.experiment_id).name == "fraud"
    children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert len(children) == 2 and all("greenops.kind" not in child.data.tags for child in children)
    assert all(child.data.tags["greenops.policy"] == "demo-model" for child in children)


def test_sigterm_is_forwarded_to_the_command(tmp_path: Path) -> None:
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGTERM, lambda *_: (print('stopping', flush=True), sys.exit(7)))\n"
              "print('ready', flush=True)\ntime.sleep(60)\n")
    command = [GREENOPS, "track", "--policy", "demo-model", "--mlflow-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
               "--", sys.executable, "-c", script]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as wrapper:
        assert wrapper.stdout is not None and wrapper.stdout.readline() == "ready\n"
        wrapper.send_signal(signal.SIGTERM)
        output, _ = wrapper.communicate(timeout=120)
    assert wrapper.returncode == 7 and output == "stopping\n"
    [run] = runs(tmp_path)
    assert run.info.status == "FAILED" and run.data.metrics["duration_s"] < 60


def test_measurement_opens_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline tracker, in this process, with every socket connection recorded and refused."""
    attempts: list[object] = []

    def refuse(_socket: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    options = TrackOptions((sys.executable, "-c", BUSY), "demo-model", None, "FRA", None, "machine", "greenops")
    result = measure(options, dict(os.environ))
    assert result.returncode == 0 and result.energy_kwh is not None and result.energy_kwh > 0
    assert attempts == []


def test_a_failed_measurement_is_recorded_without_energy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("sensor exploded")

    monkeypatch.setattr(track_module.OfflineEmissionsTracker, "stop", broken)
    options = TrackOptions((sys.executable, "-c", "raise SystemExit(5)"), "demo-model", "v9", "FRA", None, "machine",
                           "greenops")
    code = run_tracked(options, MlflowTelemetry(f"sqlite:///{tmp_path / 'mlflow.db'}", create=True))
    assert code == 5
    [run] = runs(tmp_path)
    assert run.info.status == "FAILED" and "energy_kwh" not in run.data.metrics
    assert run.data.tags["model_version"] == "v9" and "greenops.energy_error" in run.data.tags


def test_command_killed_by_a_signal_exits_128_plus_n_and_is_recorded_as_killed(tmp_path: Path) -> None:
    done = track(tmp_path, sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert done.returncode == 128 + 15
    [run] = runs(tmp_path)
    assert run.info.status == "KILLED" and "energy_kwh" in run.data.metrics


def test_command_that_cannot_run_exits_127_and_says_why_on_stderr(tmp_path: Path) -> None:
    missing = track(tmp_path, "definitely-not-a-command-xyz")
    assert missing.returncode == 127 and missing.stdout == ""
    assert "greenops track: cannot run definitely-not-a-command-xyz" in missing.stderr
    [run] = runs(tmp_path)
    assert run.info.status == "FAILED"


def test_mlflow_down_still_runs_the_command(tmp_path: Path) -> None:
    done = track(tmp_path, sys.executable, "-c", "print('trained'); raise SystemExit(4)",
                 uri=f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 4 and done.stdout == "trained\n"
    assert "this run's energy is not recorded" in done.stderr and "Traceback" not in done.stderr


def test_an_unopenable_store_still_runs_the_command(tmp_path: Path) -> None:
    done = track(tmp_path, sys.executable, "-c", "print('trained')", uri="sqlite:////proc/no/such/mlflow.db")
    assert done.returncode == 0 and done.stdout == "trained\n"
    assert "cannot open the MLflow store" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("flags", "message"), [
    ((), "give the command to run after --"),
    (("--policy", "Not_A_Name"), "is not a policy name"),
    (("--country-iso-code", "ZZZ"), "unknown country ISO code 'ZZZ'"),
    (("--region", "atlantis"), "unknown region 'atlantis' of USA; known regions include alabama"),
    (("--country-iso-code", "FRA", "--region", "bretagne"), "no regional data for FRA"),
])
def test_usage_errors_run_nothing(tmp_path: Path, flags: tuple[str, ...], message: str) -> None:
    command = ["--", "touch", str(tmp_path / "ran")] if flags else []
    done = subprocess.run([GREENOPS, "track", "--policy", "x", *flags, *command], capture_output=True, text=True,
                          env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "ran").exists() and not (tmp_path / "mlflow.db").exists()
