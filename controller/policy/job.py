"""spec.job as the generated CronJob needs it: the training container and the pod around it.

The Kubernetes fields (env, volumes, tolerations, ...) were checked against Kubernetes' own schema and
are copied into the pod template as written. They are kept as canonical JSON text so that ``Job`` (and so
``Policy``) stays frozen and hashable however deep the user's manifest goes.
"""

import json
from dataclasses import dataclass, field
from typing import Any

# Set by greenops from the decision (controller.render.job_env): the policy's env must not set them.
RESERVED_ENV = frozenset({"GREENOPS_POLICY", "GREENOPS_PROMOTION_MIN_GAIN", "GREENOPS_TRAINING_WINDOW"})
# What the gate adds to the pod (controller.gate.manifest): the policy's volumes and mounts must stay clear of it.
GATE_VOLUMES = ("greenops-gate", "greenops-decision", "greenops-tmp")
GATE_DECISION_DIR = "/var/run/greenops"  # mounted into the training container too
# spec.job keys copied into the training container as they are (env is normalised first)
CONTAINER_FIELDS = ("imagePullPolicy", "workingDir", "env", "envFrom", "volumeMounts", "securityContext")
# spec.job key -> the PodSpec key it becomes (podSecurityContext: the PodSpec's securityContext)
POD_FIELDS = {"serviceAccountName": "serviceAccountName", "imagePullSecrets": "imagePullSecrets",
              "priorityClassName": "priorityClassName", "runtimeClassName": "runtimeClassName",
              "nodeSelector": "nodeSelector", "affinity": "affinity", "tolerations": "tolerations",
              "podSecurityContext": "securityContext", "volumes": "volumes"}


@dataclass(frozen=True)
class Fields:
    """Kubernetes fields as canonical JSON; ``as_dict`` gives a fresh copy each time (callers may edit it)."""

    text: str = "{}"

    @classmethod
    def of(cls, data: dict[str, Any]) -> "Fields":
        return cls(json.dumps(data, separators=(",", ":"), ensure_ascii=False))

    def as_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.text)
        return value


@dataclass(frozen=True)
class Job:
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    requests: tuple[tuple[str, str], ...]
    limits: tuple[tuple[str, str], ...]
    container: Fields = field(default_factory=Fields)  # keyed as in a Container; env as an EnvVar list
    pod: Fields = field(default_factory=Fields)  # keyed as in a PodSpec


def env_vars(env: list[Any] | dict[str, Any]) -> list[Any]:
    """Either form of spec.job.env as a Kubernetes EnvVar list (the short form sorted by name, as before)."""
    if isinstance(env, dict):
        return [{"name": str(name), "value": str(value)} for name, value in sorted(env.items())]
    return list(env)


def string_pairs(mapping: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """A mapping as sorted (key, value) text pairs: hashable, and in one order whatever the file's."""
    return tuple(sorted((str(k), str(v)) for k, v in (mapping or {}).items()))


def job_from_data(job: dict[str, Any]) -> Job:
    """The Job of a spec.job that already passed validation."""
    resources = job.get("resources", {})
    container = {key: job[key] for key in CONTAINER_FIELDS if key in job}
    if "env" in container:
        container["env"] = env_vars(container["env"])
    return Job(image=job["image"], command=tuple(job.get("command", ())), args=tuple(job.get("args", ())),
               requests=string_pairs(resources.get("requests")), limits=string_pairs(resources.get("limits")),
               container=Fields.of(container),
               pod=Fields.of({kube: job[ours] for ours, kube in POD_FIELDS.items() if ours in job}))
