"""Checks of one policy document: the JSON Schema, then what a schema cannot say.

Every problem is collected (check-jsonschema style) so one run shows all of them.
"""

import json
import math
import operator
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import cache
from typing import Any

import jsonschema

from controller import schedule
from controller.policy.durations import format_duration, is_duration_syntax, parse_duration
from controller.policy.job_checks import job_findings
from controller.policy.schema import policy_schema
from controller.policy.source import Document, Position, escape_pointer_token

Finding = tuple[str, str, str]  # (pointer, message, where: "value" or "key" of that pointer)

_HINTED_VALIDATORS = {"type", "enum", "const", "oneOf", "minimum", "maximum",
                      "exclusiveMinimum", "maxLength", "minLength"}


def _whole_number(checker: Any, instance: Any) -> bool:
    """JSON Schema calls 3.0 an integer; Python and Kubernetes do not (``allowedHours: [3.0]`` would fail
    later), so an integer is written without a decimal point."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    """``pattern`` as ECMA 262 reads it, where ``$`` is the end of the string: Python's ``$`` also matches
    before a final newline, which let ``name: "churn\\n"`` through to a folder name."""
    if not isinstance(instance, str):
        return
    strict = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    if not re.search(strict, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _validator() -> Any:
    """The validator class the schema's ``$schema`` names (2020-12), built once per process, with whole
    numbers for integers and ECMA's ``$``."""
    schema = policy_schema()
    base = jsonschema.validators.validator_for(schema)
    strict = jsonschema.validators.extend(base, validators={"pattern": _ecma_pattern},
                                          type_checker=base.TYPE_CHECKER.redefine("integer", _whole_number))
    return strict(schema)


def pointer_of(path: Any) -> str:
    return "".join(f"/{escape_pointer_token(token)}" for token in path)


@cache
def _definition_names() -> dict[int, str]:
    """The schema's ``$defs`` by identity: a validation error carries the definition's dict, not its name."""
    return {id(node): name for name, node in policy_schema().get("$defs", {}).items()}


_YAML_KINDS = ((bool, "boolean"), (int, "number"), (float, "number"))


def _type_message(error: jsonschema.ValidationError, description: str | None) -> str | None:
    """Plainer words for the type errors people make when pasting Kubernetes fields: an empty value, an
    unquoted ``true`` or number where a string belongs, and a string where a Kubernetes object belongs
    (whose schemas also allow null, which no one means)."""
    types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    kind = next((name for python, name in _YAML_KINDS if isinstance(error.instance, python)), None)
    shown = json.dumps(error.instance)
    if error.instance is None:
        return f"no value (null) where {' or '.join(map(repr, types))} belongs; fill it in or remove the key"
    if "string" in types and kind:
        hint = f" (expected: {description})" if description else ""
        return f"{shown} is read as a YAML {kind}, not a string; put it in quotes: \"{shown}\"{hint}"
    if "null" not in types:
        return None
    properties = error.schema.get("properties") if isinstance(error.schema, dict) else None
    if "object" in types and properties:
        name = _definition_names().get(id(error.schema), "").rsplit(".", 1)[-1]
        return (f"{shown} is not a mapping; {f'a Kubernetes {name}' if name else 'it'} has the fields "
                f"{', '.join(sorted(properties))}")
    return f"{shown} is not of type {' or '.join(repr(name) for name in types if name != 'null')}"


def _takes_integers(schema: Any) -> bool:
    """Whether ``schema`` (or one of its alternatives) is of type integer."""
    if not isinstance(schema, dict):
        return False
    types = schema.get("type")
    options = [option for key in ("oneOf", "anyOf") for option in schema.get(key, [])]
    return "integer" in (types if isinstance(types, list) else [types]) or any(map(_takes_integers, options))


def _message(error: jsonschema.ValidationError) -> str:
    """The error's words, with the field's description as a hint where it helps."""
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    instance = error.instance
    if isinstance(instance, float) and math.isfinite(instance) and instance.is_integer() \
            and _takes_integers(error.schema):
        return f"{instance!r} has a decimal point; write the whole number {int(instance)}"
    if error.validator == "type" and (plain := _type_message(error, description)):
        return plain
    if error.validator == "pattern" and description:
        return f"{error.instance!r} has the wrong form; expected: {description}"
    if error.validator in _HINTED_VALIDATORS and description:
        return f"{error.message} (expected: {description})"
    return str(error.message)


