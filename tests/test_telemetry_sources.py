"""Telemetry from a real Prometheus (Kepler 0.9/0.10, CodeCarbon, usage, gauges) and a real MLflow server.

One synthetic ground truth (irregular retrains with known energy, daily quality of the serving
model) is served through MLflow and through Prometheus: both must give the same History and the
same decision.
"""

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from controller.decision import ESTIMATE_NOTE
from controller.errors import StalledError, TransientError
from controller.forecast.costmodel import fit_cost_model
from controller.gitops import mr
from controller.optimize.decide import decide
from controller.policy.model import Policy, policy_from_data
from controller.telemetry import mlflow_store, promql
from controller.telemetry.assemble import Sources, carbon_intensity, load_history, read_energy_jobs
from controller.telemetry.history import History
from controller.telemetry.mlflow_store import MlflowTelemetry
from controller.telemetry.prometheus_source import PrometheusTelemetry
from controller.telemetry_check import check_policy

from .conftest import PROJECT, make_remote
from .servers import (
    ADMIN_PASSWORD,
    PROMETHEUS_PASSWORD,
    PROMETHEUS_USER,
    OpenMetricsSample,
    free_port,
    mlflow_server,
    prometheus_with_history,
)

END = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 45
SCRAPE = 30
JOB_SECONDS = 1200
NAME, NAMESPACE = "churn-predictor", "crm-ml"


def truth() -> tuple[list[tuple[str, datetime, float]], list[tuple[datetime, str, float]]]:
    """Jobs (version, start, kWh) at irregular 1-4 day gaps, and the serving model's daily quality."""
    rng = np.random.default_rng(11)
    jobs, day = [], 0
    while day < DAYS:
        start = END - timedelta(days=DAYS - day) + timedelta(hours=2)
        jobs.append((f"v{len(jobs) + 1}", start, float(rng.uniform(0.8, 1.6))))
        day += int(rng.integers(1, 5))
    evaluations = []
    for offset in range(1, DAYS + 1):
        at = END - timedelta(days=DAYS - offset)
        ready = [(v, s + timedelta(seconds=JOB_SECONDS)) for v, s, _ in jobs
                 if s + timedelta(seconds=JOB_SECONDS) <= at - timedelta(hours=12)]
        if ready:
            version, finished = ready[-1]
            age = (at - timedelta(hours=12) - finished) / timedelta(days=1)
            evaluations.append((at, version, float(0.93 - 0.006 * age + rng.normal(0, 0.002))))
    return jobs, evaluations


def counter_samples(name: str, labels: dict[str, str], start: datetime, total: float,
                    offset: float = 0.0) -> list[OpenMetricsSample]:
    """A counter rising linearly by ``total`` over one job, scraped every 30 s, from ``offset``."""
    steps = JOB_SECONDS // SCRAPE
    base = start.timestamp()
    return [(name, labels, offset + total * i / steps, base + i * SCRAPE) for i in range(steps + 1)]


def prometheus_samples() -> list[OpenMetricsSample]:
    jobs, evaluations = truth()
    samples: list[OpenMetricsSample] = []
    for number, (_version, start, kwh) in enumerate(jobs):
        joules = kwh * 3.6e6
        pod = f"{NAME}-{number}-x7k2p"
        for zone, share in (("package", 0.7), ("dram", 0.3), ("psys", 2.0)):  # psys must never be added
            samples += counter_samples("kepler_pod_cpu_joules_total",
                                       {"pod_namespace": NAMESPACE, "pod_name": pod, "zone": zone},
                                       start, joules * share, offset=5000.0)
        for container, share in (("train", 0.8), ("sidecar", 0.2)):
            samples += counter_samples("kepler_container_joules_total", {"container_namespace": NAMESPACE,
                                       "pod_name": pod, "container_name": container}, start, joules * share)
        samples += counter_samples("codecarbon_energy_total", {"project_name": NAME, "job": "codecarbon"},
                                   start, kwh)
        usage = {"namespace": NAMESPACE, "pod": pod, "container": "train"}
        samples += counter_samples("container_cpu_usage_seconds_total", usage, start, 2.0 * JOB_SECONDS)
        samples += [("container_memory_working_set_bytes", usage, 4e9, t) for _, _, _, t in
                    counter_samples("x", {}, start, 0)]
        # decoys: another namespace, and a pod whose name only looks like the prefix
        samples += counter_samples("kepler_pod_cpu_joules_total", {"pod_namespace": "other", "pod_name": pod,
                                   "zone": "package"}, start, 9e9)
        samples += counter_samples("kepler_pod_cpu_joules_total", {"pod_namespace": NAMESPACE,
                                   "pod_name": f"{NAME}x-{number}", "zone": "package"}, start, 9e9)
    for at, _version, quality in evaluations:
        samples.append(("greenops_model_quality", {"policy": NAME, "metric": "accuracy"}, quality, at.timestamp()))
    for hour in range(DAYS * 24):
        moment = END - timedelta(hours=DAYS * 24 - hour)
        samples.append(("grid_carbon_intensity_gco2_per_kwh", {"zone": "GB"},
                        100 + 50 * math.sin(2 * math.pi * hour / 24), moment.timestamp()))
        if hour % 100 == 7:  # an exporter's NaN between two hourly values: no information, never averaged
            samples.append(("grid_carbon_intensity_gco2_per_kwh", {"zone": "GB"}, math.nan,
                            (moment + timedelta(minutes=30)).timestamp()))
    return samples


