"""Condition times across passes: a condition keeps its lastTransitionTime until its
status flips."""

from __future__ import annotations

from typing import Any


def carry_condition_times(
    status: dict[str, Any], previous: dict[str, Any] | None, now: str
) -> dict[str, Any]:
    """`status` with every condition's lastTransitionTime: the earlier one when the
    condition's status did not change, else `now`."""
    earlier = {
        c.get("type"): c
        for c in (previous or {}).get("conditions", [])
        if isinstance(c, dict) and c.get("lastTransitionTime")
    }
    conditions = []
    for condition in status.get("conditions", []):
        before = earlier.get(condition.get("type"))
        since = now
        if before and before.get("status") == condition.get("status"):
            since = str(before["lastTransitionTime"])
        conditions.append({**condition, "lastTransitionTime": since})
    if "conditions" in status:
        return {**status, "conditions": conditions}
    return dict(status)
