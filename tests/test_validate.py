"""`greenops validate`: golden valid/invalid files, output formats, exit codes, start-up weight."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller.cli import main
from controller.policy.validate import validate_paths

from .conftest import PROJECT, require_binary

GOLDEN = PROJECT / "tests" / "golden"
INVALID = sorted((GOLDEN / "invalid").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_file_matches_golden_output(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path.relative_to(PROJECT))]) == 1
    assert capsys.readouterr().out == path.with_suffix(".expected").read_text()


def test_every_line_names_file_line_column_and_pointer(capsys: pytest.CaptureFixture[str]) -> None:
    main(["validate", "tests/golden/invalid"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 15
    for line in lines:
        file, row, column, rest = line.split(":", 3)
        assert file.endswith(".yaml") and int(row) > 0 and int(column) > 0
        assert rest.startswith((" /", " (root): "))


def test_examples_and_valid_goldens_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    assert main(["validate", "tests/golden/valid"]) == 0
    assert capsys.readouterr().out == ""


def test_valid_policies_get_defaults() -> None:
    result = validate_paths([GOLDEN / "valid" / "multi-document.yaml"])
    ranker, spam = sorted(result.policies, key=lambda p: p.name)
    assert ranker.namespace == "default" and ranker.slo_compliance == 0.95 and ranker.time_zone == "Etc/UTC"
    assert ranker.allowed_hours == {22, 23, 0, 1, 2, 3, 12}
    assert spam.mode == "observe" and spam.slo_window.total_seconds() == 12 * 3600


def test_json_output_lists_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--output", "json", "tests/golden/invalid/schema-errors.yaml"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["files"] == 1
    pointers = {p["pointer"] for p in report["problems"]}
    assert {"/metadata/name", "/spec/slo/target", "/spec/colour", "/spec/schedule/minInterval"} <= pointers
    assert all({"file", "line", "column", "pointer", "message"} <= set(p) for p in report["problems"])


def test_duplicate_names_across_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (PROJECT / "policies" / "fraud-detector.yaml").read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yml").write_text(text)
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "b.yml:6:9: /metadata/name: duplicate policy name 'fraud-detector'" in out


def test_missing_path_and_unreadable_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9".encode("latin-1"))
    assert main(["validate", str(tmp_path / "nope.yaml"), str(tmp_path / "latin1.yaml")]) == 1
    out = capsys.readouterr().out
    assert "nope.yaml:0:0: (root): no such file or folder" in out
    assert "latin1.yaml:1:1: (root): not UTF-8 text" in out


def test_a_missing_schema_is_reported_as_a_broken_install_not_as_the_policys_fault(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from controller.policy import checks, schema

    caches = (schema.policy_schema, checks._validator)
    for cached in caches:
        cached.cache_clear()
    monkeypatch.setattr(schema, "SCHEMA_FILE", "absent.schema.json")
    try:
        assert main(["validate", "policies/churn-predictor.yaml"]) == 3
    finally:
        for cached in caches:
            cached.cache_clear()
    err = capsys.readouterr().err
    assert "greenops is installed without its schema" in err and "reinstall greenops" in err
    assert "churn-predictor" not in err and "internal error" not in err


def test_validate_does_not_import_heavy_libraries() -> None:
    code = ("import sys; from controller.cli import main; rc = main(['validate', 'policies']); "
            "heavy = [m for m in ('mlflow', 'optuna', 'sklearn', 'git', 'numpy', 'pandas', 'apscheduler', "
            "'prometheus_client', 'pythonjsonlogger', 'github', 'gitlab') if m in sys.modules]; "
            "print(heavy); raise SystemExit(rc)")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--output", "xml"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "validate" in capsys.readouterr().out


def test_the_policy_reference_is_generated_from_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/policy-reference.md cannot drift: regenerate it with `greenops schema reference`."""
    assert main(["schema", "reference"]) == 0
    generated = capsys.readouterr().out
    assert generated == (PROJECT / "docs" / "policy-reference.md").read_text()
    assert "| `spec.promotion.maxMinGain` | number |" in generated and "`spec.training.window`" in generated
    kinds = [line.split(" | ")[1] for line in generated.splitlines() if line.startswith("| `")]
    assert kinds and all(kind.strip() and not kind.endswith(" of ") for kind in kinds)  # every field has a type
    assert "| `spec.schedule.allowedHours` | array of integer or string |" in generated


def test_the_embedded_kubernetes_definitions_are_kubernetes_own() -> None:
    """spec.job's Kubernetes fields use Kubernetes' strict schemas as kubernetes-validate ships them; refresh
    with `python -m controller.policy.kubernetes_schema` when this fails."""
    from controller.policy.kubernetes_schema import dump, kubernetes_definitions, with_kubernetes_definitions
    from controller.policy.schema import policy_schema

    require_binary("kubernetes-validate")  # the same package holds the definitions
    refreshed = with_kubernetes_definitions(policy_schema(), kubernetes_definitions())
    assert dump(refreshed) == (PROJECT / "schemas" / "retrainingpolicy.schema.json").read_text()
    assert {"io.k8s.api.core.v1.Toleration", "io.k8s.api.core.v1.Volume"} <= set(refreshed["$defs"])


def test_both_forms_of_env_give_the_same_kubernetes_env(tmp_path: Path) -> None:
    text = (PROJECT / "policies" / "fraud-detector.yaml").read_text()
    short = text.replace('args: ["--window", "3d"]', 'args: ["--window", "3d"]\n    env: {B: "2", A: "1"}')
    listed = text.replace('args: ["--window", "3d"]', 'args: ["--window", "3d"]\n    env: [{name: A, value: "1"}, '
                          '{name: B, value: "2"}]')
    (tmp_path / "short.yaml").write_text(short)
    (tmp_path / "listed.yaml").write_text(listed.replace("name: fraud-detector", "name: fraud-listed", 1))
    first, second = validate_paths([tmp_path]).policies
    assert first.job.container == second.job.container
    assert first.job.container.as_dict()["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    hash(first)  # frozen and hashable, however deep the Kubernetes fields go


JOB_GARBAGE = [None, 1, "x", [1], [None], {1: 2}, [{"name": [1], "mountPath": {}, "value": [], "valueFrom": [1]}],
               {"requests": [1], "limits": "x"}, {"requests": {1: "4GB", "nvidia.com/gpu": [1]}, "limits": {"x/y": {}}},
               [{"effect": [1], "operator": "Exists", "value": [1]}]]


def test_kubernetes_fields_of_any_wrong_shape_give_problems_never_a_traceback(tmp_path: Path) -> None:
    base = yaml.safe_load((PROJECT / "policies" / "fraud-detector.yaml").read_text())
    documents = []
    for field in ("env", "envFrom", "volumes", "volumeMounts", "resources", "tolerations", "nodeSelector",
                  "affinity", "imagePullSecrets", "podSecurityContext"):
        for value in JOB_GARBAGE:
            documents.append({**base, "spec": {**base["spec"], "job": {**base["spec"]["job"], field: value}}})
    (tmp_path / "garbage.yaml").write_text(yaml.safe_dump_all(documents))
    result = validate_paths([tmp_path])
    assert result.policies == () and result.problems  # each document is reported invalid, none raised
