"""`greenops gate` against a real MLflow store: the rule's decision, its exit codes, its record, its fallback,
and the CronJob hand-off run by a real /bin/sh."""

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from controller.cli import main
from controller.decision import Forecast
from controller.gate.manifest import DECISION_FILE, SKIP_OR_RUN
from controller.policy.model import Policy
from controller.render import render_gate
from controller.rule import RuleParams
from controller.telemetry.mlflow_store import MlflowTelemetry

from .test_decide import END, make_history, make_policy
from .test_forecast import hard_period_history

DECAY = 0.01  # a day: with target 0.9, a model older than about 4 days misses


def store(tmp_path: Path, decay: float = DECAY, end: datetime = END) -> str:
    """Daily retrains and shadow evaluations (the synthetic history of the decision tests), logged for real;
    the last retrain finishes 22 hours before ``end``."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    telemetry = MlflowTelemetry(uri, create=True)
    history = hard_period_history(decay, end=end)
    for run in history.trainings:
        telemetry.log_training("fraud-detector", run.version, run.finished_at - timedelta(minutes=10), run.finished_at,
                               {"energy_kwh": 1.0, "duration_s": 600.0, "accuracy": 0.95})
    by_version: dict[str, list[tuple[object, float]]] = {}
    for evaluation in history.evaluations:
        by_version.setdefault(evaluation.version, []).append((evaluation.at, evaluation.quality))
    for version, points in by_version.items():
        telemetry.log_evaluations("fraud-detector", version, "accuracy", points)  # type: ignore[arg-type]
    return uri


def gate_config(path: Path, policy: Policy, threshold: float | None = 0.05) -> Path:
    proposed = Forecast("0 2 * * *", 30.0, 1.0, 0.1, 0.95, 0.93, 0.9, 0.88, 24.0, 24.0, (),
                        rule=RuleParams(threshold))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_gate(policy, proposed))
    return path


def _config(tmp_path: Path, policy: Policy, threshold: float | None = 0.05) -> Path:
    return gate_config(tmp_path / "fraud-detector.gate.yaml", policy, threshold)


def gate_policy(**overrides: object) -> Policy:
    return make_policy(slo__target=0.9, schedule__maxInterval="30d", telemetry__maxStaleness="7d", **overrides)


def _gate(config: Path, uri: str, at: str, *extra: str) -> int:
    return main(["gate", "--config", str(config), "--mlflow-uri", uri, "--as-of", at, "--output", "json", *extra])


def test_the_gate_skips_a_fresh_model_and_retrains_a_stale_one(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    uri, config = store(tmp_path), _config(tmp_path, gate_policy())
    newest = (END - timedelta(days=80) + timedelta(days=79, hours=2))  # the last retrain of the history
    assert _gate(config, uri, (newest + timedelta(hours=1)).isoformat()) == 4  # a 1-hour-old model: skip
    fresh = json.loads(capsys.readouterr().out)
    assert fresh["decision"] == "skip" and fresh["by"] == "rule" and fresh["recorded"]
    assert "which does not exceed the price" in fresh["reason"]
    assert _gate(config, uri, (newest + timedelta(days=5)).isoformat()) == 0  # 5 days old: it misses, retrain
    stale = json.loads(capsys.readouterr().out)
    assert stale["decision"] == "retrain" and stale["by"] == "rule" and stale["value"] > 0.05
    recorded = MlflowTelemetry(uri).decisions("fraud-detector")
    assert [(r.decision, r.by) for r in recorded] == [("skip", "rule"), ("retrain", "rule")]
    assert recorded[1].reason == stale["reason"]
    from controller.telemetry.assemble import open_sources
    from controller.telemetry_check import check_policy

    check = check_policy(gate_policy(), open_sources(uri, None), newest + timedelta(days=5))
    assert check.gate is not None and check.gate.startswith("2 gate decisions: 1 retrain (rule 1), 1 skip; latest")
    earlier = check_policy(gate_policy(), open_sources(uri, None), newest + timedelta(hours=2))
    assert earlier.gate is not None and earlier.gate.startswith("1 gate decision: 0 retrains, 1 skip;")  # not later


def test_an_init_container_exits_zero_and_hands_the_decision_over(tmp_path: Path) -> None:
    uri, config = store(tmp_path), _config(tmp_path, gate_policy())
    newest = END - timedelta(days=1) + timedelta(hours=2)
    decision = tmp_path / "run" / "decision"
    code = _gate(config, uri, (newest + timedelta(hours=1)).isoformat(), "--decision-file", str(decision),
                 "--exit-zero", "--no-record")
    assert code == 0 and decision.read_text() == "skip\n"
    assert "does not exceed" in decision.with_name("decision.reason").read_text()
    assert MlflowTelemetry(uri).decisions("fraud-detector") == ()


@pytest.mark.parametrize(("choice", "code"), [("retrain", 0), ("skip", 4)])
def test_unreachable_telemetry_follows_on_telemetry_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          choice: str, code: int) -> None:
    config = _config(tmp_path, gate_policy(gate={"onTelemetryError": choice}))
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"
    assert _gate(config, missing, END.isoformat()) == code
    out = json.loads(capsys.readouterr().out)
    assert out["by"] == "fallback" and f"onTelemetryError: {choice}" in out["reason"] and not out["recorded"]


def test_a_plain_cron_always_retrains_and_a_broken_config_cannot_decide(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    uri, config = store(tmp_path), _config(tmp_path, gate_policy(), threshold=None)
    assert _gate(config, uri, END.isoformat()) == 0
    assert json.loads(capsys.readouterr().out)["by"] == "cron"
    broken = tmp_path / "broken.gate.yaml"
    broken.write_text(config.read_text().replace("kind: GateConfig", "kind: Nope"))
    assert _gate(broken, uri, END.isoformat()) == 1
    assert f"{broken}:data.gate.yaml: not a greenops GateConfig" in capsys.readouterr().err
    assert _gate(tmp_path / "absent", uri, END.isoformat()) == 1


def test_a_mounted_configmap_folder_is_read_like_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri, config = store(tmp_path), _config(tmp_path, gate_policy())
    data = yaml.safe_load(config.read_text())["data"]
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    for name, text in data.items():
        (mounted / name).write_text(text)
    at = (END - timedelta(days=1) + timedelta(hours=3)).isoformat()
    assert _gate(mounted, uri, at) == _gate(config, uri, at) == 4


def test_the_wrapped_training_command_runs_only_on_retrain(tmp_path: Path) -> None:
    """The generated CronJob's hand-off, run by a real /bin/sh: skip ends the pod at once, retrain execs."""
    decision = tmp_path / "decision"
    script = SKIP_OR_RUN.replace(DECISION_FILE, str(decision))
    marker = tmp_path / "trained"
    command = ["/bin/sh", "-c", script, "greenops-gated-job", "touch", str(marker)]
    decision.write_text("skip\n")
    skipped = subprocess.run(command, capture_output=True, text=True, check=False)
    assert skipped.returncode == 0 and not marker.exists() and "no retrain at this fire" in skipped.stdout
    decision.write_text("retrain\n")
    assert subprocess.run(command, check=False).returncode == 0 and marker.exists()
    failing = subprocess.run([*command[:4], "sh", "-c", "exit 7"], check=False)
    assert failing.returncode == 7  # the job's own exit code passes through