def log_truth(telemetry: MlflowTelemetry) -> None:
    jobs, evaluations = truth()
    for version, start, kwh in jobs:
        telemetry.log_training(NAME, version, start, start + timedelta(seconds=JOB_SECONDS),
                               {"energy_kwh": kwh, "duration_s": float(JOB_SECONDS)})
    for version in {v for _, v, _ in evaluations}:
        points = [(at, q) for at, v, q in evaluations if v == version]
        telemetry.log_evaluations(NAME, version, "accuracy", points)


def policy(**telemetry: Any) -> Policy:
    data = yaml.safe_load((PROJECT / "policies" / f"{NAME}.yaml").read_text())
    data["spec"]["telemetry"] = {"carbonIntensity": {"source": "constant", "gCO2ePerKWh": 60}, **telemetry}
    return policy_from_data(data, Path(f"policies/{NAME}.yaml"))


PROMETHEUS_POLICY = {"energy": {"source": "prometheus"}, "accuracy": {"source": "prometheus"}}


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with prometheus_with_history(tmp_path_factory.mktemp("prometheus"), prometheus_samples()) as url:
        yield url


@pytest.fixture(scope="module")
def sqlite_mlflow(tmp_path_factory: pytest.TempPathFactory) -> MlflowTelemetry:
    telemetry = MlflowTelemetry(f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}", create=True)
    log_truth(telemetry)
    return telemetry


@pytest.fixture(scope="module")
def empty_mlflow(tmp_path_factory: pytest.TempPathFactory) -> MlflowTelemetry:
    return MlflowTelemetry(f"sqlite:///{tmp_path_factory.mktemp('none') / 'absent.db'}")


def canonical(history: History) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What the cost model depends on, with version names replaced by their training's finish time."""
    finished = {t.version: t.finished_at for t in history.trainings}
    trainings = [(t.finished_at, round(t.energy_kwh or 0, 9), t.duration_s) for t in history.trainings]
    evaluations = [(e.at, e.quality, finished[e.version]) for e in history.evaluations]
    return trainings, evaluations


def decision_of(p: Policy, history: History) -> tuple[Any, ...]:
    """Schedules, proposal and reason exactly; figures to 9 significant digits (counter sums vs logged values)."""
    model = fit_cost_model(history, p.slo_target, p.slo_window, 42, p.telemetry.carbon_constant)
    decision = decide(p, history, [model], seed=42, trials=40)
    figures = [round(v, 9) for f in (decision.current, decision.proposed)
               for v in asdict(f).values() if isinstance(v, float)]
    return decision.current.schedule, decision.proposed.schedule, decision.propose, decision.reason, figures


def test_same_history_and_decision_via_mlflow_and_prometheus(
        prometheus_url: str, sqlite_mlflow: MlflowTelemetry, empty_mlflow: MlflowTelemetry) -> None:
    via_mlflow = load_history(policy(), Sources(sqlite_mlflow, None), END)
    prom_policy = policy(**PROMETHEUS_POLICY)
    via_prometheus = load_history(prom_policy, Sources(empty_mlflow, PrometheusTelemetry(prometheus_url)), END)
    assert len(via_mlflow.trainings) == len(truth()[0]) and len(via_mlflow.evaluations) >= 40
    assert canonical(via_prometheus) == canonical(via_mlflow)
    assert decision_of(prom_policy, via_prometheus) == decision_of(policy(), via_mlflow)


