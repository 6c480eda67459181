"""Credentials (in URLs such as https://user:token@host, and forge tokens) never reach logs, messages or merge
requests."""

import os
from urllib.parse import urlsplit

# Telemetry credentials read from the environment (by MLflow's client, and by greenops for Prometheus).
CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "PROMETHEUS_BEARER_TOKEN",
                        "PROMETHEUS_PASSWORD")


def redact(url: str, text: str) -> str:
    """``text`` with the userinfo of ``url`` masked wherever it appears as ``userinfo@``, and its password anywhere."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    if "@" not in parts.netloc:
        return text
    userinfo = parts.netloc.rsplit("@", 1)[0]
    text = text.replace(f"{userinfo}@", "***@")
    if parts.password and len(parts.password) >= 4:
        text = text.replace(parts.password, "***")
    return text


def safe_url(url: str) -> str:
    return redact(url, url)


_SECRETS: set[str] = set()
MASK = "***"


def register_secret(secret: str) -> None:
    """Remember a token read from the environment or a file, so ``scrub`` masks it everywhere."""
    if len(secret) >= 4:
        _SECRETS.add(secret)


def register_environment_secrets() -> None:
    """Mask the telemetry credentials too: a server's error message may echo what it was sent."""
    for variable in CREDENTIAL_VARIABLES:
        register_secret(os.environ.get(variable, ""))


def scrub(text: str) -> str:
    """``text`` with every registered secret masked."""
    for secret in _SECRETS:
        text = text.replace(secret, MASK)
    return text
