"""The `greenops` command line. Each command is one function returning an exit code.

Exit codes: 0 ok, 1 user error (invalid policy, stalled or failed policy), 2 usage, 3 internal error;
`greenops gate` exits 4 for "skip this fire".
Heavy libraries (MLflow, Optuna, scikit-learn) are imported inside the commands that need them,
so `greenops validate` stays fast enough for a pre-commit hook.
"""

import argparse
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from controller import __version__
from controller.backtest.arguments import add_backtest_parser
from controller.errors import BrokenInstallError
from controller.gate.command import add_gate_parser
from controller.redact import register_environment_secrets, scrub
from controller.state import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from controller.gitops.forge import MergeRequest
    from controller.gitops.localforge import LocalForge
    from controller.policy.model import Policy
    from controller.reconcile import Outcome, Settings

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 3  # greenops gate adds 4: skip


def cmd_validate(args: argparse.Namespace) -> int:
    from controller.policy.validate import validate_paths

    result = validate_paths(args.paths or [Path("policies")])
    if args.output == "json":
        print(json.dumps({"valid": result.ok, "files": result.files,
                          "policies": [p.name for p in result.policies],
                          "problems": [p.as_json() for p in result.problems]}, indent=2))
    else:
        for problem in result.problems:
            print(problem.render())
        files = f"{result.files} file{'s' if result.files != 1 else ''}"
        summary = f"{files}, {len(result.policies)} valid polic{'ies' if len(result.policies) != 1 else 'y'}"
        print(f"{summary}, {len(result.problems)} problem(s)" if result.problems else f"ok: {summary}",
              file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_USER


def _settings(args: argparse.Namespace) -> "Settings":
    from controller.gitops.forge import ForgeSettings
    from controller.reconcile import Settings
    from controller.telemetry.mlflow_store import default_tracking_uri

    forge = ForgeSettings(args.forge, args.forge_url, args.forge_project, args.forge_token_file,
                          tuple(args.mr_label or ("greenops",)))
    return Settings(repo_url=args.repo, state_dir=args.state_dir,
                    mlflow_uri=args.mlflow_uri or default_tracking_uri(args.state_dir),
                    target_branch=args.target_branch, policies_dir=args.policies_dir,
                    seed=args.seed, trials=args.trials, only=tuple(args.policy or ()),
                    prometheus_url=args.prometheus_url or os.environ.get("PROMETHEUS_URL") or None,
                    now=args.as_of, optuna_storage=args.optuna_storage, forge=forge,
                    max_mrs_per_run=args.max_mrs_per_run)


def print_outcomes(outcomes: "Sequence[Outcome]", show_diff: bool) -> int:
    """Human report of a pass; exit 1 if a policy did not end ok, 3 if greenops hit a bug."""
    shown: set[str] = set()
    for outcome in outcomes:
        print(scrub(f"{outcome.policy}: {outcome.status}: {outcome.message}"))
        branch = outcome.proposal.branch if outcome.proposal else ""
        if outcome.title and outcome.body and branch not in shown:
            shown.add(branch)
            print(f"\n--- merge request ({branch}) ---")
            print(f"Title: {outcome.title}\n\n{outcome.body}")
            if show_diff and outcome.proposal and outcome.proposal.diff:
                print(f"\n--- diff ---\n{outcome.proposal.diff}")
            print("--- end of merge request ---\n")
    return exit_code(outcomes)


def exit_code(outcomes: "Sequence[Outcome]") -> int:
    if any(o.status == "error" for o in outcomes):
        return EXIT_BUG
    return EXIT_OK if all(o.status == "ok" for o in outcomes) else EXIT_USER


def _outcomes_json(outcomes: "Sequence[Outcome]") -> str:
    return json.dumps([{"policy": o.policy, "status": o.status, "message": o.message, "title": o.title,
                        "branch": o.proposal.branch if o.proposal else None,
                        "proposal": o.proposal.status if o.proposal else None,
                        "proposed_schedule": o.decision.proposed.schedule if o.decision else None}
                       for o in outcomes], indent=2)


def _run_pass(args: argparse.Namespace, push: bool) -> int:
    from controller.reconcile import reconcile

    outcomes = reconcile(_settings(args), push=push)
    if args.output == "json":
        print(scrub(_outcomes_json(outcomes)))
        return exit_code(outcomes)
    return print_outcomes(outcomes, show_diff=not push)


def cmd_reconcile(args: argparse.Namespace) -> int:
    return _run_pass(args, push=True)


def cmd_plan(args: argparse.Namespace) -> int:
    return _run_pass(args, push=False)


def _retry(forge: "LocalForge", request: "MergeRequest") -> int:
    """Ask again for a declined proposal, as the ``greenops:retry`` label does on GitLab and GitHub."""
    if request.state != "closed":
        print(f"greenops mr: {request.branch} {request.number} is {request.state}, not closed: only a declined "
              "proposal can be retried (greenops updates an open one whenever its proposal changes)", file=sys.stderr)
        return EXIT_USER
    forge.retry(request)
    print(f"labelled {request.branch} {request.number} greenops:retry: the next pass proposes the policy's current "
          "decision again, in a new merge request (if it still proposes a change)")
    return EXIT_OK


def cmd_mr(args: argparse.Namespace) -> int:
    """The local forge's merge requests: list, show one, close one (decline the proposal), or retry a declined one."""
    from controller.errors import StalledError
    from controller.gitops.forge import branch_for
    from controller.gitops.localforge import LocalForge, record_name

    forge = LocalForge(args.state_dir)
    try:
        if args.mr_command == "list":
            requests = forge.all()
            for request in requests:
                print(f"{record_name(request.branch):32} {request.state:7} {request.number:>5}  {request.title}")
            if not requests:
                print(f"no merge requests in {forge.folder}", file=sys.stderr)
            return EXIT_OK
        found = forge.find(branch_for(record_name(args.name)))
    except StalledError as err:
        print(f"greenops mr: {err}", file=sys.stderr)
        return EXIT_USER
    if found is None:
        print(f"greenops mr: no merge request {args.name!r} in {forge.folder}; `greenops mr list` shows them",
              file=sys.stderr)
        return EXIT_USER
    if args.mr_command == "show":
        print(forge.show(args.name) or "", end="")
    elif args.mr_command == "retry":
        return _retry(forge, found)
    elif found.state != "open":
        print(f"{found.branch} {found.number} is already {found.state}")
    else:
        forge.mark(found, "closed")
        print(f"closed {found.branch} {found.number}: the proposal is declined; greenops proposes again only a "
              f"materially different decision, or after `greenops mr retry {record_name(found.branch)}`")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from controller.runtime.service import RunSettings, run

    host, port = args.listen
    return run(RunSettings(_settings(args), args.interval, args.jitter, args.retry_after, host, port))


def _duration(text: str) -> "timedelta":
    from controller.policy.durations import DurationError, parse_duration

    try:
        return parse_duration(text)
    except DurationError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT, e.g. 0.0.0.0:8080 or 127.0.0.1:0")
    return host or "0.0.0.0", int(port)


def config_arguments(path: Path, allowed: set[str], given: list[str]) -> list[str]:
    """A YAML mapping of `greenops run` options (``interval: 30m``, ``mr-label: [a, b]``) as arguments.

    Options also given on the command line are left out (flags win, lists included); ``null`` means unset.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise SystemExit(f"greenops run: cannot read the config file {path}: {err}") from err
    if not isinstance(data, dict):
        raise SystemExit(f"greenops run: {path} must be a mapping of option: value, e.g. `interval: 30m`")
    on_command_line = {argument.split("=", 1)[0] for argument in given if argument.startswith("--")}
    arguments: list[str] = []
    for key, value in data.items():
        option = f"--{key}"
        if option not in allowed:
            raise SystemExit(f"greenops run: {path}: unknown setting {key!r}; allowed: "
                             f"{', '.join(sorted(o[2:] for o in allowed))}")
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, bool | dict | list) for item in items):
            raise SystemExit(f"greenops run: {path}: {key} must be a string or a number (or a list of them)")
        if value is not None and option not in on_command_line:
            arguments += [part for item in items if item is not None for part in (option, str(item))]
    return arguments
def _command_index(arguments: list[str]) -> int | None:
    """Where the command name is: after the global options (``--log-level X`` and ``--log-format X``)."""
    index = 0
    while index < len(arguments) and arguments[index].startswith("-"):
        index += 1 if "=" in arguments[index] or arguments[index] in ("-h", "--help", "--version") else 2
    return index if index < len(arguments) else None


def _config_path(arguments: list[str]) -> Path | None:
    for index, argument in enumerate(arguments):
        if argument == "--config" and index + 1 < len(arguments):
            return Path(arguments[index + 1])
        if argument.startswith("--config="):
            return Path(argument.split("=", 1)[1])
    return Path(os.environ["GREENOPS_CONFIG"]) if os.environ.get("GREENOPS_CONFIG") else None


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; for `greenops run` a config file's settings go first, so flags on the command line win."""
    given = list(argv if argv is not None else sys.argv[1:])
    at = _command_index(given)
    config = _config_path(given[at + 1:]) if at is not None and given[at] == "run" else None
    if at is not None and config is not None:
        given = [*given[:at + 1], *config_arguments(config, RUN_OPTIONS, given[at + 1:]), *given[at + 1:]]
    return parser.parse_args(given)


RUN_OPTIONS: set[str] = set()


def cmd_schema_reference(args: argparse.Namespace) -> int:
    from controller.policy.reference import policy_reference

    print(policy_reference(), end="")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from controller.demo.run import run_demo

    return run_demo(args.policies, args.state_dir, seed=args.seed, trials=args.trials)


def cmd_backtest(args: argparse.Namespace) -> int:
    from controller.backtest.command import BacktestArgs, check_output_dir, run_backtest, write_outputs
    from controller.backtest.data import InputError

    options = BacktestArgs(**{name: getattr(args, name) for name in BacktestArgs.__dataclass_fields__})
    try:
        check_output_dir(options.output_dir)
        results = run_backtest(options)
        written, text = write_outputs(results, options.output_dir)
    except InputError as err:
        print(f"greenops backtest: {err}", file=sys.stderr)
        return EXIT_USER
    print(text)
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return EXIT_OK


DEFAULT_COUNTRY = "USA"
POLICY_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # metadata.name, as the schema has it


def _track_usage_problem(command: list[str], policy: str | None) -> str | None:
    if not command:
        return "give the command to run after --, e.g. greenops track --policy fraud-detector -- python train.py"
    if not policy:
        return "give --policy NAME (or set GREENOPS_POLICY): the policy whose training runs this command is"
    if not POLICY_NAME.match(policy):
        return f"--policy {policy!r} is not a policy name (lower-case letters, digits and '-'; metadata.name)"
    return None


def cmd_track(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    policy = args.policy or os.environ.get("GREENOPS_POLICY")
    from controller.track import TrackOptions, location_problem, run_tracked

    country = args.country_iso_code or os.environ.get("GREENOPS_COUNTRY_ISO_CODE")
    problem = _track_usage_problem(command, policy) or location_problem(country or DEFAULT_COUNTRY, args.region)
    if problem or not policy:
        print(f"greenops track: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if not country:
        print(f"greenops track: emissions_kg uses the {DEFAULT_COUNTRY} grid mix; set --country-iso-code or "
              "GREENOPS_COUNTRY_ISO_CODE for yours (energy_kwh does not depend on it)", file=sys.stderr)
    from controller.telemetry.mlflow_store import MlflowTelemetry, default_tracking_uri

    options = TrackOptions(tuple(command), policy, args.model_version or os.environ.get("GREENOPS_MODEL_VERSION"),
                           country or DEFAULT_COUNTRY, args.region, args.tracking_mode, args.experiment)
    return run_tracked(options, MlflowTelemetry(args.mlflow_uri or default_tracking_uri(args.state_dir), create=True))


def _policies_to_check(args: argparse.Namespace) -> "tuple[list[Policy], list[str], list[str]]":
    """(valid policies selected by name or path, problems with what was asked for, other files' problems).

    Paths are local, or inside --repo when one is given; anything that is not a path is a policy name.
    """
    from controller.policy.validate import validate_paths

    root = Path.cwd()
    if args.repo:
        from controller.gitops.workspace import Workspace

        root = Workspace.open(args.repo, args.state_dir).root
    paths = [root / item for item in args.policies if (root / item).exists()]
    names = [item for item in args.policies if not (root / item).exists()]
    result = validate_paths(paths or [root / args.policies_dir], relative_to=root)
    known = {p.name for p in result.policies}
    missing = [f"{name}: no such policy file, folder or valid policy name" for name in names if name not in known]
    problems = [p.render() for p in result.problems]
    selected = [p for p in result.policies if not names or p.name in names]
    return selected, missing + (problems if not names else []), problems if names else []


def cmd_telemetry_check(args: argparse.Namespace) -> int:
    from controller.errors import StalledError, TransientError
    from controller.telemetry.assemble import open_sources
    from controller.telemetry.mlflow_store import default_tracking_uri
    from controller.telemetry_check import check_policies, render_json, render_text

    try:
        policies, problems, unrelated = _policies_to_check(args)
    except (StalledError, TransientError) as err:
        print(scrub(f"greenops telemetry check: {err}"), file=sys.stderr)
        return EXIT_USER
    for problem in problems + unrelated:
        print(problem, file=sys.stderr)
    sources = open_sources(args.mlflow_uri or default_tracking_uri(args.state_dir),
                           args.prometheus_url or os.environ.get("PROMETHEUS_URL") or None)
    checks = check_policies(policies, sources, args.as_of or datetime.now(UTC))
    # Server error texts end up in the report, and a server may echo the credentials it was sent.
    print(scrub(render_json(checks) if args.output == "json" else render_text(checks)))
    if any(c.error for c in checks):
        return EXIT_BUG
    return EXIT_OK if checks and not problems and all(c.enough for c in checks) else EXIT_USER


def _add_pass_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=not os.environ.get("GREENOPS_REPO"), metavar="URL_OR_PATH",
                        default=os.environ.get("GREENOPS_REPO"), help="GitOps repository to read policies from and "
                        "push proposals to (any git URL or path; env GREENOPS_REPO)")
    parser.add_argument("--target-branch", help="branch merge requests target (default: the remote's HEAD)")
    parser.add_argument("--policies-dir", default="policies", help="policy folder inside the repository")
    parser.add_argument("--policy", action="append", metavar="NAME", help="only this policy and the rest of its "
                        "proposal group (repeatable); a name that is no valid policy is an error (plan and reconcile "
                        "then reconcile nothing; run logs it at every reload of the policies)")
    _add_forge_options(parser)
    _add_telemetry_options(parser)


def _add_forge_options(parser: argparse.ArgumentParser) -> None:
    forge = parser.add_argument_group("merge requests")
    forge.add_argument("--forge", choices=("local", "gitlab", "github"), default=os.environ.get("GREENOPS_FORGE",
                       "local"), help="where merge requests live: local (records in the state directory; `greenops "
                       "mr list`), gitlab (push options, plus the REST API with a token) or github (REST API, needs "
                       "a token) (default: $GREENOPS_FORGE, else local)")
    forge.add_argument("--forge-url", default=os.environ.get("GREENOPS_FORGE_URL"), metavar="URL",
                       help="API base, e.g. https://gitlab.example.com or https://github.example.com/api/v3 "
                       "(default: gitlab.com / api.github.com; env GREENOPS_FORGE_URL)")
    forge.add_argument("--forge-project", default=os.environ.get("GREENOPS_FORGE_PROJECT"), metavar="PATH",
                       help="GitLab project path or GitHub owner/name (default: from --repo; env "
                       "GREENOPS_FORGE_PROJECT)")
    forge.add_argument("--forge-token-file", type=Path, metavar="FILE",
                       help="file holding the forge token (default: $GREENOPS_FORGE_TOKEN, else $GITLAB_TOKEN or "
                       "$GITHUB_TOKEN); never put tokens in the policy repository")
    forge.add_argument("--max-mrs-per-run", type=_bounded_int(0, 10_000), metavar="N",
                       help="open at most N new merge requests per pass; updates of open ones always go through "
                       "(default: no limit)")
    forge.add_argument("--mr-label", action="append", metavar="LABEL",
                       help="label for the merge requests (repeatable; default greenops)")


def _add_telemetry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mlflow-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, "
                        "else sqlite:///<state-dir>/mlflow.db; auth: MLFLOW_TRACKING_TOKEN or "
                        "MLFLOW_TRACKING_USERNAME/PASSWORD)")
    parser.add_argument("--prometheus-url", help="Prometheus for policies that read telemetry from it (default: "
                        "$PROMETHEUS_URL; auth: PROMETHEUS_BEARER_TOKEN or PROMETHEUS_USERNAME/PASSWORD)")
    parser.add_argument("--output", choices=("text", "json"), default="text", help="report format")
    parser.add_argument("--as-of", type=_timestamp, metavar="ISO-8601",
                        help="decide as of this moment instead of now (reproduce an earlier decision)")


def _timestamp(text: str) -> datetime:
    """An ISO-8601 moment; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time such as 2026-03-01T00:00Z") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _add_state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="where greenops keeps clones, merge-request records and the default MLflow store "
                        "(default: .greenops)")


def _add_tuning_options(parser: argparse.ArgumentParser) -> None:
    _add_state_dir_option(parser)
    parser.add_argument("--seed", type=_bounded_int(0, 2**32 - 1), default=42,
                        help="random seed: same inputs, same decision (default 42)")
    parser.add_argument("--trials", type=_bounded_int(1, 10_000), default=80,
                        help="Optuna trials per policy; a space smaller than this is searched exhaustively "
                        "(default 80)")
    parser.add_argument("--optuna-storage", metavar="URL", default=os.environ.get("GREENOPS_OPTUNA_STORAGE"),
                        help="where Optuna studies are kept and warm-started from, e.g. "
                        "postgresql://user@host/db (default: sqlite file optuna.db in the state directory; "
                        "env GREENOPS_OPTUNA_STORAGE)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="greenops", allow_abbrev=False, description="GitOps policy-as-code controller for Green MLOps: tunes "
        "retraining schedules so energy and carbon go down while accuracy SLOs hold.")
    parser.add_argument("--version", action="version", version=f"greenops {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("GREENOPS_LOG_LEVEL", "WARNING"),
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log verbosity (default WARNING; env "
                        "GREENOPS_LOG_LEVEL)")
    parser.add_argument("--log-format", default=os.environ.get("GREENOPS_LOG_FORMAT", "text"),
                        choices=("text", "json"), help="log lines as text or JSON lines, with the policy on every "
                        "line (default text; env GREENOPS_LOG_FORMAT)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check policy files against the schema and rules",
                                   description="Report every problem in every policy file as "
                                   "file:line:column: json-pointer: message. Exit 0 when all are valid.")
    validate.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                          help="policy files or folders (default: policies/)")
    validate.add_argument("--output", choices=("text", "json"), default="text", help="report format")
    validate.set_defaults(func=cmd_validate)

    for name, func, text in (
        ("reconcile", cmd_reconcile, "one pass over all policies: tune, commit, push merge requests"),
        ("plan", cmd_plan, "like reconcile, but only show the merge requests and diffs it would push"),
    ):
        sub = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        _add_pass_options(sub)
        _add_tuning_options(sub)
        sub.set_defaults(func=func)

    track = commands.add_parser(
        "track", help="run a training command and record its energy in MLflow (CodeCarbon, offline)",
        description="Run COMMAND, measure its energy with CodeCarbon's offline tracker (no network), and log "
        "energy_kwh, duration_s and emissions_kg to an MLflow run tagged greenops.policy=<policy> and "
        "greenops.kind=training: the first run COMMAND starts with mlflow.start_run() (in any experiment; "
        "MLFLOW_RUN_CONTEXT gives it the tags), or a new run in --experiment if it starts none. COMMAND's output "
        "and exit code pass through (126/127 when it cannot be run, 128+N when signal N killed it); the run ends "
        "FINISHED, FAILED or KILLED. SIGTERM is forwarded to COMMAND. If MLflow is unreachable the command still "
        "runs, with a warning on stderr.")
    track.add_argument("--policy", help="policy the run belongs to (default: $GREENOPS_POLICY, which generated "
                       "CronJobs set)")
    track.add_argument("--model-version", help="version of the model this run produces (default: "
                       "$GREENOPS_MODEL_VERSION, else the run id)")
    track.add_argument("--mlflow-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                       "sqlite:///<state-dir>/mlflow.db)")
    track.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default store location")
    track.add_argument("--experiment", default="greenops", help="MLflow experiment for a run greenops creates, and "
                       "COMMAND's default (MLFLOW_EXPERIMENT_NAME) unless already set (default greenops)")
    track.add_argument("--country-iso-code", help="ISO 3166 alpha-3 country whose grid mix gives emissions_kg "
                       "(default: $GREENOPS_COUNTRY_ISO_CODE, else USA with a note); energy_kwh does not depend on "
                       "it")
    track.add_argument("--region", default=os.environ.get("GREENOPS_REGION"),
                       help="region within the country, e.g. a US state or Canadian province")
    track.add_argument("--tracking-mode", choices=("machine", "process"), default="machine",
                       help="machine: the whole machine's power (default, right for a dedicated job pod); "
                       "process: only this process tree's share")
    track.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    track.set_defaults(func=cmd_track)

    telemetry = commands.add_parser("telemetry", help="inspect the telemetry greenops reads",
                                    description="Inspect the telemetry greenops reads for each policy.")
    telemetry_commands = telemetry.add_subparsers(dest="telemetry_command", required=True, metavar="SUBCOMMAND")
    check = telemetry_commands.add_parser(
        "check", help="show, per policy and signal, the query, what it finds and whether that is enough to decide",
        description="For each policy and signal (quality, energy, carbon intensity): the source and query, the "
        "series found, number of points, time range, missing evaluation windows and largest gap, age of the "
        "newest sample, and whether that is enough to decide (the same readers and cost model as a reconcile). "
        "Exit 0 when every checked policy has enough, 1 otherwise.")
    check.add_argument("policies", nargs="*", metavar="POLICY",
                       help="policy names, files or folders (default: every policy in --policies-dir)")
    check.add_argument("--repo", metavar="URL_OR_PATH", help="read the policies from this GitOps repository "
                       "(default: local files)")
    check.add_argument("--policies-dir", default="policies", help="policy folder (inside --repo when given)")
    _add_telemetry_options(check)
    _add_state_dir_option(check)
    check.set_defaults(func=cmd_telemetry_check)

    run = commands.add_parser(
        "run", help="the long-running controller: reconcile every policy on an interval; /metrics, /healthz, /readyz",
        description="Reconcile every policy of --repo on an interval (one job per policy or proposal group, with "
        "jitter; passes never overlap; after a transient failure the next pass comes sooner, backing off up to the "
        "interval). The policy set is reloaded from Git every interval. Serves /metrics (Prometheus), /healthz and "
        "/readyz (ready once every policy had a first pass). SIGTERM lets the running pass finish, then exits 0. "
        "Every option below can also come from --config FILE (YAML, `option: value`) or, where noted, from the "
        "environment; flags win over the file, the file over the environment; --log-level and --log-format go "
        "before `run` or in GREENOPS_LOG_LEVEL/FORMAT.",
        allow_abbrev=False)
    _add_pass_options(run)
    _add_tuning_options(run)
    service = run.add_argument_group("service")
    service.add_argument("--interval", type=_duration, default=os.environ.get("GREENOPS_INTERVAL", "1h"),
                         help="time between two passes of a policy (default 1h; env GREENOPS_INTERVAL)")
    service.add_argument("--jitter", type=_duration, default=os.environ.get("GREENOPS_JITTER", "5m"),
                         help="random delay added to each pass, so policies do not all run at once (default 5m)")
    service.add_argument("--retry-after", type=_duration, default=os.environ.get("GREENOPS_RETRY_AFTER", "1m"),
                         help="first retry after a transient failure; doubles on each failure in a row, up to "
                         "--interval (default 1m)")
    service.add_argument("--listen", type=_listen, default=os.environ.get("GREENOPS_LISTEN", "0.0.0.0:8080"),
                         metavar="HOST:PORT", help="address of /metrics, /healthz and /readyz (default 0.0.0.0:8080; "
                         "env GREENOPS_LISTEN)")
    service.add_argument("--config", type=Path, metavar="FILE",
                         help="YAML file of settings, e.g. `repo: https://...`, `interval: 30m` (env GREENOPS_CONFIG)")
    run.set_defaults(func=cmd_run)
    RUN_OPTIONS.update(option for action in run._actions for option in action.option_strings
                       if option.startswith("--") and action.dest not in ("help", "config"))

    schema = commands.add_parser("schema", help="the RetrainingPolicy schema, for people",
                                 description="Documentation generated from the RetrainingPolicy JSON Schema.")
    schema_commands = schema.add_subparsers(dest="schema_command", required=True, metavar="SUBCOMMAND")
    reference = schema_commands.add_parser("reference", help="print the policy reference (Markdown) generated from "
                                           "the schema; docs/policy-reference.md is its output")
    reference.set_defaults(func=cmd_schema_reference)

    merge_requests = commands.add_parser(
        "mr", help="list, show, close or retry the merge requests of the local forge",
        description="The merge requests the local forge (--forge local, the default) keeps in "
        "<state-dir>/merge-requests/. Merge one by merging its branch into the target; close one to decline it; "
        "retry a declined one to have it proposed again.")
    mr_commands = merge_requests.add_subparsers(dest="mr_command", required=True, metavar="SUBCOMMAND")
    for name, text in (("list", "one line per merge request: name, state, number, title"),
                       ("show", "the title, body, notes and diff of merge request NAME"),
                       ("close", "close merge request NAME without merging: the proposal is declined"),
                       ("retry", "ask again for the declined (closed) merge request NAME: the next pass proposes "
                        "the policy's decision again, as the greenops:retry label does on GitLab and GitHub")):
        sub = mr_commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        if name != "list":
            sub.add_argument("name", metavar="NAME", help="policy name, group-<group>, or the branch greenops/...")
        _add_state_dir_option(sub)
        sub.set_defaults(func=cmd_mr)

    backtest = add_backtest_parser(commands, _bounded_int)
    backtest.set_defaults(func=cmd_backtest)
    add_gate_parser(commands, _add_telemetry_options, _add_state_dir_option)

    demo = commands.add_parser(
        "demo", help="build a demo GitOps repo and MLflow history, then reconcile it",
        description="Create <state-dir>/demo/ (a bare git remote holding the example policies and an MLflow "
        "store filled by really training models on a synthetic drifting stream), run one reconcile and show "
        "the merge requests. Delete <state-dir>/demo/ to start over.")
    demo.add_argument("--policies", type=Path, default=Path("policies"), help="example policies to use")
    _add_tuning_options(demo)
    demo.set_defaults(func=cmd_demo)
    return parser


def _bounded_int(low: int, high: int) -> "Callable[[str], int]":
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from err
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(build_parser(), argv)
    register_environment_secrets()
    from controller.runtime.logs import configure

    configure(args.log_level, args.log_format)
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print("greenops: interrupted", file=sys.stderr)
        return EXIT_USER
    except BrokenInstallError as err:
        print(f"greenops: {err}", file=sys.stderr)
        return EXIT_BUG
    except Exception as err:  # a bug: say so plainly, keep the traceback for whoever reports it
        print(scrub(f"greenops: internal error: {type(err).__name__}: {err}"), file=sys.stderr)
        if os.environ.get("GREENOPS_DEBUG"):
            print(scrub(traceback.format_exc()), file=sys.stderr)
        else:
            print("greenops: rerun with GREENOPS_DEBUG=1 to see the traceback and please report it",
                  file=sys.stderr)
        return EXIT_BUG
