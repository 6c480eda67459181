"""The policy reference in Markdown, generated from the JSON Schema so the two cannot drift.

`greenops schema reference` prints it; docs/policy-reference.md is its committed output, and a test
fails when they differ.
"""

import json
from typing import Any

from controller.policy.kubernetes_schema import KUBERNETES_VERSION, PREFIX
from controller.policy.schema import policy_schema


def _kind(node: dict[str, Any], definitions: dict[str, Any]) -> str:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        if name.startswith(PREFIX):  # io.k8s.api.core.v1.Toleration -> Kubernetes `Toleration` (core/v1)
            group, version, kind = name.removeprefix("io.k8s.api.").rsplit(".", 2)
            return f"Kubernetes `{kind}` ({group}/{version})"
        return f"{definitions[name].get('type', 'string')} (duration)"
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return " \\| ".join(f"`{value}`" for value in node["enum"])
    for alternatives in ("oneOf", "anyOf"):
        if alternatives in node:
            return " or ".join(_kind(option, definitions) for option in node[alternatives])
    kinds = node.get("type", "")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "array" in kinds and isinstance(node.get("items"), dict):
        kinds = [f"array of {_kind(node['items'], definitions)}" if kind == "array" else kind for kind in kinds]
    return " or ".join(str(kind) for kind in kinds)


def _limits(node: dict[str, Any]) -> str:
    parts = [f"{word} {node[key]}" for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"),
                                                      ("maximum", "≤"), ("maxLength", "at most"))
             if key in node]
    if "default" in node:
        parts.append(f"default `{json.dumps(node['default'])}`")
    return ", ".join(parts)


def _rows(node: dict[str, Any], path: str, required: set[str], definitions: dict[str, Any]) -> list[str]:
    rows = []
    for name, child in node.get("properties", {}).items():
        field = f"{path}.{name}" if path else name
        description = " ".join(str(child.get("description", "")).split()).replace("|", "\\|")
        limits = _limits(child)
        rows.append(f"| `{field}` | {_kind(child, definitions)} | {'yes' if name in required else ''} | "
                    f"{description}{' (' + limits + ')' if limits else ''} |")
        rows += _rows(child, field, set(child.get("required", [])), definitions)
    return rows


def policy_reference() -> str:
    schema = policy_schema()
    header = [
        "# RetrainingPolicy reference",
        "",
        "Generated from `schemas/retrainingpolicy.schema.json` by `greenops schema reference`; do not edit by "
        "hand (a test fails when this file and the schema disagree).",
        "",
        " ".join(str(schema.get("description", "")).split()),
        "",
        f"A type `Kubernetes X (core/v1)` is Kubernetes' own schema of that object (Kubernetes {KUBERNETES_VERSION}, "
        "strict: unknown fields refused), embedded in the schema file: write it as in a Pod manifest.",
        "",
        "| field | type | required | description |",
        "|---|---|---|---|",
    ]
    return "\n".join([*header, *_rows(schema, "", set(schema.get("required", [])), schema.get("$defs", {}))]) + "\n"
