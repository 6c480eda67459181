"""`greenops track`: real CodeCarbon offline measurement, real MLflow store, exit codes and output unchanged."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

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
    assert "running the command without recording its energy" in done.stderr and "Traceback" not in done.stderr


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
