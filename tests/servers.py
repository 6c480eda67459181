"""Real servers for integration tests, on loopback, each in its own process group and always stopped."""

import base64
import math
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .conftest import require_binary

OpenMetricsSample = tuple[str, dict[str, str], float, float]  # (name, labels, value, unix seconds)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float,
                      headers: dict[str, str]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server not ready after {timeout_s}s:\n{log.read_text()[-3000:]}")


@contextmanager
def running(command: list[str], ready_url: str, log: Path, timeout_s: float = 60,
            environment: dict[str, str] | None = None, ready_headers: dict[str, str] | None = None) -> Iterator[None]:
    """Start ``command`` in a new process group; stop the whole group on exit, whatever happens."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=environment)
    try:
        _wait_until_ready(ready_url, process, log, timeout_s, ready_headers or {})
        yield
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _label_text(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


def write_openmetrics(path: Path, samples: Iterable[OpenMetricsSample]) -> None:
    """Samples grouped by metric family and series, in time order, ending with ``# EOF``."""
    ordered = sorted(samples, key=lambda s: (s[0], _label_text(s[1]), s[3]))
    with path.open("w") as out:
        for name, labels, value, seconds in ordered:
            number = "NaN" if math.isnan(value) else repr(value)
            out.write(f"{name}{{{_label_text(labels)}}} {number} {seconds:.3f}\n")
        out.write("# EOF\n")


PROMETHEUS_USER, PROMETHEUS_PASSWORD = "greenops", "greenops-prom-pass"
# bcrypt (cost 4, so each request stays fast) of PROMETHEUS_PASSWORD, for Prometheus' --web.config.file
PROMETHEUS_PASSWORD_HASH = "$2b$04$jQoKDpNuKG1fzRM.FvqPROuhl/PNytJsBP3a3QULh.dERvG2N0lBa"


@contextmanager
def prometheus_with_history(root: Path, samples: Iterable[OpenMetricsSample], auth: bool = False) -> Iterator[str]:
    """A real Prometheus whose TSDB was backfilled with ``samples`` by promtool; yields its URL.

    With ``auth``, it requires basic auth (PROMETHEUS_USER / PROMETHEUS_PASSWORD).
    """
    promtool, prometheus = require_binary("promtool"), require_binary("prometheus")
    data = root / "tsdb"
    source = root / "history.om"
    write_openmetrics(source, samples)
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
                   check=True, capture_output=True)
    config = root / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}",
               "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}"]
    headers = {}
    if auth:
        web = root / "web.yml"
        web.write_text(f"basic_auth_users:\n  {PROMETHEUS_USER}: '{PROMETHEUS_PASSWORD_HASH}'\n")
        command.append(f"--web.config.file={web}")
        token = base64.b64encode(f"{PROMETHEUS_USER}:{PROMETHEUS_PASSWORD}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    with running(command, f"{url}/-/ready", root / "prometheus.log", ready_headers=headers):
        yield url


ADMIN_PASSWORD = "greenops-test-admin-password"


@contextmanager
def mlflow_server(root: Path, auth: bool = False) -> Iterator[str]:
    """A real `mlflow server` with a sqlite backend (with ``auth``: basic auth, user ``admin``); yields its URL."""
    mlflow = require_binary("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [mlflow, "server", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
               "--default-artifact-root", (root / "artifacts").as_uri(), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    environment = None
    if auth:
        config = root / "basic_auth.ini"
        config.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{root / 'auth.db'}\n"
                          f"admin_username = admin\nadmin_password = {ADMIN_PASSWORD}\n"
                          "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                          "auth_cache_ttl_seconds = 300\n")  # one password hash check, not one per request
        command += ["--app-name", "basic-auth"]
        environment = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config),
                       "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD, "MLFLOW_FLASK_SERVER_SECRET_KEY": "greenops-tests"}
    with running(command, f"{url}/health", root / "mlflow-server.log", timeout_s=120, environment=environment):
        yield url
