"""What `greenops run` exports on /metrics. The only prometheus_client import.

Names follow Prometheus conventions (base units, ``_total`` for counters); every per-policy series
carries the label ``policy``. The Grafana dashboard and the metrics reference in the README use
exactly these names.
"""

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controller.decision import Decision

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.passes = Counter("greenops_reconcile_total", "Reconcile passes per policy, by outcome",
                              ["policy", "outcome"], registry=self.registry)
        self.duration = Histogram("greenops_reconcile_duration_seconds", "Duration of one policy's reconcile pass",
                                  ["policy", "outcome"], registry=self.registry,
                                  buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
        self.retrains = Gauge("greenops_retrains_per_month", "Retrains per 30 days of the current and the proposed "
                              "schedule", ["policy", "schedule"], registry=self.registry)
        self.energy_saving = Gauge("greenops_predicted_energy_saving_kwh", "Predicted energy saved per budget "
                                   "period by the proposed schedule against the current one", ["policy"],
                                   registry=self.registry)
        self.carbon_saving = Gauge("greenops_predicted_carbon_saving_kg", "Predicted carbon saved per budget period "
                                   "(kgCO2e) by the proposed schedule against the current one", ["policy"],
                                   registry=self.registry)
        self.compliance = Gauge("greenops_predicted_slo_compliance_ratio", "Predicted SLO compliance (lower bound) "
                                "of the schedule", ["policy", "schedule"], registry=self.registry)
        self.proposing = Gauge("greenops_proposal_open", "1 when greenops proposes a change for the policy",
                               ["policy"], registry=self.registry)
        self.last_success = Gauge("greenops_last_successful_reconcile_timestamp_seconds", "When the policy's last "
                                  "pass ended ok (Unix time)", ["policy"], registry=self.registry)

    def record(self, policy: str, outcome: str, seconds: float, decision: Decision | None, now: float) -> None:
        self.passes.labels(policy, outcome).inc()
        self.duration.labels(policy, outcome).observe(seconds)
        if outcome == "ok":
            self.last_success.labels(policy).set(now)
        if decision is None:
            return
        # Without a proposal the schedule stays as it is: the search's best is not what will run.
        proposed = decision.proposed if decision.propose else decision.current
        for label, forecast in (("current", decision.current), ("proposed", proposed)):
            self.retrains.labels(policy, label).set(forecast.retrains_per_month)
            self.compliance.labels(policy, label).set(forecast.compliance_lower)
        self.energy_saving.labels(policy).set(decision.current.energy_kwh_per_period - proposed.energy_kwh_per_period)
        self.carbon_saving.labels(policy).set(decision.current.carbon_kg_per_period - proposed.carbon_kg_per_period)
        self.proposing.labels(policy).set(1.0 if decision.propose else 0.0)

    def forget(self, policy: str) -> None:
        """Drop the gauges of a policy that left the repository, so dashboards do not show stale values."""
        for gauge in (self.energy_saving, self.carbon_saving, self.proposing, self.last_success):
            _remove(gauge, policy)
        for gauge in (self.retrains, self.compliance):
            for schedule in ("current", "proposed"):
                _remove(gauge, policy, schedule)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        gauge.remove(*labels)
