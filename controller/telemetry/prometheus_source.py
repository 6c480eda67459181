"""Prometheus as a telemetry source. The only module that imports prometheus-api-client.

Two kinds of bounded reads:
- raw samples of counter selectors, one range-vector instant query per day of history (exact
  sample timestamps, so job windows and energy are exact);
- gauges (quality, carbon intensity) by range queries whose step and chunking keep every
  request under Prometheus' 11,000-points-per-series limit.
Bad queries are the user's to fix (stalled); an unreachable or slow server is transient.
"""

import math
import os
import re
from datetime import datetime, timedelta
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from controller.errors import SignalStalledError, StalledError, TransientError
from controller.redact import safe_url
from controller.telemetry.series import Sample, Series

MAX_POINTS_PER_QUERY = 10_000
RAW_CHUNK = timedelta(days=1)
DEFAULT_TIMEOUT_S = 30


def _auth_headers() -> dict[str, str] | None:
    token = os.environ.get("PROMETHEUS_BEARER_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else None


def _basic_auth() -> tuple[str, str] | None:
    user, password = os.environ.get("PROMETHEUS_USERNAME"), os.environ.get("PROMETHEUS_PASSWORD")
    return (user, password) if user and password else None


def _status_code(message: str) -> int | None:
    """The HTTP status prometheus-api-client puts in its error message ("HTTP Status Code 401 (...)")."""
    found = re.match(r"HTTP Status Code (\d{3})", message)
    return int(found.group(1)) if found else None


def _finite_samples(values: list[Any]) -> list[Sample]:
    """Samples as floats; NaN and infinities (a 0/0 ratio, a stale marker) carry no information."""
    samples = ((float(t), float(v)) for t, v in values)
    return [(t, v) for t, v in samples if math.isfinite(v)]


class PrometheusTelemetry:
    def __init__(self, url: str, timeout_s: int = DEFAULT_TIMEOUT_S) -> None:
        self.url = safe_url(url)  # for messages: never the credentials
        retry = Retry(total=1, backoff_factor=0.5, status_forcelist=(502, 503, 504), allowed_methods=("GET",))
        self._client = PrometheusConnect(url=url, headers=_auth_headers(), auth=_basic_auth(), retry=retry,
                                         timeout=timeout_s)

    def _call(self, query: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except PrometheusApiClientException as err:
            status = _status_code(str(err))
            if status in (401, 403):
                raise StalledError(f"Prometheus at {self.url} refused the query (HTTP {status}): set "
                                   "PROMETHEUS_BEARER_TOKEN, or PROMETHEUS_USERNAME and PROMETHEUS_PASSWORD") from err
            if status is not None and status >= 500:
                raise TransientError(f"Prometheus at {self.url} failed (HTTP {status}) while running {query}") from err
            raise SignalStalledError(f"Prometheus at {self.url} rejected the query {query}: {err}; fix the query "
                                     "in the policy") from err
        except (requests.RequestException, OSError) as err:
            raise TransientError(f"Prometheus at {self.url} is unreachable or too slow ({type(err).__name__}) "
                                 f"while running {query}") from err

    def raw_series(self, selector: str, start: datetime, end: datetime) -> list[Series]:
        """Every raw sample of ``selector`` in ``(start, end]``, one query per day, merged per series."""
        merged: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
        moment = start
        while moment < end:
            until = min(moment + RAW_CHUNK, end)
            query = f"{selector}[{int((until - moment).total_seconds() * 1000)}ms]"
            result = self._call(selector, self._client.custom_query, query, params={"time": until.timestamp()})
            for item in result:
                samples = merged.setdefault(tuple(sorted(item["metric"].items())), {})
                samples.update(_finite_samples(item.get("values", [])))
            moment = until
        return [(dict(labels), sorted(samples.items())) for labels, samples in sorted(merged.items())]

    def gauge_series(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[Series]:
        """``query`` evaluated every ``step`` over ``[start, end]``, in chunks of at most 10,000 points."""
        merged: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
        chunk = step * (MAX_POINTS_PER_QUERY - 1)
        moment = start
        while moment <= end:
            until = min(moment + chunk, end)
            result = self._call(query, self._client.custom_query_range, query, start_time=moment, end_time=until,
                                step=f"{int(step.total_seconds())}s")
            for item in result:
                merged.setdefault(tuple(sorted(item["metric"].items())), []).extend(
                    _finite_samples(item.get("values", [])))
            moment = until + step
        return [(dict(labels), sorted(set(samples))) for labels, samples in sorted(merged.items())]
