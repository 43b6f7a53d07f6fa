"""CPU a VM asks for, in millicores: the one formula the planner and the reports share."""

from __future__ import annotations

from collections.abc import Mapping


def requested_millicores(cores: int, fraction_percent: int) -> int:
    """dvp-api.md §2.4 requestedCores: ceil(cores x 1000m x fraction / 100)."""
    return -(-cores * 1000 * fraction_percent // 100)


def millicores_of(spec: Mapping[str, object]) -> int:
    """The guaranteed share a VM spec (as its domain's metadata keeps it) asks for; 0
    for a spec that does not say."""
    cpu = spec.get("cpu")
    if not isinstance(cpu, dict):
        return 0
    cores = cpu.get("cores", 0)
    fraction = str(cpu.get("coreFraction", "100%")).rstrip("%")
    if not isinstance(cores, int) or not fraction.isdigit():
        return 0
    return requested_millicores(cores, int(fraction))
