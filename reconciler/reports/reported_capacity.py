"""The guaranteed capacity each host states in its own Node report, for placement.

A host writes `status.capacity` (`cpu`, `memory`: Kubernetes quantities) into its Node
report every pass (summary.node_status). Placement uses it for a Node whose manifest
does not state a capacity (engine/fleet/placement.fleet). Anyone who can push can write
a report, so each number is checked: a quantity, whole and non-negative, and no larger
than a Node manifest may state. A capacity that fails is ignored (that Node is then
unlimited, as before it ever reported), logged once per report and problem; the rest
of the report is still used.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from reconciler.api import ObjectId
from reconciler.api.meta import INT32_MAX
from reconciler.api.node import Node
from reconciler.api.quantity import MAX_MEMORY_BYTES, QuantityError, parse_quantity
from reconciler.engine.fleet.placement import ReportedCapacity
from reconciler.reports.documents import read_document, report_object_id
from reconciler.reports.scan import PerReport

log = logging.getLogger("reconciler.reports")

# The bounds of a Node manifest's spec.capacity (api/node.py): a report may claim no more.
MAX_REPORTED_MILLICORES = INT32_MAX * 1000
MAX_REPORTED_MEMORY_BYTES = MAX_MEMORY_BYTES

# Report path -> the problem last logged for its capacity: each is logged once, not at
# every pass that reads the same report.
_LOGGED: dict[str, str] = {}


class _Stated(NamedTuple):
    """What one Node report says of its capacity (None when it states none)."""

    node_id: ObjectId | None
    capacity: ReportedCapacity | None
    problem: str
    stated: bool


def _stated(path: Path) -> _Stated:
    document = read_document(path)
    status = document.get("status") if isinstance(document, dict) else None
    stated = status.get("capacity") if isinstance(status, dict) else None
    node_id = report_object_id(path, Node.KIND, namespaced=False)
    if stated is None or node_id is None:
        return _Stated(node_id, None, "", False)
    return _Stated(node_id, *capacity_of(stated), True)


# Parsed again only for a report that changed: a fleet of a hundred hosts has a hundred
# reports, each with two quantities, at every pass.
_STATED = PerReport(_stated)


def reported_capacities(status_root: Path) -> dict[str, ReportedCapacity]:
    """The capacity every Node report under status_root states, by Node name; a report
    that cannot be read, or states none that passes the checks, gives none."""
    found: dict[str, ReportedCapacity] = {}
    seen: set[str] = set()
    for name, stated in _STATED.over(status_root / Node.PLURAL, nested=False):
        seen.add(name)
        if not stated.stated or stated.node_id is None:
            _LOGGED.pop(name, None)
            continue
        _note(name, stated.node_id, stated.problem)
        if stated.capacity is not None:
            found[stated.node_id.name] = stated.capacity
    for gone in [name for name in _LOGGED if name not in seen]:
        del _LOGGED[gone]
    return found


def capacity_of(stated: Any) -> tuple[ReportedCapacity | None, str]:
    """The capacity a report's `status.capacity` states, or None and why it is ignored."""
    if not isinstance(stated, dict):
        return None, "status.capacity must be a mapping"
    cpu, cpu_problem = _quantity(stated.get("cpu"), "cpu", Fraction(1000), MAX_REPORTED_MILLICORES)
    memory, memory_problem = _quantity(
        stated.get("memory"), "memory", Fraction(1), MAX_REPORTED_MEMORY_BYTES
    )
    problem = cpu_problem or memory_problem
    if problem:
        return None, problem
    return ReportedCapacity(cpu, memory), ""


def _quantity(raw: Any, field: str, unit: Fraction, most: int) -> tuple[int | None, str]:
    """`raw` in whole units (millicores, bytes), rounded down: a host never counts on
    more than it stated. None when the report does not state it."""
    if raw is None:
        return None, ""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        return None, f"status.capacity.{field} must be a quantity such as 8 or 16Gi"
    try:
        value = parse_quantity(str(raw)) * unit
    except QuantityError as error:
        return None, f"status.capacity.{field}: {error}"
    whole = value.numerator // value.denominator
    if whole > most:
        return None, f"status.capacity.{field} {str(raw)[:40]} is more than a Node may state"
    return whole, ""


def _note(name: str, node_id: ObjectId, problem: str) -> None:
    if not problem:
        _LOGGED.pop(name, None)
    elif _LOGGED.get(name) != problem:
        log.warning(
            "%s: Node %s: its report's capacity is ignored: %s", name, node_id.name, problem
        )
        _LOGGED[name] = problem
