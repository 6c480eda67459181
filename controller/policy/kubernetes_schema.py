"""The Kubernetes definitions the policy schema embeds, so spec.job's pod fields are checked as Kubernetes does.

spec.job's tolerations, volumes, env and the like point at ``#/$defs/io.k8s...``: Kubernetes' own
(strict) OpenAPI schemas of ``KUBERNETES_VERSION``, copied from kubernetes-validate (a dev dependency,
the validator the render tests use) into ``schemas/retrainingpolicy.schema.json``. One file, so editors,
check-jsonschema and the wheel need neither a second file nor the network. Refresh after changing the
version or spec.job's references with ``python -m controller.policy.kubernetes_schema``; a test fails
when the embedded copy and kubernetes-validate's differ.
"""

import json
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

KUBERNETES_VERSION = "1.37.0"
PREFIX = "io.k8s."
_REF = re.compile(r"^#/\$defs/(io\.k8s\.[^/]+)$")
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "retrainingpolicy.schema.json"


def referenced(node: Any) -> set[str]:
    """Names of the Kubernetes definitions ``node`` refers to directly (anywhere inside it)."""
    if isinstance(node, list):
        return set().union(*(referenced(item) for item in node))
    if not isinstance(node, dict):
        return set()
    found = set().union(*(referenced(value) for value in node.values()))
    match = _REF.match(node.get("$ref", "")) if isinstance(node.get("$ref"), str) else None
    return found | {match.group(1)} if match else found


def _without_annotations(node: Any) -> Any:
    """Drop ``x-kubernetes-*`` keys: annotations for the API server that JSON Schema ignores."""
    if isinstance(node, list):
        return [_without_annotations(item) for item in node]
    if isinstance(node, dict):
        return {key: _without_annotations(value) for key, value in node.items() if not key.startswith("x-kubernetes-")}
    return node


def closure(roots: set[str], source: dict[str, Any]) -> dict[str, Any]:
    """The definitions ``roots`` need from ``source``, transitively, sorted by name."""
    needed: dict[str, Any] = {}
    pending = sorted(roots)
    while pending:
        name = pending.pop()
        if name not in needed:
            needed[name] = _without_annotations(source[name])
            pending.extend(sorted(referenced(needed[name]) - set(needed)))
    return dict(sorted(needed.items()))


def with_kubernetes_definitions(schema: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with exactly the Kubernetes definitions its own fields refer to, taken from ``source``."""
    own = {name: node for name, node in schema.get("$defs", {}).items() if not name.startswith(PREFIX)}
    roots = referenced({key: value for key, value in schema.items() if key != "$defs"}) | referenced(own)
    return {**schema, "$defs": {**own, **closure(roots, source)}}


def kubernetes_definitions(version: str = KUBERNETES_VERSION) -> dict[str, Any]:
    """kubernetes-validate's strict definitions of ``version`` (installed with greenops' dev extras)."""
    folder = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema", f"v{version}-local-strict")
    definitions: dict[str, Any] = json.loads(folder.joinpath("_definitions.json").read_text(encoding="utf-8"))["$defs"]
    return definitions


def dump(schema: dict[str, Any]) -> str:
    """The schema file's layout (two-space JSON), so a refresh only shows real changes."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    try:
        source = kubernetes_definitions()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        print(f"cannot read Kubernetes {KUBERNETES_VERSION} definitions ({err}); run make install (dev extras)",
              file=sys.stderr)
        return 1
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    SCHEMA_PATH.write_text(dump(with_kubernetes_definitions(schema, source)), encoding="utf-8")
    print(f"{SCHEMA_PATH}: Kubernetes {KUBERNETES_VERSION} definitions refreshed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
