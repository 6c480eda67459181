"""Checks of spec.job that Kubernetes' schema cannot express but its API server enforces.

The schema gives the shapes; these catch what would otherwise only fail when Argo CD applies the
CronJob (or when the pod is created at the first fire): a mount of an undeclared volume, a GPU request
without a limit, a quantity such as ``4GB``, and clashes with what greenops adds to the pod.
"""

import posixpath
import re
from collections.abc import Iterator
from typing import Any

from controller.policy.job import GATE_DECISION_DIR, GATE_VOLUMES, RESERVED_ENV
from controller.policy.source import escape_pointer_token

Finding = tuple[str, str, str]  # (pointer, message, where: "value" or "key" of that pointer)
JOB = "/spec/job"
ENV_SOURCES = ("configMapKeyRef", "fieldRef", "fileKeyRef", "resourceFieldRef", "secretKeyRef")
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _dicts(items: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """The mappings of a list with their index (anything else is already a schema error)."""
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict):
            yield index, item


def _repeated(items: Any, key: str, pointer: str, what: str) -> Iterator[Finding]:
    """Each later item whose ``key`` repeats an earlier one's (Kubernetes refuses duplicates)."""
    first: dict[Any, int] = {}
    for index, item in _dicts(items):
        value = item.get(key)
        if isinstance(value, str) and value in first:
            yield (f"{pointer}/{index}/{key}", f"{what} {value!r} is already used by item {first[value]}; "
                   "each must be unique, rename or remove one", "value")
        elif isinstance(value, str):
            first[value] = index


def _reserved_env(name: str) -> str:
    return f"{name} is set by greenops from the decision; remove it (tune it through spec.promotion or spec.training)"


def _env_var(index: int, item: dict[str, Any]) -> Iterator[Finding]:
    pointer = f"{JOB}/env/{index}"
    if isinstance(item.get("name"), str) and item["name"] in RESERVED_ENV:
        yield f"{pointer}/name", _reserved_env(item["name"]), "value"
    source = item.get("valueFrom")
    if item.get("value") and source is not None:
        yield f"{pointer}/valueFrom", "set either value or valueFrom, not both (Kubernetes refuses both)", "key"
    if isinstance(source, dict) and len([key for key in ENV_SOURCES if source.get(key) is not None]) != 1:
        yield (f"{pointer}/valueFrom", f"valueFrom needs exactly one of {', '.join(ENV_SOURCES)}, e.g. "
               "secretKeyRef: {name: my-secret, key: token}", "value")


def env_findings(job: dict[str, Any]) -> Iterator[Finding]:
    """Either form of env: greenops' reserved names; in the EnvVar list, Kubernetes' own rules."""
    env = job.get("env")
    if isinstance(env, dict):
        for name in sorted(set(env) & RESERVED_ENV):
            yield f"{JOB}/env/{escape_pointer_token(name)}", _reserved_env(name), "key"
        return
    for index, item in _dicts(env):
        yield from _env_var(index, item)


def volume_findings(job: dict[str, Any]) -> Iterator[Finding]:
    """Volume names unique and clear of the gate's; every mount names a declared volume and a free path."""
    volumes, mounts = job.get("volumes"), job.get("volumeMounts")
    for index, volume in _dicts(volumes):
        if volume.get("name") in GATE_VOLUMES:
            yield (f"{JOB}/volumes/{index}/name", f"{volume['name']!r} is the name of a volume greenops' gate "
                   "adds to the pod; rename this volume (and its volumeMounts)", "value")
    yield from _repeated(volumes, "name", f"{JOB}/volumes", "volume name")
    declared = {volume.get("name") for _, volume in _dicts(volumes) if isinstance(volume.get("name"), str)}
    for index, mount in _dicts(mounts):
        name, path = mount.get("name"), mount.get("mountPath")
        if isinstance(name, str) and name not in declared:
            yield (f"{JOB}/volumeMounts/{index}/name", f"no volume {name!r} in spec.job.volumes; declare it there "
                   "or fix the name", "value")
        if isinstance(path, str) and posixpath.normpath(path) == GATE_DECISION_DIR:
            yield (f"{JOB}/volumeMounts/{index}/mountPath", f"{GATE_DECISION_DIR} is where the gate hands its "
                   "decision to the training container; mount this volume elsewhere", "value")
    yield from _repeated(mounts, "mountPath", f"{JOB}/volumeMounts", "mountPath")


def _is_extended(resource: str) -> bool:
    """``nvidia.com/gpu``-style resources: Kubernetes never overcommits them."""
    domain = resource.split("/", 1)[0] if "/" in resource else ""
    return bool(domain) and domain != "kubernetes.io" and not domain.endswith(".kubernetes.io")


def _amounts(resources: Any, kind: str) -> dict[str, Any]:
    """``resources.requests`` or ``.limits`` by resource name ({} when it is not a mapping)."""
    values = resources.get(kind) if isinstance(resources, dict) else None
    return {str(name): value for name, value in values.items()} if isinstance(values, dict) else {}


def resource_findings(job: dict[str, Any]) -> Iterator[Finding]:
    """Quantities Kubernetes can parse; extended resources (GPUs) requested with an equal limit."""
    requests, limits = _amounts(job.get("resources"), "requests"), _amounts(job.get("resources"), "limits")
    for kind, values in (("requests", requests), ("limits", limits)):
        for name, value in values.items():
            if isinstance(value, str) and not QUANTITY.fullmatch(value):
                yield (f"{JOB}/resources/{kind}/{escape_pointer_token(name)}", f"{value!r} is not a Kubernetes "
                       "quantity; write e.g. 500m or 2 for cpu, 4Gi or 512Mi for memory", "value")
    for name in sorted(filter(_is_extended, requests)):
        if str(limits.get(name)) != str(requests[name]):
            yield (f"{JOB}/resources/requests/{escape_pointer_token(name)}", f"{name} is an extended resource: "
                   f"Kubernetes needs the same amount in resources.limits (limits: {{{name}: \"{requests[name]}\"}}); "
                   "a limit alone is enough", "key")


def toleration_findings(job: dict[str, Any]) -> Iterator[Finding]:
    """Effects Kubernetes knows, and no value with operator Exists (both refused by the API server)."""
    for index, toleration in _dicts(job.get("tolerations")):
        pointer = f"{JOB}/tolerations/{index}"
        effect = toleration.get("effect")
        if effect and effect not in TAINT_EFFECTS:
            yield (f"{pointer}/effect", f"unknown taint effect {effect!r}; use one of {', '.join(TAINT_EFFECTS)}",
                   "value")
        if toleration.get("operator") == "Exists" and toleration.get("value"):
            yield f"{pointer}/value", "operator Exists matches any value; remove value or use operator Equal", "key"


def job_findings(data: Any) -> Iterator[Finding]:
    """Every check of spec.job, once it is a mapping (otherwise the schema already said so)."""
    spec = data.get("spec") if isinstance(data, dict) else None
    job = spec.get("job") if isinstance(spec, dict) else None
    if isinstance(job, dict):
        for check in (env_findings, volume_findings, resource_findings, toleration_findings):
            yield from check(job)
