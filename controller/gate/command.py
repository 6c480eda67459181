"""`greenops gate`: the command line of the run-time rule. Imports nothing heavy until it runs.

Exit codes: 0 retrain now, 4 skip this fire (with --exit-zero both exit 0 and the decision file tells),
1 cannot decide at all (the configuration is missing or invalid), 2 usage, 3 internal error. When the
telemetry cannot be read or used, the policy's ``gate.onTelemetryError`` decides, and the output says so.
"""

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller.gate.config import GateConfig
    from controller.gate.verdict import GateDecision
    from controller.telemetry.assemble import Sources

EXIT_RETRAIN, EXIT_CANNOT_DECIDE, EXIT_SKIP = 0, 1, 4
log = logging.getLogger("greenops.gate")

DESCRIPTION = """\
Decide at one fire of a schedule whether a retrain pays off now, with the rule greenops tuned and the
merged merge request put in Git: from the latest evaluations, the forecaster says how many SLO misses
(or how much quality) a fresh model would buy until the next fire, and the rule compares that with
the price of a retrain; an overspent error budget raises the value (boundedly), and maxInterval
forces a retrain. The decision is printed, logged, written to --decision-file and recorded in MLflow
(a run tagged greenops.kind=decision). Exit 0: retrain; 4: skip; 1: cannot decide (bad configuration,
unwritable decision file). When the telemetry cannot be read or used, spec.gate.onTelemetryError
decides (retrain by default); on history too thin for the forecaster every fire retrains."""

EXAMPLE = """\
examples:
  # in the generated CronJob's init container (the ConfigMap <policy>-gate mounted):
  greenops gate --config /etc/greenops/gate --decision-file /var/run/greenops/decision --exit-zero
  # as the first step of a scheduled pipeline, in a checkout of the GitOps repository:
  greenops gate --policy fraud-detector && python train.py
"""


def add_gate_parser(commands: Any, add_telemetry: Any, add_state_dir: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "gate", help="at a fire of the schedule: retrain now (exit 0) or skip (exit 4), by the tuned rule",
        description=DESCRIPTION, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, metavar="PATH", help="the gate ConfigMap greenops generates: its "
                       "mounted folder (gate.yaml + policy.yaml) or its file "
                       "manifests/generated/<ns>/<name>/<name>.gate.yaml")
    where.add_argument("--policy", metavar="NAME", help="a policy of --policies-dir, with the rule of its generated "
                       "gate ConfigMap under --generated-dir (a plain cron, retrain, until one is merged)")
    parser.add_argument("--policies-dir", type=Path, default=Path("policies"), help="with --policy (default policies)")
    parser.add_argument("--generated-dir", type=Path, default=Path("manifests/generated"),
                        help="with --policy: where greenops writes generated manifests (default manifests/generated)")
    parser.add_argument("--decision-file", type=Path, metavar="FILE", help="write 'retrain' or 'skip' here (and the "
                        "reason to FILE.reason), for the next step to read")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 for skip too (an init container must not "
                        "fail its pod); the decision file says which")
    parser.add_argument("--no-record", dest="record", action="store_false",
                        help="do not record the decision in MLflow")
    add_telemetry(parser)
    add_state_dir(parser)
    parser.set_defaults(func=cmd_gate)
    return parser


def _load(args: argparse.Namespace) -> "GateConfig":
    from controller.gate.config import config_for_policy, load_gate_config

    if args.config is not None:
        return load_gate_config(args.config)
    root = Path.cwd()
    return config_for_policy(args.policy, args.policies_dir, root, PurePosixPath(args.generated_dir.as_posix()))


def _decide(config: "GateConfig", sources: "Sources", now: datetime) -> "GateDecision":
    """The rule's decision, or the policy's fallback when the telemetry cannot support one. An unexpected
    error in the fit is logged with its traceback and handled like unusable telemetry: the pipeline gets the
    policy's documented fallback, not a crashed step."""
    from controller.errors import StalledError, TransientError
    from controller.gate.verdict import fallback, gate_decision, next_fire, plain_cron, serving_age
    from controller.telemetry.assemble import load_history

    policy = config.policy
    if not config.rule.gated:
        return plain_cron(now)

    def fall_back(problem: str, age: float | None) -> "GateDecision":
        wait = (next_fire(config.schedule, policy.time_zone, now) - now).total_seconds() / 86400
        return fallback(policy, problem, now, age, wait)

    try:
        history = load_history(policy, sources, now)
    except (StalledError, TransientError) as err:
        return fall_back(str(err), _age_from_trainings(config, sources, now))
    try:
        return gate_decision(policy, history, config.rule, config.schedule, now, seed=0)
    except StalledError as err:
        return fall_back(str(err), serving_age(history, now))
    except Exception as err:  # a bug in the fit must not fail the pipeline: fall back, loudly
        log.exception("gate: the decision failed unexpectedly; applying onTelemetryError",
                      extra={"policy": policy.name})
        return fall_back(f"internal error {type(err).__name__}: {err}; please report it", serving_age(history, now))