def schema_findings(data: Any) -> Iterator[Finding]:
    """Schema violations, one finding per offending key for unknown properties and one type error per value
    (a Kubernetes item is typed twice: by its definition, and not null by spec.job)."""
    typed: set[str] = set()
    for error in _validator().iter_errors(data):
        pointer = pointer_of(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - known, key=escape_pointer_token):  # keys of any YAML type
                shown = repr(key) if isinstance(key, str) else escape_pointer_token(key)
                yield (f"{pointer}/{escape_pointer_token(key)}",
                       f"unknown field {shown}; allowed here: {', '.join(sorted(known)) or 'none'}", "key")
            continue
        if error.validator == "type":
            if pointer in typed:
                continue
            typed.add(pointer)
        yield pointer, _message(error), "value"


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _well_formed_duration(text: str) -> timedelta | None:
    """Malformed durations are already schema (pattern) errors; only check well-formed ones."""
    return parse_duration(text) if is_duration_syntax(text) else None


_FIELD_PARSERS: dict[tuple[str, ...], Callable[[str], object]] = {
    ("spec", "slo", "window"): _well_formed_duration,
    ("spec", "budget", "period"): _well_formed_duration,
    ("spec", "schedule", "minInterval"): _well_formed_duration,
    ("spec", "schedule", "maxInterval"): _well_formed_duration,
    ("spec", "schedule", "current"): schedule.normalise,
    ("spec", "schedule", "timeZone"): schedule.zone,
    ("spec", "telemetry", "lookback"): _well_formed_duration,
    ("spec", "telemetry", "maxStaleness"): _well_formed_duration,
    ("spec", "training", "window"): _well_formed_duration,
    ("spec", "training", "minWindow"): _well_formed_duration,
    ("spec", "training", "maxWindow"): _well_formed_duration,
}


_FIELD_SOURCES = {  # telemetry signal -> field -> the only source it applies to
    "accuracy": {"query": "prometheus", "versionLabel": "prometheus"},
    "energy": {"metric": "mlflow", "preset": "prometheus", "selector": "prometheus", "jobLabel": "prometheus",
               "unit": "prometheus", "podPrefix": "prometheus", "projectName": "prometheus"},
    "carbonIntensity": {"gCO2ePerKWh": "constant", "zone": "prometheus", "query": "prometheus"},
}


def telemetry_findings(data: Any) -> Iterator[Finding]:
    """Fields that do not apply to the chosen source, and a carbon gauge with nothing to select it by."""
    for signal, fields in _FIELD_SOURCES.items():
        settings = _get(data, "spec", "telemetry", signal)
        if not isinstance(settings, dict) or not isinstance(settings.get("source"), str):
            continue
        for field, source in fields.items():
            if field in settings and settings["source"] != source:
                yield (f"/spec/telemetry/{signal}/{field}",
                       f"{field} only applies when source is {source} (here: {settings['source']}); remove it "
                       f"or set source: {source}", "key")
    carbon = _get(data, "spec", "telemetry", "carbonIntensity")
    if isinstance(carbon, dict) and carbon.get("source") == "prometheus" and not {"zone", "query"} & set(carbon):
        yield ("/spec/telemetry/carbonIntensity/source",
               "a prometheus carbon intensity needs zone (for the default gauge "
               "grid_carbon_intensity_gco2_per_kwh{zone}) or query", "value")


_DURATION_LIMITS = {"/spec/slo/window": timedelta(days=31), "/spec/budget/period": timedelta(days=366),
                    "/spec/schedule/minInterval": timedelta(days=366),
                    "/spec/schedule/maxInterval": timedelta(days=366), "/spec/telemetry/lookback": timedelta(days=3660),
                    "/spec/telemetry/maxStaleness": timedelta(days=366), "/spec/training/window": timedelta(days=3660),
                    "/spec/training/minWindow": timedelta(days=3660), "/spec/training/maxWindow": timedelta(days=3660)}


