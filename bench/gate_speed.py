"""Wall time of one `greenops gate` decision against a sqlite MLflow store holding 90 days of history.

Run: .venv/bin/python bench/gate_speed.py [--repeat 7]
The store is made the way `greenops demo` makes its telemetry (daily retrains of the fraud-detector scenario,
every version scored daily for 14 days: about 90 training runs and 1,250 evaluation points). The gate is
timed as a whole command, interpreter start-up and the MLflow reads included, as a CronJob's init container
runs it; the decision is not recorded (--no-record), so every repetition reads the same store.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from controller.decision import Forecast  # noqa: E402
from controller.demo.history import generate  # noqa: E402
from controller.demo.run import SCENARIOS  # noqa: E402
from controller.policy.validate import validate_paths  # noqa: E402
from controller.render import render_gate  # noqa: E402
from controller.rule import RuleParams  # noqa: E402
from controller.telemetry.mlflow_store import MlflowTelemetry  # noqa: E402

DAYS = 90


def prepare(folder: Path) -> tuple[str, Path, datetime]:
    policy = next(p for p in validate_paths([PROJECT / "policies"], relative_to=PROJECT).policies
                  if p.name == "fraud-detector")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    end = datetime(2026, 11, 1, tzinfo=UTC)
    generate(policy, SCENARIOS[policy.name], MlflowTelemetry(uri, create=True), end - timedelta(days=DAYS), end, 1)
    proposed = Forecast("0 2 * * *", 30.0, 1.0, 0.1, 0.95, 0.93, 0.9, 0.88, 24.0, 24.0, (), rule=RuleParams(0.02))
    config = folder / "fraud-detector.gate.yaml"
    config.write_text(render_gate(policy, proposed))
    return uri, config, end + timedelta(hours=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        uri, config, now = prepare(Path(scratch))
        command = [str(Path(sys.executable).parent / "greenops"), "gate", "--config", str(config), "--mlflow-uri", uri,
                   "--as-of", now.isoformat(), "--no-record"]
        samples, last = [], None
        for _ in range(args.repeat):
            began = time.perf_counter()
            last = subprocess.run(command, capture_output=True, text=True, check=False)
            samples.append(time.perf_counter() - began)
            if last.returncode not in (0, 4):
                print(last.stdout + last.stderr, file=sys.stderr)
                return 1
        decide_s = in_process(uri, config, now, args.repeat)
    assert last is not None
    print(f"greenops gate, {DAYS} days of history in a sqlite MLflow store: whole command median "
          f"{statistics.median(samples):.2f} s (min {min(samples):.2f} s) over {args.repeat} runs; "
          f"after start-up and imports, reading the telemetry and deciding takes {decide_s:.2f} s (median)")
    print(f"decision: {last.stdout.strip()}")
    return 0


def in_process(uri: str, config: Path, now: datetime, repeat: int) -> float:
    """Median seconds from loading the gate's configuration to its decision, the libraries already imported."""
    from controller.gate.command import _decide
    from controller.gate.config import load_gate_config
    from controller.telemetry.assemble import open_sources

    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        _decide(load_gate_config(config), open_sources(uri, None), now)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


if __name__ == "__main__":
    sys.exit(main())