def _age_from_trainings(config: "GateConfig", sources: "Sources", now: datetime) -> float | None:
    """The serving model's age from the training runs alone, when those can still be read."""
    from controller.errors import StalledError, TransientError
    from controller.gate.verdict import serving_age
    from controller.telemetry.assemble import read_trainings
    from controller.telemetry.history import History

    policy = config.policy
    try:
        trainings = read_trainings(policy, sources, now - policy.telemetry.lookback, now).value
    except (StalledError, TransientError):
        return None
    return serving_age(History(policy.name, "", trainings, ()), now)


def _record(config: "GateConfig", sources: "Sources", decision: "GateDecision") -> str | None:
    """Record the decision in MLflow; a failure is a warning, never a different decision."""
    from controller.errors import StalledError, TransientError
    from controller.telemetry.history import GateRecord

    metrics = {name: value for name, value in (("serving_age_days", decision.serving_age_days),
                                                 ("value", decision.value), ("price", decision.price),
                                                 ("budget_debt", decision.debt)) if value is not None}
    try:
        sources.mlflow.log_decision(config.policy.name, decision.at,
                                    GateRecord(decision.at, decision.word, decision.by, decision.reason), metrics)
    except (StalledError, TransientError) as err:
        return f"the decision was not recorded in MLflow ({err})"
    return None


def _write_decision(path: Path, decision: "GateDecision") -> str | None:
    """Write the hand-off files; the problem, naming the file, when they cannot be written."""
    from controller.state import write_atomic

    try:
        write_atomic(path.with_name(path.name + ".reason"), decision.reason + "\n")
        write_atomic(path, decision.word + "\n")
    except OSError as err:
        return (f"cannot write the decision to {path} ({err.strerror or err}); check that its folder exists and "
                "is writable (in the generated CronJob it is the greenops-decision emptyDir)")
    return None


def cmd_gate(args: argparse.Namespace) -> int:
    from controller.gate.config import GateConfigError
    from controller.redact import scrub
    from controller.telemetry.assemble import open_sources
    from controller.telemetry.mlflow_store import default_tracking_uri

    try:
        config = _load(args)
    except GateConfigError as err:
        print(scrub(f"greenops gate: cannot decide: {err}"), file=sys.stderr)
        return EXIT_CANNOT_DECIDE
    now = args.as_of or datetime.now(UTC)
    sources = open_sources(args.mlflow_uri or default_tracking_uri(args.state_dir),
                           args.prometheus_url or os.environ.get("PROMETHEUS_URL") or None)
    decision = _decide(config, sources, now)
    problem = _write_decision(args.decision_file, decision) if args.decision_file else None
    if problem:  # nothing recorded: the decision never reached the job
        print(scrub(f"greenops gate: cannot decide: {problem}"), file=sys.stderr)
        return EXIT_CANNOT_DECIDE
    warning = _record(config, sources, decision) if args.record else None
    log.info("gate decision", extra={"policy": config.policy.name, "decision": decision.word, "by": decision.by,
                                     "reason": decision.reason})
    if args.output == "json":
        print(scrub(json.dumps({"policy": config.policy.name, "decision": decision.word, "by": decision.by,
                                "reason": decision.reason, "at": decision.at.isoformat(),
                                "serving_age_days": decision.serving_age_days, "value": decision.value,
                                "price": decision.price, "budget_debt": decision.debt, "config": config.source,
                                "recorded": args.record and warning is None}, indent=2)))
    else:
        print(scrub(f"{config.policy.name}: {decision.word} ({decision.by}): {decision.reason}"))
    if warning:
        print(scrub(f"greenops gate: warning: {warning}"), file=sys.stderr)
    return EXIT_RETRAIN if decision.retrain or args.exit_zero else EXIT_SKIP