def _non_finite_numbers(data: Any, pointer: str) -> Iterator[Finding]:
    """NaN, infinities and numbers beyond float range make every comparison meaningless."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _non_finite_numbers(value, f"{pointer}/{escape_pointer_token(key)}")
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _non_finite_numbers(value, f"{pointer}/{index}")
    elif isinstance(data, float | int) and not isinstance(data, bool) and not (
            math.isfinite(data) if isinstance(data, float) else abs(data) < 10**300):
        yield pointer, f"{data!r} is not a usable number; write a finite number", "value"


def semantic_findings(data: Any) -> Iterator[Finding]:
    """Durations, cron strings, time zone and interval bounds (each parser raises a ValueError)."""
    parsed: dict[str, object] = {}
    for keys, parse in _FIELD_PARSERS.items():
        text = _get(data, *keys)
        if isinstance(text, str):
            try:
                parsed["/" + "/".join(keys)] = parse(text)
            except (ValueError, OverflowError) as err:
                yield "/" + "/".join(keys), str(err), "value"
    for pointer, limit in _DURATION_LIMITS.items():
        value = parsed.get(pointer)
        if isinstance(value, timedelta) and value > limit:
            yield (pointer, f"{pointer.rsplit('/', 1)[1]} is longer than the supported {format_duration(limit)}; "
                   "use a shorter duration", "value")
    yield from _non_finite_numbers(data, "")
    low, high = parsed.get("/spec/schedule/minInterval"), parsed.get("/spec/schedule/maxInterval")
    if isinstance(low, timedelta) and isinstance(high, timedelta) and low > high:
        yield ("/spec/schedule/minInterval",
               f"minInterval ({_get(data, 'spec', 'schedule', 'minInterval')}) is longer than maxInterval "
               f"({_get(data, 'spec', 'schedule', 'maxInterval')}); swap them or widen maxInterval", "value")
    yield from telemetry_findings(data)
    yield from _range_findings(data, parsed)
    yield from job_findings(data)


def _range_findings(data: Any, parsed: dict[str, object]) -> Iterator[Finding]:
    """The promotion gate's and the training window's ranges must contain today's value."""
    gate = _get(data, "spec", "promotion")
    if isinstance(gate, dict) and isinstance(gate.get("minGain"), float | int) \
            and isinstance(gate.get("maxMinGain"), float | int) and gate["maxMinGain"] < gate["minGain"]:
        yield ("/spec/promotion/maxMinGain", f"maxMinGain ({gate['maxMinGain']}) is below minGain "
               f"({gate['minGain']}); raise it, or set it equal to minGain to pin the gate", "value")
    window = parsed.get("/spec/training/window")
    for key, outside in (("minWindow", operator.gt), ("maxWindow", operator.lt)):
        bound = parsed.get(f"/spec/training/{key}")
        if isinstance(window, timedelta) and isinstance(bound, timedelta) and outside(bound, window):
            yield (f"/spec/training/{key}", f"{key} ({_get(data, 'spec', 'training', key)}) must "
                   f"{'not exceed' if key == 'minWindow' else 'be at least'} window "
                   f"({_get(data, 'spec', 'training', 'window')}); adjust one of them", "value")


def document_findings(document: Document) -> Iterator[tuple[str, str, Position]]:
    """Everything wrong with one document, each with its line and column."""
    if document.oversized:
        yield "", "YAML aliases expand this document beyond 100,000 values (or into a cycle); remove them", (1, 1)
        return
    for pointer, position in document.duplicate_keys:
        yield pointer, "key appears twice in this mapping; YAML keeps only the last one, remove one", position
    for pointer, position, kind, written in document.non_string_keys:
        quoted = f": {json.dumps(written)}" if written else ""
        yield pointer, f"this key is read as a YAML {kind}, not a string; put it in quotes{quoted}", position
    for pointer, message, where in (*schema_findings(document.data), *semantic_findings(document.data)):
        key_position = document.positions.get(f"{pointer}#key") if where == "key" else None
        yield pointer, message, key_position or document.position(pointer)