def test_history_fit_is_the_one_reconcile_uses(tmp_path: Path) -> None:
    """Same history, same forecaster: the gate's point fit has the reconcile fit's curve."""
    from controller.forecast.windows import fit_window_models
    from controller.gate.verdict import fit_for_gate

    policy, history = gate_policy(), make_history(0.004)
    gate = fit_for_gate(policy, history, 0)
    full = fit_window_models(history, policy, 0).models[0]
    assert gate.quality is not None and full.quality is not None
    assert gate.quality.age_curve == pytest.approx(full.quality.age_curve)


def test_an_unwritable_decision_file_cannot_decide_and_records_nothing(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    uri, config = store(tmp_path), _config(tmp_path, gate_policy())
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert _gate(config, uri, END.isoformat(), "--decision-file", str(blocker / "decision"), "--exit-zero") == 1
    err = capsys.readouterr().err
    assert f"cannot write the decision to {blocker / 'decision'}" in err and "Traceback" not in err
    assert MlflowTelemetry(uri).decisions("fraud-detector") == ()


def test_a_config_that_is_not_text_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbled = tmp_path / "garbled.gate.yaml"
    garbled.write_bytes(b"kind: ConfigMap\n\xff\xfe\n")
    assert _gate(garbled, f"sqlite:///{tmp_path / 'mlflow.db'}", END.isoformat()) == 1
    assert f"{garbled}: not UTF-8 text" in capsys.readouterr().err


def test_an_unexpected_fit_error_falls_back_instead_of_crashing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import controller.gate.verdict

    def broken(*_: object, **__: object) -> None:
        raise ValueError("array of sample points is empty")

    monkeypatch.setattr(controller.gate.verdict, "gate_decision", broken)
    uri, config = store(tmp_path), _config(tmp_path, gate_policy(gate={"onTelemetryError": "skip"}))
    assert _gate(config, uri, (END - timedelta(hours=20)).isoformat()) == 4
    out = json.loads(capsys.readouterr().out)
    assert out["by"] == "fallback" and "internal error ValueError: array of sample points is empty" in out["reason"]


@pytest.mark.parametrize(("age", "wait", "retrain"), [(8.0, 1.0, False), (9.5, 1.0, True), (29.0, 0.5, False),
                                                     (29.0, 2.0, True)])
def test_skip_on_error_still_retrains_before_the_model_passes_its_age_limit(age: float, wait: float,
                                                                           retrain: bool) -> None:
    """maxAgeOnError counts at the next fire; a limit above maxInterval is held to maxInterval (30d here)."""
    from controller.gate.verdict import fallback

    limit = "10d" if age < 20 else "60d"
    policy = gate_policy(gate={"onTelemetryError": "skip", "maxAgeOnError": limit})
    assert fallback(policy, "server down", END, age, wait).retrain is retrain
