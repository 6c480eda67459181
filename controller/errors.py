"""Outcomes of a failed step: the user must act (stalled) or we retry later (transient)."""


class StalledError(Exception):
    """The user must change something (policy, telemetry, repository) before a retry can help."""


class TransientError(Exception):
    """A dependency failed (network, server, push race); the next pass retries."""


class SignalStalledError(StalledError):
    """A telemetry query found nothing usable; `greenops telemetry check` shows what each query returns."""


class BrokenInstallError(Exception):
    """greenops itself is installed incompletely (a packaged file is missing): reinstalling fixes it."""
