"""`greenops demo`: everything under <state-dir>/demo/, built once, then one real reconcile.

- ``remote.git``: a bare git remote (accepting push options, like GitLab) holding the example policies;
- ``mlflow.db``: an MLflow sqlite store filled by actually retraining and evaluating scikit-learn
  models on a synthetic drifting stream over 75 simulated days;
- ``state/``: greenops' own state (clone, merge-request records).

Telemetry is generated once (atomically) and reused, so a second run sees the same inputs and
makes no new commit. Delete the folder to start over.
"""

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller.demo.history import DemoModel, generate
from controller.demo.stream import DriftScenario
from controller.policy.model import Policy
from controller.policy.validate import validate_paths
from controller.reconcile import Settings, reconcile
from controller.state import write_atomic

SIMULATED_DAYS = 75
SCENARIOS = {
    # Per-retrain energy and duration of the production job each demo model stands for (documented in README).
    "fraud-detector": DemoModel(DriftScenario(drift_rad_per_day=0.06, label_noise=0.04), job_kwh=1.2, job_minutes=25),
    "churn-predictor": DemoModel(DriftScenario(drift_rad_per_day=0.004, label_noise=0.08), job_kwh=1.0, job_minutes=20),
    "demand-forecaster": DemoModel(DriftScenario(drift_rad_per_day=0.02, label_noise=0.10), job_kwh=2.5,
                                   job_minutes=45),
}
DEMO_README = b"""# Demo GitOps repository

Made by `greenops demo`. `policies/` holds RetrainingPolicy resources; greenops proposes tuned
CronJobs under `manifests/generated/` on branches `greenops/<policy>`.
"""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _seed_repository(remote: Path, policy_dir: Path, policies: tuple[Policy, ...]) -> None:
    from controller.gitops.workspace import seed_remote

    files = {f"policies/{Path(p.source_file).name}": Path(p.source_file).read_bytes() for p in policies}
    files["README.md"] = DEMO_README
    seed_remote(remote, files, "Add retraining policies")
    _say(f"created demo GitOps remote {remote} with {len(policies)} policies from {policy_dir}")


def _generate_telemetry(database: Path, marker: Path, policies: tuple[Policy, ...], seed: int) -> None:
    from controller.telemetry.mlflow_store import MlflowTelemetry

    partial = database.with_suffix(".partial.db")
    partial.unlink(missing_ok=True)
    telemetry = MlflowTelemetry(f"sqlite:///{partial.resolve()}", create=True)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=SIMULATED_DAYS)
    summary = {}
    for number, policy in enumerate(policies):
        spec = SCENARIOS.get(policy.name)
        if spec is None:
            _say(f"{policy.name}: no demo scenario, so no telemetry (it will be reported as stalled)")
            continue
        began = time.perf_counter()
        trainings, evaluations = generate(policy, spec, telemetry, start, end, seed + number)
        summary[policy.name] = {"trainings": trainings, "evaluations": evaluations}
        _say(f"{policy.name}: trained {trainings} model versions on schedule '{policy.current_schedule}', "
             f"logged {evaluations} evaluations ({time.perf_counter() - began:.1f}s)")
    partial.replace(database)
    write_atomic(marker, json.dumps({"start": start.isoformat(), "end": end.isoformat(), **summary}, indent=2))


def run_demo(policy_dir: Path, state_root: Path, seed: int, trials: int) -> int:
    from controller.cli import print_outcomes

    result = validate_paths([policy_dir])
    if not result.ok:
        for problem in result.problems:
            print(problem.render())
        _say(f"the example policies in {policy_dir} are invalid; fix them (greenops validate {policy_dir})")
        return 1
    demo = state_root / "demo"
    remote, database, marker = demo / "remote.git", demo / "mlflow.db", demo / "telemetry.json"
    if not (remote / "HEAD").exists():
        _seed_repository(remote, policy_dir, result.policies)
    if not marker.exists():
        _say(f"generating {SIMULATED_DAYS} days of telemetry by training real models (once) ...")
        _generate_telemetry(database, marker, result.policies, seed)
    else:
        _say(f"reusing demo telemetry in {database} (delete {demo} to regenerate)")
    simulated_now = datetime.fromisoformat(json.loads(marker.read_text())["end"])
    settings = Settings(repo_url=str(remote.resolve()), state_dir=demo / "state",
                        mlflow_uri=f"sqlite:///{database.resolve()}", seed=seed, trials=trials, now=simulated_now)
    code = print_outcomes(reconcile(settings, push=True), show_diff=False)
    _say(f"\nmerge requests: greenops mr list --state-dir {settings.state_dir} (files in "
         f"{settings.state_dir / 'merge-requests'}); the branches: git --git-dir {remote} log --oneline --all")
    return code
