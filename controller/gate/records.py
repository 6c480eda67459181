"""What the gate did lately, in one line for the merge request and `greenops telemetry check`."""

from collections import Counter

from controller.telemetry.history import GateRecord


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def summarise(records: tuple[GateRecord, ...]) -> str | None:
    """``42 gate decisions: 9 retrains (rule 7, maxInterval 2), 33 skips; latest skip: ...``; None without any."""
    if not records:
        return None
    retrains = [r for r in records if r.decision == "retrain"]
    skips = [r for r in records if r.decision != "retrain"]
    by = Counter(r.by for r in retrains)
    detail = f" ({', '.join(f'{k} {v}' for k, v in sorted(by.items()))})" if by else ""
    fallbacks = sum(r.by == "fallback" for r in records)
    text = (f"{_count(len(records), 'gate decision')}: {_count(len(retrains), 'retrain')}{detail}, "
            f"{_count(len(skips), 'skip')}")
    if fallbacks:
        text += f"; {fallbacks} by the onTelemetryError fallback (the telemetry could not be used)"
    latest = records[-1]
    return f"{text}; latest ({latest.at.isoformat(timespec='minutes')}): {latest.decision}, {latest.reason}"
