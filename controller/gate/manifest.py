"""What a generated CronJob needs to run the gate: its ConfigMap, the init container and the hand-off.

The tuned rule reaches the cluster through Git like the schedule does: a ConfigMap ``<policy>-gate``
beside the CronJob holds ``gate.yaml`` (schedule, rule, decision digest) and ``policy.yaml`` (the
policy as validated). The CronJob's init container runs `greenops gate` from the greenops image
with that ConfigMap mounted; it writes ``retrain`` or ``skip`` to a shared emptyDir, and the
training container's command is wrapped in ``/bin/sh -c`` so a skip ends the pod successfully
without starting the training. The user's training image is not changed (it needs /bin/sh).
"""

from pathlib import PurePosixPath
from typing import Any

import yaml

from controller import __version__
from controller.decision import Forecast
from controller.policy.job import GATE_DECISION_DIR, GATE_VOLUMES
from controller.policy.model import Policy

CONFIG_DIR = "/etc/greenops/gate"
DECISION_DIR = GATE_DECISION_DIR
GATE_VOLUME, DECISION_VOLUME, TMP_VOLUME = GATE_VOLUMES
DECISION_FILE = f"{DECISION_DIR}/decision"
DEFAULT_IMAGE = f"ghcr.io/greenops/greenops:{__version__}"
GATE_CONFIG_KIND = "GateConfig"
# $0 names the wrapper in ps and errors; "$@" is the job's own command and arguments, untouched.
SKIP_OR_RUN = (f'if [ "$(cat {DECISION_FILE} 2>/dev/null)" = skip ]; then '
               'echo "greenops gate: no retrain at this fire (the gate container\'s log says why)"; exit 0; fi; '
               'exec "$@"')


def gate_config_path(policy: Policy, generated_dir: PurePosixPath) -> PurePosixPath:
    return generated_dir / policy.namespace / policy.name / f"{policy.name}.gate.yaml"


def gate_document(policy: Policy, proposed: Forecast, digest: str) -> dict[str, Any]:
    """``gate.yaml``: what `greenops gate` runs with (read back by reconcile as today's rule)."""
    rule = proposed.rule
    return {"apiVersion": "greenops.dev/v1alpha1", "kind": GATE_CONFIG_KIND, "policy": policy.name,
            "schedule": proposed.schedule, "timeZone": policy.time_zone,
            "rule": {"threshold": rule.threshold, "budgetGain": rule.budget_gain, "objective": rule.objective},
            "decision": digest}


def gate_configmap(policy: Policy, proposed: Forecast, digest: str, labels: dict[str, str]) -> dict[str, Any]:
    gate = yaml.safe_dump(gate_document(policy, proposed, digest), sort_keys=False)
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{policy.name}-gate", "namespace": policy.namespace, "labels": labels,
                         "annotations": {"greenops.dev/policy-file": policy.source_file}},
            "data": {"gate.yaml": gate, "policy.yaml": policy.document_yaml}}


def gate_init_container(policy: Policy) -> dict[str, Any]:
    """`greenops gate` with the rule mounted; telemetry endpoints and credentials from the optional Secret."""
    return {
        "name": "gate",
        "image": policy.gate.image or DEFAULT_IMAGE,
        "command": ["greenops", "gate", "--config", CONFIG_DIR, "--decision-file", DECISION_FILE, "--exit-zero"],
        "envFrom": [{"secretRef": {"name": policy.gate.telemetry_secret, "optional": True}}],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": GATE_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": DECISION_VOLUME, "mountPath": DECISION_DIR},
                         {"name": TMP_VOLUME, "mountPath": "/tmp"}],
    }


def gated_pod(policy: Policy, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """``pod_spec`` with the gate in front: init container, volumes, and the training command wrapped.

    The policy's own volumes and mounts stay, ahead of the gate's (validation keeps their names and paths
    apart from the gate's).
    """
    container = dict(pod_spec["containers"][0])
    command = [*container.pop("command", []), *container.pop("args", [])]
    container["command"] = ["/bin/sh", "-c", SKIP_OR_RUN, "greenops-gated-job", *command]
    container["volumeMounts"] = [*container.get("volumeMounts", []),
                                 {"name": DECISION_VOLUME, "mountPath": DECISION_DIR, "readOnly": True}]
    rest = {key: value for key, value in pod_spec.items() if key != "volumes"}
    volumes = [*pod_spec.get("volumes", []),
               {"name": GATE_VOLUME, "configMap": {"name": f"{policy.name}-gate"}},
               {"name": DECISION_VOLUME, "emptyDir": {}},
               {"name": TMP_VOLUME, "emptyDir": {}}]
    return {**rest, "initContainers": [gate_init_container(policy)], "containers": [container], "volumes": volumes}
