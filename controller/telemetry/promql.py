"""PromQL built from policies: built-in presets for Kepler, CodeCarbon, CPU/memory usage and carbon intensity.

Every value that comes from a policy is escaped, so a policy can neither break a query nor widen
it (a pod prefix is matched literally, never as a regular expression).
"""

import re
from dataclasses import dataclass

KWH_PER_JOULE = 1 / 3.6e6
# Cloud Carbon Footprint's coefficients (AWS): watts per vCPU at full load, watts per GB of memory, PUE.
CCF_WATTS_PER_VCPU = 3.5
CCF_WATTS_PER_GB = 0.392
CCF_PUE = 1.135
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def escape_value(value: str) -> str:
    """A label value inside double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def literal_regex(prefix: str) -> str:
    """A regex (for ``=~``) matching ``prefix`` literally followed by anything, escaped for the quotes."""
    return escape_value(_RE2_SPECIAL.sub(r"\\\1", prefix) + ".+")


@dataclass(frozen=True)
class CounterQuery:
    """Series selectors of cumulative energy counters, one job per value of ``job_label``."""

    selectors: tuple[str, ...]
    job_label: str
    kwh_per_unit: float
    preset: str


@dataclass(frozen=True)
class UsageQuery:
    """CPU-seconds counter and memory gauge selectors for the estimate preset."""

    cpu_selector: str
    memory_selector: str
    job_label: str


def kepler_09(namespace: str, pod_prefix: str) -> CounterQuery:
    selector = (f'kepler_container_joules_total{{container_namespace="{escape_value(namespace)}",'
                f'pod_name=~"{literal_regex(pod_prefix)}"}}')
    return CounterQuery((selector,), "pod_name", KWH_PER_JOULE, "kepler-0.9")


def kepler_010(namespace: str, pod_prefix: str) -> CounterQuery:
    """Package + DRAM zones only: ``psys`` already contains them and would double count."""
    selector = (f'kepler_pod_cpu_joules_total{{pod_namespace="{escape_value(namespace)}",'
                f'pod_name=~"{literal_regex(pod_prefix)}",zone=~"package|dram"}}')
    return CounterQuery((selector,), "pod_name", KWH_PER_JOULE, "kepler-0.10")


def codecarbon(project_name: str) -> CounterQuery:
    selector = f'codecarbon_energy_total{{project_name="{escape_value(project_name)}"}}'
    return CounterQuery((selector,), "project_name", 1.0, "codecarbon")


def cpu_memory_usage(namespace: str, pod_prefix: str) -> UsageQuery:
    labels = f'namespace="{escape_value(namespace)}",pod=~"{literal_regex(pod_prefix)}",container!=""'
    return UsageQuery(f"container_cpu_usage_seconds_total{{{labels}}}",
                      f"container_memory_working_set_bytes{{{labels}}}", "pod")


def default_quality_query(policy_name: str, metric: str) -> str:
    return f'greenops_model_quality{{policy="{escape_value(policy_name)}",metric="{escape_value(metric)}"}}'


def default_carbon_query(zone: str) -> str:
    return f'grid_carbon_intensity_gco2_per_kwh{{zone="{escape_value(zone)}"}}'


def estimated_kwh(cpu_seconds: float, memory_gb_hours: float) -> float:
    """Cloud Carbon Footprint-style estimate: busy vCPU-hours and GB-hours of memory, times PUE."""
    watt_hours = cpu_seconds / 3600 * CCF_WATTS_PER_VCPU + memory_gb_hours * CCF_WATTS_PER_GB
    return watt_hours * CCF_PUE / 1000


def energy_query(selector: str | None, job_label: str, unit: str, preset: str, namespace: str, pod_prefix: str,
                 project_name: str) -> CounterQuery | UsageQuery:
    """The policy's energy query: its own counter selector, or one of the presets."""
    if selector:
        return CounterQuery((selector,), job_label, KWH_PER_JOULE if unit == "joules" else 1.0, "selector")
    if preset == "kepler-0.9":
        return kepler_09(namespace, pod_prefix)
    if preset == "codecarbon":
        return codecarbon(project_name)
    if preset == "cpu-memory-estimate":
        return cpu_memory_usage(namespace, pod_prefix)
    return kepler_010(namespace, pod_prefix)


def per_window(query: str, window_seconds: int) -> str:
    """The last value of ``query`` in each evaluation window (works for any expression, via a subquery)."""
    return f"last_over_time(({query})[{window_seconds}s:])"
