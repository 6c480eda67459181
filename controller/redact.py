"""Credentials embedded in URLs (https://user:token@host) never reach logs, messages or merge requests."""

from urllib.parse import urlsplit


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
