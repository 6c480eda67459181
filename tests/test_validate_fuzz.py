"""Fuzzed policy files: validation never fails inside greenops, and every problem is located (issue 14).

The example policies are mutated (values of any YAML type, keys of any type, deleted and added fields,
characters and bytes inserted into the text), plus arbitrary YAML. A few hundred documents by default, on
a fixed seed so CI never turns red by chance; `GREENOPS_FUZZ_EXAMPLES=10000` explores afresh each run
(the slow mode the issue's target is measured with).
"""

import copy
import json
import os
import re
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.policy.validate import validate_paths

from .conftest import PROJECT

EXAMPLES = int(os.environ.get("GREENOPS_FUZZ_EXAMPLES", "300"))
SLOW_MODE = "GREENOPS_FUZZ_EXAMPLES" in os.environ
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
BASES = [yaml.safe_load(path.read_text()) for path in sorted((PROJECT / "policies").glob("*.yaml"))]

TRICKY_STRINGS = ["", " ", "0-6", "25-3", "3-", "23-0", "1d", "0m", "1d\n", "99999999999d", "0 2 * * *",
                  "0 2 L * *", "*/0 * * * *", "Europe/Paris", "Etc/UTC\n", "Mars/Olympus", "churn-predictor\n",
                  "bad\x1b[31m", "\u202e", "\u2028", "a/b~c", "0x1f", "1e400", ".nan", "-", "prometheus", "mlflow",
                  "constant", "observe", "auto-merge", "4Gi", "4\n", "nvidia.com/gpu", "Exists", "NoSchedule",
                  "GREENOPS_POLICY", "/greenops/decision", "greenops-gate"]
FIELD_NAMES = sorted(["apiVersion", "kind", "metadata", "name", "namespace", "labels", "spec", "model", "slo",
                      "target", "compliance", "window", "budget", "energyKWh", "period", "schedule", "current",
                      "minInterval", "maxInterval", "timeZone", "allowedHours", "telemetry", "accuracy", "energy",
                      "carbonIntensity", "source", "query", "job", "image", "command", "args", "env", "resources",
                      "requests", "limits", "volumes", "volumeMounts", "tolerations", "proposal", "mode",
                      "minSavingPercent", "promotion", "minGain", "maxMinGain", "training", "gate", "group"])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-2, 30),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 30).map(float),  # 3.0 where 3 belongs
    st.text(max_size=12), st.sampled_from(TRICKY_STRINGS))
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8), st.none(), st.booleans(), st.integers(-3, 3),
                 st.floats(allow_nan=False, allow_infinity=False, width=16))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=8)


def _slots(data: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) of a document, the document's own fields first."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield data, key
            yield from _slots(value)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield data, index
            yield from _slots(value)


@st.composite
def mutated_policy(draw: st.DrawFn) -> Any:
    """An example policy with one to four fields replaced, removed or added."""
    document = copy.deepcopy(BASES[draw(st.integers(0, len(BASES) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        container, key = draw(st.sampled_from(list(_slots(document))))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            container[key] = draw(values)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(keys)] = draw(values)
        else:
            container.append(draw(values))
        if not list(_slots(document)):
            break
    return document


@st.composite
def policy_text(draw: st.DrawFn) -> bytes:
    """A mutated policy (or any YAML) as a file's bytes, sometimes with characters or bytes inserted."""
    document = draw(st.one_of(mutated_policy(), mutated_policy(), mutated_policy(), values))
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, default_flow_style=draw(st.booleans()))
    data = text.encode("utf-8")
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        noise = draw(st.one_of(st.text(max_size=3).map(lambda t: t.encode("utf-8")), st.binary(max_size=2),
                               st.sampled_from([b"&a ", b"*a", b"!!int ", b"!!float ", b"? ", b": ", b"- ", b"\n  ",
                                                b"\t", b"'", b'"', b"{", b"[", b"%YAML 1.1\n---\n"])))
        data = data[:at] + noise + data[at:]
    return data


def _line_safe(text: str) -> bool:
    return all(unicodedata.category(char)[0] != "C" and unicodedata.category(char) not in ("Zl", "Zp")
               for char in text)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not SLOW_MODE, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(policy_text())
def test_validation_never_fails_inside_greenops_and_locates_every_problem(folder: Path, data: bytes) -> None:
    path = folder / "fuzzed.yaml"
    path.write_bytes(data)
    began = time.monotonic()
    result = validate_paths([path], relative_to=folder)
    assert time.monotonic() - began < 5
    assert result.files == 1
    for problem in result.problems:
        assert problem.file == "fuzzed.yaml" and problem.line >= 1 and problem.column >= 1
        assert "internal error" not in problem.message and "please report" not in problem.message
        assert _line_safe(problem.render()), problem.render()
        json.dumps(problem.as_json())
    for policy in result.policies:  # what was accepted names folders, branches and CronJobs
        assert DNS_LABEL.fullmatch(policy.name) and DNS_LABEL.fullmatch(policy.namespace)
        assert all(isinstance(hour, int) and 0 <= hour <= 23 for hour in policy.allowed_hours)