@pytest.mark.parametrize("preset", ["kepler-0.10", "kepler-0.9", "codecarbon"])
def test_every_energy_preset_finds_each_job_and_its_exact_energy(prometheus_url: str, preset: str) -> None:
    jobs = read_energy_jobs(policy(energy={"source": "prometheus", "preset": preset}),
                            PrometheusTelemetry(prometheus_url), END - timedelta(days=90), END).value
    expected = [(start.timestamp() + JOB_SECONDS, kwh) for _, start, kwh in truth()[0]]
    assert [(job.end, round(job.energy_kwh, 9)) for job in jobs] == [(end, round(kwh, 9)) for end, kwh in expected]
    assert not any(job.estimated for job in jobs)


def test_cpu_memory_estimate_is_flagged(prometheus_url: str, empty_mlflow: MlflowTelemetry) -> None:
    p = policy(energy={"source": "prometheus", "preset": "cpu-memory-estimate"}, accuracy={"source": "prometheus"})
    history = load_history(p, Sources(empty_mlflow, PrometheusTelemetry(prometheus_url)), END)
    per_job = promql.estimated_kwh(2.0 * JOB_SECONDS, 4.0 * JOB_SECONDS / 3600)
    assert history.energy_estimated
    assert all(t.energy_kwh == pytest.approx(per_job) for t in history.trainings)
    model = fit_cost_model(history, p.slo_target, p.slo_window, 1, 60.0)
    assert model.energy_estimated
    decision = decide(p, history, [model], seed=1, trials=20)
    assert decision.evidence.energy_estimated and ESTIMATE_NOTE in decision.reason
    assert mr.title(p, decision).endswith("energy, estimated)")
    body = mr.body(p, decision)
    assert body.count(ESTIMATE_NOTE) >= 3  # energy row, carbon row, why
    assert '"energy_estimated": true' in body


def test_mlflow_runs_get_their_energy_from_prometheus_jobs(prometheus_url: str,
                                                          sqlite_mlflow: MlflowTelemetry) -> None:
    history = load_history(policy(energy={"source": "prometheus"}),
                           Sources(sqlite_mlflow, PrometheusTelemetry(prometheus_url)), END)
    assert [t.version for t in history.trainings] == [v for v, _, _ in truth()[0]]
    assert [round(t.energy_kwh or 0, 9) for t in history.trainings] == [round(k, 9) for _, _, k in truth()[0]]


def test_carbon_intensity_gauge_and_staleness(prometheus_url: str, sqlite_mlflow: MlflowTelemetry) -> None:
    p = policy(carbonIntensity={"source": "prometheus", "zone": "GB"})
    history = load_history(p, Sources(sqlite_mlflow, PrometheusTelemetry(prometheus_url)), END)
    assert history.carbon_intensity_g_per_kwh == pytest.approx(100, abs=1)
    later = END + timedelta(days=5)
    with pytest.raises(StalledError, match=r"carbon intensity is stale: .*\(5d1h ago\) and maxStaleness is 3d"):
        carbon_intensity(p, Sources(sqlite_mlflow, PrometheusTelemetry(prometheus_url)), later - timedelta(days=90),
                         later)


def test_stale_quality_means_no_decision(prometheus_url: str, empty_mlflow: MlflowTelemetry) -> None:
    with pytest.raises(StalledError, match=r"quality is stale: the newest sample of greenops_model_quality"):
        load_history(policy(**PROMETHEUS_POLICY), Sources(empty_mlflow, PrometheusTelemetry(prometheus_url)),
                     END + timedelta(days=10))


def test_a_query_that_matches_nothing_names_the_query(prometheus_url: str) -> None:
    p = replace(policy(energy={"source": "prometheus"}), namespace="nope")
    with pytest.raises(StalledError, match=r'energy query kepler_pod_cpu_joules_total\{pod_namespace="nope"'):
        read_energy_jobs(p, PrometheusTelemetry(prometheus_url), END - timedelta(days=90), END)


def test_policy_values_cannot_widen_a_query(prometheus_url: str) -> None:
    """A prefix with regex and quote characters is matched literally, so it finds nothing."""
    hostile = policy(energy={"source": "prometheus", "podPrefix": '.*"} or vector(1) #'})
    with pytest.raises(StalledError, match="matched no series"):
        read_energy_jobs(hostile, PrometheusTelemetry(prometheus_url), END - timedelta(days=90), END)


