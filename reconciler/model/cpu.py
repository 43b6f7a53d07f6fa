"""CPU a VM asks for, in millicores: the one formula the planner and the reports share."""

from __future__ import annotations


def requested_millicores(cores: int, fraction_percent: int) -> int:
    """dvp-api.md §2.4 requestedCores: ceil(cores x 1000m x fraction / 100)."""
    return -(-cores * 1000 * fraction_percent // 100)
