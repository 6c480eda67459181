"""Policy files that ended in an internal error, were wrongly accepted or badly located (issue 14, item 3).

Every value YAML can hold is a located problem; one such file never stops the other policies, in
`validate`, `reconcile` (text and JSON) and `greenops run`'s discovery.
"""

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from controller.cli import main
from controller.policy.validate import validate_paths

from .conftest import example_policy, make_remote

CHURN = example_policy("churn-predictor")
LABELS = "  labels: {team: crm}\n"


def with_metadata(extra: str) -> str:
    """The churn example with ``extra`` lines added to its metadata mapping."""
    return CHURN.replace(LABELS, LABELS + extra)


HOSTILE = {
    "int-and-string-keys.yaml": with_metadata("  1: a\n  b: c\n"),
    "null-key.yaml": with_metadata("  null: a\n  b: c\n"),
    "bool-key.yaml": with_metadata("  true: a\n"),
    "mixed-flow-keys.yaml": CHURN.replace("mlflowModel: churn-predictor", "{1: a, b: c}: x"),
    "float-hour.yaml": CHURN.replace("allowedHours: [0-6, 20-23]", "allowedHours: [3.0]"),
    "name-newline.yaml": CHURN.replace("  name: churn-predictor", '  name: "churn-predictor\\n"'),
    "namespace-newline.yaml": CHURN.replace("  namespace: crm-ml", '  namespace: "crm-ml\\n"'),
}


def problems_of(tmp_path: Path, name: str, text: str) -> list[str]:
    (tmp_path / name).write_text(text)
    result = validate_paths([tmp_path / name], relative_to=tmp_path)
    assert not result.policies
    return [p.render() for p in result.problems]


@pytest.mark.parametrize(("name", "expected"), [
    ("int-and-string-keys.yaml", ["int-and-string-keys.yaml:9:3: /metadata/1: this key is read as a YAML int, not "
                                  'a string; put it in quotes: "1"',
                                  "int-and-string-keys.yaml:9:3: /metadata/1: unknown field 1; allowed here: "
                                  "annotations, labels, name, namespace",
                                  "int-and-string-keys.yaml:10:3: /metadata/b: unknown field 'b'; allowed here: "
                                  "annotations, labels, name, namespace"]),
    ("null-key.yaml", ['null-key.yaml:9:3: /metadata/null: this key is read as a YAML null, not a string; put it in '
                       'quotes: "null"',
                       "null-key.yaml:9:3: /metadata/null: unknown field null; allowed here: annotations, labels, "
                       "name, namespace",
                       "null-key.yaml:10:3: /metadata/b: unknown field 'b'; allowed here: annotations, labels, name, "
                       "namespace"]),
    ("bool-key.yaml", ['bool-key.yaml:9:3: /metadata/true: this key is read as a YAML bool, not a string; put it in '
                       'quotes: "true"',
                       "bool-key.yaml:9:3: /metadata/true: unknown field true; allowed here: annotations, labels, "
                       "name, namespace"]),
    ("float-hour.yaml", ["float-hour.yaml:26:20: /spec/schedule/allowedHours/0: 3.0 has a decimal point; write the "
                         "whole number 3"]),
])
def test_keys_of_any_type_and_float_integers_are_located_problems(tmp_path: Path, name: str,
                                                                  expected: list[str]) -> None:
    assert problems_of(tmp_path, name, HOSTILE[name]) == expected


def test_a_mapping_as_key_is_located(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, "m.yaml", HOSTILE["mixed-flow-keys.yaml"])
    assert problem == "m.yaml:11:5: (root): invalid YAML: found unhashable key"


@pytest.mark.parametrize("field", ["name", "namespace"])
def test_a_name_or_namespace_ending_in_a_newline_is_refused(tmp_path: Path, field: str) -> None:
    """Python's `$` matches before a final newline: reconcile pushed a folder `manifests/generated/crm-ml\\n/`."""
    (problem,) = problems_of(tmp_path, "n.yaml", HOSTILE[f"{field}-newline.yaml"])
    assert problem.startswith(f"n.yaml:{6 if field == 'name' else 7}:{9 if field == 'name' else 14}: "
                              f"/metadata/{field}: '{'churn-predictor' if field == 'name' else 'crm-ml'}\\n' has the "
                              "wrong form")


def test_durations_and_quantities_are_matched_whole(tmp_path: Path) -> None:
    text = CHURN.replace("minInterval: 1d", 'minInterval: "1d\\n"').replace('cpu: "4"', 'cpu: "4\\n"')
    problems = problems_of(tmp_path, "d.yaml", text)
    assert any("/spec/schedule/minInterval: '1d\\n' has the wrong form" in p for p in problems)
    assert any("/spec/job/resources/requests/cpu: '4\\n' is not a Kubernetes quantity" in p for p in problems)


