"""Log lines as text (``level: policy: message``) or JSON lines, with the policy on every line.

The only python-json-logger import. Registered secrets are masked in both formats; tracebacks only
with GREENOPS_DEBUG (users see messages, not stacks).
"""

import logging
import os
import sys
from typing import Any

from controller.redact import scrub

HANDLER_NAME = "greenops"


class PolicyTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        policy = getattr(record, "policy", None)
        line = f"{record.levelname.lower()}: {policy + ': ' if policy else ''}{record.getMessage()}"
        if record.exc_info and os.environ.get("GREENOPS_DEBUG"):
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


def _json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, policy (null for the controller's own lines), message.
    Built on first use, so commands logging as text never import python-json-logger."""
    from pythonjsonlogger.json import JsonFormatter

    class PolicyJsonFormatter(JsonFormatter):
        def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                       message_dict: dict[str, Any]) -> None:
            super().add_fields(log_data, record, message_dict)
            log_data["policy"] = getattr(record, "policy", None)
            if record.exc_info and not os.environ.get("GREENOPS_DEBUG"):
                log_data.pop("exc_info", None)

        def format(self, record: logging.LogRecord) -> str:
            return scrub(super().format(record))

    return PolicyJsonFormatter("{asctime}{levelname}{name}{message}", style="{", datefmt="%Y-%m-%dT%H:%M:%S%z",
                               rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


def configure(level: str, fmt: str) -> None:
    """Send log lines to stderr in ``fmt`` (text or json)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_json_formatter() if fmt == "json" else PolicyTextFormatter())
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:  # ours only: others (pytest) stay
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
