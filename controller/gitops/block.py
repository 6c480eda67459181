"""The hidden machine-readable block at the end of a merge request body.

It records what the request proposed (each policy's settings and figures, and a digest of the policy
fields the decision was computed from) or which generated files it removes, so that a later pass can
tell a declined proposal from a new one without any state of its own; and whether greenops closed the
request itself (then it was not declined by a person).
"""

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields, is_dataclass
from datetime import timedelta
from typing import Any

from controller.decision import Decision, Forecast
from controller.policy.model import Policy

MACHINE_BLOCK = "greenops-decision"
_BLOCK = re.compile(rf"<!-- {MACHINE_BLOCK} (\{{.*?\}}) -->", re.S)
# what names, places or runs a policy's job, not what the decision is computed from
NOT_DECISION_INPUTS = frozenset({"name", "namespace", "labels", "source_file", "source_line", "job", "mode",
                                 "proposal_group", "document_yaml"})


def _plain(value: object) -> object:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset):
        return sorted(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    raise TypeError(f"{type(value).__name__} is not part of a policy digest")


def policy_inputs(policy: Policy) -> str:
    """A digest of the policy fields the decision is computed from (SLO, budget, schedule bounds and allowed
    hours, promotion, training, gate, objective, telemetry, minSavingPercent): a declined proposal is reconsidered
    when they changed. The job, names, labels and mode are left out: they do not change the decision."""
    values = {f.name: getattr(policy, f.name) for f in fields(policy) if f.name not in NOT_DECISION_INPUTS}
    return hashlib.sha256(json.dumps(values, default=_plain, sort_keys=True).encode()).hexdigest()[:16]


def _finite(forecast: Forecast) -> dict[str, object]:
    """JSON has no NaN/inf: unknown figures become null. The weekly series is the chart's, not the record's."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(forecast).items()
            if k != "quality_by_week"}


def machine_block(policy: Policy, decision: Decision) -> dict[str, object]:
    return {"policy": decision.policy, "current": _finite(decision.current), "proposed": _finite(decision.proposed),
            "energy_estimated": decision.evidence.energy_estimated, "policy_inputs": policy_inputs(policy)}


def _comment(block: Mapping[str, object]) -> str:
    """``>`` escaped, so no text in the block can end the HTML comment early."""
    text = json.dumps(block, sort_keys=True).replace(">", "\\u003e")
    return f"<!-- {MACHINE_BLOCK} {text} -->"


def hidden_block(policies: Sequence[Policy], decisions: Sequence[Decision]) -> str:
    """Machine-readable: what was proposed, so a declined proposal is recognised later."""
    return _comment({"version": 1, "proposals": [machine_block(p, d)
                                                 for p, d in zip(policies, decisions, strict=True)]})


def removal_block(removed: Mapping[str, Sequence[str]]) -> str:
    """Machine-readable: the generated files a removal proposes to delete, by removed policy."""
    return _comment({"version": 1, "removed": [{"policy": name, "files": sorted(files)}
                                               for name, files in sorted(removed.items())]})


def read_block(body: str) -> dict[str, Any]:
    """The block of ``body``; empty when there is none or it does not parse (a hand-edited body)."""
    match = _BLOCK.search(body)
    if not match:
        return {}
    try:
        block = json.loads(match.group(1))
    except ValueError:
        return {}
    return block if isinstance(block, dict) else {}


def declined_proposals(body: str) -> dict[str, dict[str, Any]]:
    """The proposals a closed merge request held, by policy: ``proposed`` settings and figures, and the
    ``policy_inputs`` digest (absent in requests opened before greenops recorded it)."""
    block = read_block(body)
    proposals = block.get("proposals", [block] if "policy" in block else [])
    return {str(p["policy"]): p for p in proposals
            if isinstance(p, dict) and "policy" in p and isinstance(p.get("proposed"), dict)}


def declined_removals(body: str) -> dict[str, tuple[str, ...]]:
    """The files a closed removal request would have deleted, by removed policy."""
    removed = read_block(body).get("removed", [])
    return {str(r["policy"]): tuple(sorted(str(f) for f in r.get("files", []))) for r in removed
            if isinstance(r, dict) and "policy" in r} if isinstance(removed, list) else {}


def closed_by_greenops(body: str) -> bool:
    return read_block(body).get("closed_by") == "greenops"


def mark_closed(body: str, reason: str) -> str:
    """``body`` with a first line saying why greenops closed the request, and its block marked so: a request
    greenops closed is not a declined proposal."""
    block = {**(read_block(body) or {"version": 1}), "closed_by": "greenops", "closed_because": reason}
    text = _BLOCK.sub("", body).rstrip()
    return f"> **Closed by greenops:** {reason}\n\n{text}\n\n{_comment(block)}"
