"""/metrics, /healthz and /readyz on one small HTTP server (a thread of `greenops run`).

/healthz answers 200 while the scheduler runs (liveness); /readyz answers 200 once every policy has
had a first pass (readiness), 503 before and while shutting down.
"""

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from controller.runtime.metrics import CONTENT_TYPE


class HealthServer:
    def __init__(self, host: str, port: int, metrics: Callable[[], bytes], alive: Callable[[], bool],
                 ready: Callable[[], bool]) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE, metrics()),
            "/healthz": lambda: (200, "text/plain", b"ok\n") if alive() else (503, "text/plain", b"stopped\n"),
            "/readyz": lambda: (200, "text/plain", b"ready\n") if ready() else (503, "text/plain", b"not ready\n"),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, content_type, body = route() if route else (404, "text/plain", b"not found\n")
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: not logged
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