def test_control_characters_from_keys_are_escaped_in_messages(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.yaml").write_text(with_metadata('  "bad\\e[31mkey\\nnext\\u202e": 1\n'))
    assert main(["validate", str(tmp_path / "c.yaml")]) == 1
    (line,) = capsys.readouterr().out.splitlines()  # one problem, one line
    assert "\x1b" not in line and "\u202e" not in line
    assert r"/metadata/bad\x1b[31mkey\nnext\u202e: unknown field 'bad\x1b[31mkey\nnext\u202e'" in line


@pytest.mark.parametrize(("text", "where", "message"), [
    ("a: b\nc: \x01\n", "2:4", "invalid YAML: character U+0001 is not allowed (control characters are not allowed)"),
    ("é: ü\nc: d\x7f\n", "2:5", "invalid YAML: character U+007F is not allowed"),  # libyaml counts bytes
    ("a:\n  - 1\n  - !!int zz\n", "3:5", "YAML value cannot be read (ValueError: invalid literal for int()"),
    ("a: [1, !!int ]\n", "1:8", "YAML value cannot be read (IndexError: "),  # found by the fuzz
    ("a: !!timestamp ''\n", "1:4", "YAML value cannot be read (AttributeError: "),
])
def test_reader_errors_keep_their_position(tmp_path: Path, text: str, where: str, message: str) -> None:
    (tmp_path / "r.yaml").write_text(text)
    (problem,) = validate_paths([tmp_path / "r.yaml"], relative_to=tmp_path).problems
    assert problem.render().startswith(f"r.yaml:{where}: (root): {message}")
    assert "\n" not in problem.message


def test_one_hostile_file_never_stops_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in HOSTILE.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "ok.yaml").write_text(example_policy("fraud-detector"))
    assert main(["validate", "--output", "json", str(tmp_path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["policies"] == ["fraud-detector"] and report["files"] == len(HOSTILE) + 1
    assert {Path(p["file"]).name for p in report["problems"]} == set(HOSTILE)
    assert all(p["line"] > 0 for p in report["problems"])


def test_a_bug_in_a_check_costs_only_its_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.policy import validate

    def broken(document):  # type: ignore[no-untyped-def]
        if document.data["metadata"]["name"] == "churn-predictor":
            raise TypeError("simulated bug")
        return iter(())

    monkeypatch.setattr(validate, "document_findings", broken)
    (tmp_path / "a.yaml").write_text(CHURN)
    (tmp_path / "b.yaml").write_text(example_policy("fraud-detector"))
    result = validate_paths([tmp_path], relative_to=tmp_path)
    assert [p.name for p in result.policies] == ["fraud-detector"]
    (problem,) = result.problems
    assert problem.render().startswith("a.yaml:3:1: (root): greenops could not check this document (internal "
                                       "error: TypeError: simulated bug); please report it")


def hostile_remote(tmp_path: Path) -> Path:
    files = {f"policies/{name}": text for name, text in HOSTILE.items()}
    return make_remote(tmp_path, {**files, "policies/fraud-detector.yaml": example_policy("fraud-detector")})


def test_reconcile_json_reports_every_hostile_file_and_goes_on(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "no-store" / "mlflow.db"
    code = main(["reconcile", "--repo", str(hostile_remote(tmp_path)), "--state-dir", str(tmp_path / "state"),
                 "--mlflow-uri", f"sqlite:///{store}", "--output", "json"])
    report = {o["policy"]: o for o in json.loads(capsys.readouterr().out)}
    assert code == 1  # user errors, not an internal error (3)
    assert {f"policies/{name}" for name in HOSTILE} | {"fraud-detector"} == set(report)
    assert all(report[f"policies/{name}"]["status"] == "stalled" for name in HOSTILE)
    assert "MLflow store" in report["fraud-detector"]["message"]  # reached, past the hostile files


def test_run_discovery_schedules_the_valid_policies_and_names_each_hostile_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from controller.reconcile import Settings
    from controller.runtime import service
    from controller.runtime.metrics import Metrics

    settings = service.RunSettings(Settings(str(hostile_remote(tmp_path)), tmp_path / "state", "sqlite:///x.db"),
                                   timedelta(hours=1), timedelta(0), timedelta(minutes=1), "127.0.0.1", 0)
    controller = service.Controller(settings, Metrics())
    controller.scheduler.start(paused=True)
    try:
        with caplog.at_level(logging.WARNING, "greenops.run"):
            controller.discover()
        assert controller.discovered  # /readyz waits only for the first passes now
        assert [job.id for job in controller.scheduler.get_jobs()] == ["unit:fraud-detector"]
    finally:
        controller.scheduler.shutdown(wait=False)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert all(f"invalid policy file: policies/{name}:" in logged for name in HOSTILE)
