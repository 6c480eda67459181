"""What `greenops gate` runs with: the policy, the schedule and the tuned rule, read back from Git.

Two forms, one content. In a generated CronJob the ConfigMap ``<policy>-gate`` is mounted as a folder
holding ``gate.yaml`` and ``policy.yaml``; in a pipeline the same ConfigMap is read from the GitOps
checkout (``manifests/generated/<namespace>/<policy>/<policy>.gate.yaml``), or a policy is named and the
ConfigMap found beside its CronJob. Every problem names the file and what to do.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from controller import schedule
from controller.confine import symlink_on_the_way
from controller.errors import StalledError
from controller.gate.manifest import GATE_CONFIG_KIND, gate_config_path
from controller.policy.model import Policy
from controller.policy.validate import validate_paths
from controller.rule import PLAIN_CRON, RuleParams

GATE_FILE, POLICY_FILE = "gate.yaml", "policy.yaml"


class GateConfigError(StalledError):
    """The gate's configuration cannot be used: the user must fix a file or an argument."""


@dataclass(frozen=True)
class GateConfig:
    policy: Policy
    schedule: str  # the cron the gate is fired by: its next fire bounds what waiting costs
    rule: RuleParams
    decision: str | None  # digest of the merged decision, for the record
    source: str


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise GateConfigError(f"{path}: not UTF-8 text (byte {err.start}); regenerate it with greenops reconcile") \
            from err
    except OSError as err:
        raise GateConfigError(f"{path}: cannot be read ({err.strerror or err}); check its permissions") from err


def _yaml(text: str, shown: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise GateConfigError(f"{shown}: not valid YAML ({err}); regenerate it with greenops reconcile") from err


def rule_from(data: Any, shown: str) -> tuple[str, RuleParams, str | None, str]:
    """(schedule, rule, decision, policy name) of a ``gate.yaml`` document."""
    if not isinstance(data, dict) or data.get("kind") != GATE_CONFIG_KIND:
        raise GateConfigError(f"{shown}: not a greenops {GATE_CONFIG_KIND} (kind: {GATE_CONFIG_KIND} expected)")
    rule = data.get("rule")
    threshold = rule.get("threshold") if isinstance(rule, dict) else None
    gain = rule.get("budgetGain", 1.0) if isinstance(rule, dict) else 1.0
    objective = rule.get("objective", "slo") if isinstance(rule, dict) else "slo"
    bad_threshold = threshold is not None and (not isinstance(threshold, int | float) or threshold < 0)
    if not isinstance(rule, dict) or bad_threshold or not isinstance(gain, int | float) \
            or objective not in ("slo", "cost"):
        raise GateConfigError(f"{shown}: rule must be {{threshold: number >= 0 or null, budgetGain: number, "
                              "objective: slo|cost}; regenerate it with greenops reconcile")
    expression, name = data.get("schedule"), data.get("policy")
    if not isinstance(expression, str) or not isinstance(name, str):
        raise GateConfigError(f"{shown}: schedule and policy must be strings")
    try:
        expression = schedule.normalise(expression)
    except schedule.CronError as err:
        raise GateConfigError(f"{shown}: schedule: {err}") from err
    params = RuleParams(None if threshold is None else float(threshold), float(gain), objective)
    decision = data.get("decision")
    return expression, params, decision if isinstance(decision, str) else None, name


def _policy_from_text(text: str, shown: str) -> Policy:
    with tempfile.TemporaryDirectory(prefix="greenops-gate-") as folder:
        path = Path(folder) / POLICY_FILE
        path.write_text(text, encoding="utf-8")
        return _only_policy(path, shown)


def _only_policy(path: Path, shown: str, mounted: bool = False) -> Policy:
    """The one policy of ``path``; a ConfigMap ``mounted`` by the kubelet is made of symbolic links."""
    result = validate_paths([path], follow_symlinks=mounted)
    if result.problems or len(result.policies) != 1:
        details = "; ".join(p.render().replace(str(path), shown) for p in result.problems) or "no policy in it"
        raise GateConfigError(f"{shown}: the policy is not valid ({details}); fix the policy and reconcile")
    return result.policies[0]


def _config(policy: Policy, gate_text: str, shown: str) -> GateConfig:
    expression, rule, decision, name = rule_from(_yaml(gate_text, shown), shown)
    if name != policy.name:
        raise GateConfigError(f"{shown}: the rule is for policy {name!r}, the policy beside it is {policy.name!r}")
    return GateConfig(policy, expression, rule, decision, shown)


def load_gate_config(path: Path) -> GateConfig:
    """From a mounted folder (gate.yaml + policy.yaml) or a generated ConfigMap file."""
    if path.is_dir():
        gate, policy = path / GATE_FILE, path / POLICY_FILE
        for needed in (gate, policy):
            if not needed.is_file():
                raise GateConfigError(f"{needed}: missing; mount the ConfigMap <policy>-gate that greenops generates")
        return _config(_only_policy(policy, str(policy), mounted=True), _read(gate), str(gate))
    if not path.is_file():
        raise GateConfigError(f"{path}: no such file or folder; pass the gate ConfigMap file or its mounted folder")
    manifest = _yaml(_read(path), str(path))
    data = manifest.get("data") if isinstance(manifest, dict) and manifest.get("kind") == "ConfigMap" else None
    if not isinstance(data, dict) or not isinstance(data.get(GATE_FILE), str) \
            or not isinstance(data.get(POLICY_FILE), str):
        raise GateConfigError(f"{path}: not a gate ConfigMap (data.{GATE_FILE} and data.{POLICY_FILE} expected)")
    return _config(_policy_from_text(data[POLICY_FILE], f"{path}:data.{POLICY_FILE}"), data[GATE_FILE],
                   f"{path}:data.{GATE_FILE}")


def config_for_policy(name: str, policies_dir: Path, root: Path, generated_dir: PurePosixPath) -> GateConfig:
    """The policy ``name`` from ``policies_dir`` and its merged rule from the generated ConfigMap under
    ``root``; without one yet, its current schedule as a plain cron."""
    result = validate_paths([policies_dir])
    policy = next((p for p in result.policies if p.name == name), None)
    if policy is None:
        problems = "; ".join(p.render() for p in result.problems)
        found = f" ({problems})" if problems else ""
        raise GateConfigError(f"no valid policy named {name} in {policies_dir}{found}")
    generated = root / gate_config_path(policy, generated_dir)
    if not generated.is_file():
        return GateConfig(policy, schedule.normalise(policy.current_schedule), PLAIN_CRON, None,
                          f"{policy.source_file} (no merged rule yet at {generated})")
    loaded = load_gate_config(generated)
    return GateConfig(policy, loaded.schedule, loaded.rule, loaded.decision, str(generated))


def merged_rule(root: Path, policy: Policy, generated_dir: PurePosixPath) -> RuleParams:
    """Today's rule for reconcile: the one the target branch's gate ConfigMap holds for the current schedule;
    a plain cron when there is none, it cannot be read, or it was tuned for another schedule."""
    path = root / gate_config_path(policy, generated_dir)
    if symlink_on_the_way(root, path) is not None or not path.is_file():  # a link may read outside the clone
        return PLAIN_CRON
    try:
        manifest = _yaml(_read(path), str(path))
        expression, rule, _, name = rule_from(yaml.safe_load(manifest["data"][GATE_FILE]), str(path))
    except (GateConfigError, KeyError, TypeError, yaml.YAMLError):
        return PLAIN_CRON
    same = name == policy.name and expression == schedule.normalise(policy.current_schedule)
    return rule if same else PLAIN_CRON
