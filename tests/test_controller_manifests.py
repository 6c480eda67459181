"""The controller's own deployment: Kustomize renders it, Kubernetes' schemas accept it, the dashboard only
queries metrics `greenops run` exports, and the Dockerfile passes hadolint."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from controller.decision import Decision, Evidence, Forecast
from controller.runtime.metrics import Metrics

from .conftest import PROJECT, kubernetes_validate, kustomize, require_binary

CONTROLLER = PROJECT / "manifests" / "controller"


def built(tmp_path: Path) -> list[dict[str, object]]:
    text = kustomize(CONTROLLER)
    (tmp_path / "built.yaml").write_text(text)
    return list(yaml.safe_load_all(text))


def test_controller_manifests_render_and_validate(tmp_path: Path) -> None:
    documents = built(tmp_path)
    assert sorted(str(d["kind"]) for d in documents) == ["ConfigMap", "ConfigMap", "Deployment", "Namespace",
                                                          "Service", "ServiceAccount"]
    checked = kubernetes_validate(tmp_path / "built.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_deployment_is_locked_down_and_probed(tmp_path: Path) -> None:
    (deployment,) = [d for d in built(tmp_path) if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]  # type: ignore[index]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["terminationGracePeriodSeconds"] >= 300  # a pass finishes before SIGKILL
    token = next(e for e in container["env"] if e["name"] == "GREENOPS_FORGE_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == "greenops-forge"
    assert deployment["spec"]["replicas"] == 1  # type: ignore[index]


def test_telemetry_credentials_come_from_an_optional_secret(tmp_path: Path) -> None:
    (deployment,) = [d for d in built(tmp_path) if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    (secret,) = [source["secretRef"] for source in container["envFrom"] if "secretRef" in source]
    assert secret == {"name": "greenops-telemetry", "optional": True}
    examples = list(yaml.safe_load_all((CONTROLLER / "secret.example.yaml").read_text()))
    assert {example["metadata"]["name"] for example in examples} == {"greenops-forge", "greenops-telemetry"}
    checked = kubernetes_validate(CONTROLLER / "secret.example.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_optional_servicemonitor_selects_the_metrics_service(tmp_path: Path) -> None:
    """Added as its comment says, the ServiceMonitor matches the rendered Service's labels and port name."""
    copy = tmp_path / "controller"
    shutil.copytree(CONTROLLER, copy)
    kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
    kustomization["resources"].append("servicemonitor.yaml")
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    documents = list(yaml.safe_load_all(kustomize(copy)))
    (service,) = [d for d in documents if d["kind"] == "Service"]
    (monitor,) = [d for d in documents if d["kind"] == "ServiceMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["http-metrics"]
    assert "http-metrics" in ports


def exported_names() -> set[str]:
    metrics = Metrics()
    forecast = Forecast("0 2 * * *", 30.0, 10.0, 1.0, 0.97, 0.96, 0.9, 0.88, 24.0, 24.0, ())
    evidence = Evidence("test", "", "", 1, 1, 1.0, 0.0, 1.0, 1, 1, 84, 100.0, False)
    metrics.record("p", "ok", 1.0, Decision("p", forecast, forecast, True, "why", None, evidence), 0.0)
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}


def test_savings_are_exported_only_for_what_greenops_proposes() -> None:
    current = Forecast("0 2 * * *", 30.0, 10.0, 1.0, 0.97, 0.96, 0.9, 0.88, 24.0, 24.0, ())
    best = Forecast("0 2 * * 1", 4.3, 2.0, 0.2, 0.95, 0.94, 0.9, 0.88, 168.0, 168.0, ())
    evidence = Evidence("test", "", "", 1, 1, 1.0, 0.0, 1.0, 1, 1, 84, 100.0, False)
    metrics = Metrics()
    for name, propose in (("kept", False), ("changed", True)):
        metrics.record(name, "ok", 1.0, Decision(name, current, best, propose, "why", None, evidence), 0.0)
    exported = metrics.exposition().decode()
    assert 'greenops_predicted_energy_saving_kwh{policy="kept"} 0.0' in exported
    assert 'greenops_retrains_per_month{policy="kept",schedule="proposed"} 30.0' in exported
    assert 'greenops_predicted_energy_saving_kwh{policy="changed"} 8.0' in exported


def test_the_dashboard_queries_only_metrics_greenops_exports() -> None:
    dashboard = json.loads((CONTROLLER / "dashboards" / "greenops.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"greenops_[a-z_]+", target["expr"])}
    assert queried and queried <= exported_names(), queried - exported_names()
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    assert "energy" in titles and "carbon" in titles and "slo compliance" in titles and "proposals" in titles


def test_the_dashboard_is_provisioned_by_a_labelled_configmap(tmp_path: Path) -> None:
    (config_map,) = [d for d in built(tmp_path) if d["metadata"]["name"] == "greenops-dashboard"]  # type: ignore[index]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"  # type: ignore[index]
    assert json.loads(config_map["data"]["greenops.json"])["uid"] == "greenops-overview"  # type: ignore[index]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = require_binary("hadolint")
    linted = subprocess.run([hadolint, str(PROJECT / "Dockerfile")], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_controller_application_deploys_this_kustomization() -> None:
    path = PROJECT / "manifests" / "argocd" / "greenops-controller.application.yaml"
    application = yaml.safe_load(path.read_text())
    assert application["apiVersion"] == "argoproj.io/v1alpha1" and application["kind"] == "Application"
    source, destination = application["spec"]["source"], application["spec"]["destination"]
    assert (PROJECT / source["path"]).resolve() == CONTROLLER.resolve()
    kustomization = yaml.safe_load((CONTROLLER / "kustomization.yaml").read_text())
    assert destination["namespace"] == kustomization["namespace"]