def test_invalid_promql_is_the_users_to_fix(prometheus_url: str, empty_mlflow: MlflowTelemetry) -> None:
    p = policy(energy={"source": "prometheus"}, accuracy={"source": "prometheus", "query": "sum(broken"})
    expected = r"rejected the query last_over_time\(\(sum\(broken\)\[86400s:\]\).*unclosed left parenthesis"
    with pytest.raises(StalledError, match=expected):
        load_history(p, Sources(empty_mlflow, PrometheusTelemetry(prometheus_url)), END)


def test_prometheus_down_is_transient_and_quick(empty_mlflow: MlflowTelemetry) -> None:
    down = PrometheusTelemetry(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(TransientError, match="unreachable or too slow"):
        load_history(policy(**PROMETHEUS_POLICY), Sources(empty_mlflow, down), END)


def test_missing_prometheus_configuration_is_stalled(empty_mlflow: MlflowTelemetry) -> None:
    with pytest.raises(StalledError, match="--prometheus-url"):
        load_history(policy(**PROMETHEUS_POLICY), Sources(empty_mlflow, None), END)


def test_long_gauge_reads_are_chunked_under_the_points_limit(prometheus_url: str) -> None:
    """45 days at a 5-minute step is 12,960 steps: one query would be refused by Prometheus (limit 11,000)."""
    series = PrometheusTelemetry(prometheus_url).gauge_series(
        promql.default_carbon_query("GB"), END - timedelta(days=DAYS), END, timedelta(minutes=5))
    hourly_samples_seen_twice = 2 * DAYS * 24  # each hourly sample is visible at :00 and :05
    assert len(series) == 1 and abs(len(series[0][1]) - hourly_samples_seen_twice) <= 2


def test_mlflow_server_over_http_gives_the_same_history(tmp_path: Path, sqlite_mlflow: MlflowTelemetry,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with mlflow_server(tmp_path) as url:
        remote = MlflowTelemetry(url)
        log_truth(remote)
        monkeypatch.setattr(mlflow_store, "PAGE_SIZE", 5)  # several pages of runs
        over_http = load_history(policy(), Sources(remote, None), END)
    assert canonical(over_http) == canonical(load_history(policy(), Sources(sqlite_mlflow, None), END))
    assert over_http.source.startswith(f"MLflow {url}")


def policy_file(folder: Path, namespace: str = NAMESPACE, **telemetry: Any) -> Path:
    data = yaml.safe_load((PROJECT / "policies" / f"{NAME}.yaml").read_text())
    data["metadata"]["namespace"] = namespace
    data["spec"]["telemetry"] = {"carbonIntensity": {"source": "prometheus", "zone": "GB"}, **telemetry}
    path = folder / f"{NAME}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def telemetry_check(path: Path, prometheus: str, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "greenops"), "telemetry", "check", str(path), "--prometheus-url",
               prometheus, "--mlflow-uri", f"sqlite:///{path.parent / 'absent.db'}", "--as-of", END.isoformat(),
               *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_telemetry_check_shows_each_query_and_what_it_found(prometheus_url: str, tmp_path: Path) -> None:
    done = telemetry_check(policy_file(tmp_path, **PROMETHEUS_POLICY), prometheus_url)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = len(truth()[0])
    assert f"{NAME} ({tmp_path / NAME}.yaml:" in done.stdout
    assert 'kepler_pod_cpu_joules_total{pod_namespace="crm-ml",' in done.stdout
    assert f"{2 * jobs} series" in done.stdout  # package + dram per job; psys and the decoys are not matched
    assert f"ok: {jobs} retrains, {jobs} with energy" in done.stdout
    assert 'greenops_model_quality{policy="churn-predictor",metric="accuracy"}' in done.stdout
    assert "1 series" in done.stdout and "largest gap" in done.stdout and "newest 0m old" in done.stdout
    assert 'grid_carbon_intensity_gco2_per_kwh{zone="GB"}' in done.stdout and "mean 100 gCO2e/kWh" in done.stdout
    assert "=> enough to decide:" in done.stdout


def test_telemetry_check_says_in_one_line_that_a_query_matches_nothing(prometheus_url: str, tmp_path: Path) -> None:
    done = telemetry_check(policy_file(tmp_path, namespace="nope", **PROMETHEUS_POLICY), prometheus_url)
    assert done.returncode == 1
    [line] = [line for line in done.stdout.splitlines() if line.lstrip().startswith("energy")]
    assert "STALLED: the energy query kepler_pod_cpu_joules_total{pod_namespace=\"nope\"" in line
    assert f"matched no series in the last 90d at {prometheus_url}; check the namespace, pod prefix" in line
    assert "=> not enough to decide (energy: the query must be fixed)" in done.stdout
    assert "Traceback" not in done.stderr


def test_telemetry_check_of_one_policy_ignores_other_broken_files(prometheus_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    policy_file(folder, **PROMETHEUS_POLICY)
    (folder / "broken.yaml").write_text("kind: [unclosed\n")
    done = telemetry_check(folder / "x", prometheus_url, "--policies-dir", str(folder))
    assert done.returncode == 1 and "x: no such policy file, folder or valid policy name" in done.stderr
    named = subprocess.run([str(Path(sys.executable).parent / "greenops"), "telemetry", "check", NAME,
                            "--policies-dir", str(folder), "--prometheus-url", prometheus_url, "--as-of",
                            END.isoformat()], capture_output=True, text=True, timeout=120)
    assert named.returncode == 0, named.stdout + named.stderr
    assert "broken.yaml:2:1: (root): invalid YAML" in named.stderr and "=> enough to decide" in named.stdout


def test_telemetry_check_reports_stale_data_and_json(prometheus_url: str, tmp_path: Path) -> None:
    path = policy_file(tmp_path, **PROMETHEUS_POLICY)
    later = END + timedelta(days=10)
    done = telemetry_check(path, prometheus_url, "--as-of", later.isoformat(), "--output", "json")
    assert done.returncode == 1
    [report] = json.loads(done.stdout)
    signals = {s["signal"]: s for s in report["signals"]}
    # per-window values are stamped at the window's end: the last real sample may show once more a window later
    assert signals["quality"]["status"] == "stale" and signals["quality"]["last_age"] in (9 * 86400, 10 * 86400)
    assert signals["carbon intensity"]["status"] == "stale"
    assert signals["energy"]["status"] == "ok" and signals["energy"]["points"] > 0
    assert not report["enough"] and "the newest sample is too old" in report["verdict"]


def test_telemetry_check_with_prometheus_down_is_transient(tmp_path: Path) -> None:
    done = telemetry_check(policy_file(tmp_path, **PROMETHEUS_POLICY), f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "TRANSIENT: Prometheus at http://127.0.0.1:" in done.stdout and "unreachable or too slow" in done.stdout
    assert "Traceback" not in done.stderr


def test_telemetry_check_reads_mlflow_runs_and_counts_missing_windows(tmp_path: Path) -> None:
    """The truth has a gap: the first days have no serving model yet, and we drop three evaluation days."""
    telemetry = MlflowTelemetry(f"sqlite:///{tmp_path / 'mlflow.db'}", create=True)
    jobs, evaluations = truth()
    for version, start, kwh in jobs:
        telemetry.log_training(NAME, version, start, start + timedelta(seconds=JOB_SECONDS), {"energy_kwh": kwh})
    kept = [e for e in evaluations if not END - timedelta(days=20) < e[0] <= END - timedelta(days=17)]
    for version in {v for _, v, _ in kept}:
        telemetry.log_evaluations(NAME, version, "accuracy", [(at, q) for at, v, q in kept if v == version])
    checked = check_policy(policy(), Sources(telemetry, None), END)
    quality, energy, carbon = checked.signals
    assert quality.status == "ok" and quality.missing_windows == 3 and quality.largest_gap == timedelta(days=4)
    assert quality.points == len(kept) and quality.last_age == timedelta(0)
    assert energy.status == "ok" and energy.points == len(jobs)
    assert carbon.status == "ok" and carbon.query == "60 gCO2e/kWh"
    assert checked.enough
    early = check_policy(policy(), Sources(telemetry, None), END - timedelta(days=DAYS - 5))
    assert not early.enough and early.signals[0].status == "too-few"
    assert early.signals[0].last == END - timedelta(days=DAYS - 5)  # nothing after --as-of is read
    assert early.signals[1].last is not None and early.signals[1].last <= END - timedelta(days=DAYS - 5)


def test_an_evaluation_run_older_than_the_lookback_still_counts_its_recent_points(tmp_path: Path) -> None:
    """One long-lived evaluation run per model version is a valid contract: only its points are windowed."""
    telemetry = MlflowTelemetry(f"sqlite:///{tmp_path / 'mlflow.db'}", create=True)
    days = [END - timedelta(days=n) for n in range(120, -1, -1)]
    telemetry.log_evaluations(NAME, "v1", "accuracy", [(day, math.nan if day == END - timedelta(days=9) else 0.9)
                                                       for day in days])
    recent = telemetry.evaluations(NAME, "accuracy", since=END - timedelta(days=90), until=END - timedelta(days=1))
    assert [e.at for e in recent] == [d for d in days if END - timedelta(days=90) <= d <= END - timedelta(days=1)
                                      and d != END - timedelta(days=9)]  # the NaN is no evaluation


def test_a_stalled_signal_in_a_pass_points_to_telemetry_check(prometheus_url: str, tmp_path: Path) -> None:
    path = policy_file(tmp_path, namespace="nope", **PROMETHEUS_POLICY)
    remote = make_remote(tmp_path, {f"policies/{NAME}.yaml": path.read_text()})
    done = subprocess.run([str(Path(sys.executable).parent / "greenops"), "plan", "--repo", str(remote),
                           "--prometheus-url", prometheus_url, "--state-dir", str(tmp_path / "state"),
                           "--as-of", END.isoformat()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"{NAME}: stalled: policies/{NAME}.yaml:4: the energy query" in done.stdout
    assert f"(`greenops telemetry check {NAME}` shows what each query finds)" in done.stdout


def test_mlflow_server_with_basic_auth_uses_mlflows_credential_variables(
        tmp_path: Path, sqlite_mlflow: MlflowTelemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    with mlflow_server(tmp_path, auth=True) as url:
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        log_truth(MlflowTelemetry(url))
        with_credentials = load_history(policy(), Sources(MlflowTelemetry(url), None), END)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password")
        with pytest.raises(StalledError, match=r"refused to list experiments \(HTTP 401\): set MLFLOW_TRACKING_USER"):
            load_history(policy(), Sources(MlflowTelemetry(url), None), END)
    assert canonical(with_credentials) == canonical(load_history(policy(), Sources(sqlite_mlflow, None), END))


def test_prometheus_basic_auth_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    empty_mlflow: MlflowTelemetry) -> None:
    with prometheus_with_history(tmp_path, prometheus_samples(), auth=True) as url:
        monkeypatch.setenv("PROMETHEUS_USERNAME", PROMETHEUS_USER)
        monkeypatch.setenv("PROMETHEUS_PASSWORD", PROMETHEUS_PASSWORD)
        history = load_history(policy(**PROMETHEUS_POLICY), Sources(empty_mlflow, PrometheusTelemetry(url)), END)
        assert len(history.trainings) == len(truth()[0])
        monkeypatch.setenv("PROMETHEUS_PASSWORD", "wrong")
        with pytest.raises(StalledError, match=r"refused the query \(HTTP 401\): set PROMETHEUS_BEARER_TOKEN"):
            load_history(policy(**PROMETHEUS_POLICY), Sources(empty_mlflow, PrometheusTelemetry(url)), END)


def test_mlflow_carries_deploy_energy_training_window_and_drift(tmp_path: Path) -> None:
    telemetry = MlflowTelemetry(f"sqlite:///{tmp_path / 'mlflow.db'}", create=True)
    telemetry.log_training(NAME, "v1", END - timedelta(days=3), END - timedelta(days=3) + timedelta(minutes=5),
                           {"energy_kwh": 1.0, "deploy_energy_kwh": 0.25, "training_window_days": 14.0})
    days = [END - timedelta(days=2), END - timedelta(days=1)]
    telemetry.log_evaluations(NAME, "v1", "accuracy", [(days[0], 0.91), (days[1], 0.88)], drifts=[0.05, 0.3])
    telemetry.log_evaluations(NAME, "v0", "accuracy", [(days[1], 0.8)])  # no drift logged: None
    history = telemetry.history(NAME, "accuracy", "energy_kwh")
    (run,) = history.trainings
    assert (run.deploy_energy_kwh, run.training_window_days) == (0.25, 14.0)
    assert [(e.version, e.drift) for e in history.evaluations] == [("v1", 0.05), ("v0", None), ("v1", 0.3)]
