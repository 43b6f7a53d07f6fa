"""The human summaries of status/: a README table of VMs and one report per host."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import __version__
from reconciler.api import ObjectId
from reconciler.api.quantity import Quantity, QuantityError, format_bytes
from reconciler.model.conditions import VMCondition

COLUMNS = (
    "NAMESPACE",
    "NAME",
    "PHASE",
    "CORES",
    "COREFRACTION",
    "MEMORY",
    "NEED RESTART",
    "AGENT",
    "MIGRATABLE",
    "NODE",
    "IPADDRESS",
    "CREATED",
)


def _condition(status: Mapping[str, Any], kind: str) -> str:
    for condition in status.get("conditions", []):
        if condition.get("type") == kind:
            return "True" if condition.get("status") == "True" else "False"
    return "False"


def vm_row(object_id: ObjectId, status: Mapping[str, Any], created: str = "") -> tuple[str, ...]:
    """One line of `d8 k get vm -o wide`, with the creation date in place of AGE so the
    table does not change by itself."""
    cpu = status.get("resources", {}).get("cpu", {})
    memory = status.get("resources", {}).get("memory", {})
    return (
        object_id.namespace,
        object_id.name,
        str(status.get("phase", "")),
        str(cpu.get("cores", "")),
        str(cpu.get("coreFraction", "")),
        str(memory.get("size", "")),
        "True" if status.get("restartAwaitingChanges") else "False",
        _condition(status, VMCondition.AGENT_READY),
        _condition(status, VMCondition.MIGRATABLE),
        str(status.get("nodeName", "")),
        str(status.get("ipAddress", "")),
        created,
    )


def fleet_readme(
    statuses: Mapping[ObjectId, Mapping[str, Any]],
    created: Mapping[ObjectId, str],
    nodes: Mapping[str, Mapping[str, Any]],
) -> str:
    """status/README.md: every VM of the fleet, then every host; nothing in it changes
    unless a report does."""
    rows = {vm: readme_row(vm, statuses[vm], created.get(vm, "")) for vm in statuses}
    return readme_of_rows(rows, nodes)


def readme_row(object_id: ObjectId, status: Mapping[str, Any], created: str = "") -> str:
    """A VM's line of the README's table."""
    return "| " + " | ".join(_cell(cell) for cell in vm_row(object_id, status, created)) + " |"


def readme_of_rows(rows: Mapping[ObjectId, str], nodes: Mapping[str, Mapping[str, Any]]) -> str:
    """fleet_readme from each VM's line (readme_row), made once per report that changed."""
    return readme_of_lines([rows[object_id] for object_id in sorted(rows)], nodes)


def readme_of_lines(rows: Iterable[str], nodes: Mapping[str, Mapping[str, Any]]) -> str:
    """readme_of_rows from the VMs' lines in the order of their VMs."""
    lines = [
        "# Status",
        "",
        "Written by vm-reconciler; do not edit. One report per object in the folders beside"
        " this file.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + " --- |" * len(COLUMNS),
    ]
    lines.extend(rows)
    if nodes:
        lines += [
            "",
            "| HOST | VMS | LAST APPLIED REVISION | LAST ERROR |",
            "| --- | --- | --- | --- |",
        ]
        for name in sorted(nodes):
            node = nodes[name]
            count = node.get("virtualMachines", {}).get("total", 0)
            revision = str(node.get("lastAppliedRevision", "") or "")[:12]
            error = str(node.get("lastError", "") or "")
            host = f"{name} {_maintenance(node.get('drain'))}".rstrip()
            lines.append(f"| {_cell(host)} | {count} | {_cell(revision)} | {_cell(error)} |")
    return "\n".join(lines) + "\n"


def _maintenance(drain: Any) -> str:
    """A drained host's state beside its name: `(Drained)`, `(Draining: 2 running)`."""
    if not isinstance(drain, Mapping) or drain.get("phase") not in _DRAIN_PHASES:
        return ""
    running = drain.get("running")
    if drain["phase"] == "Drained" or not isinstance(running, int):
        return f"({drain['phase']})"
    return f"({drain['phase']}: {running} running)"


_DRAIN_PHASES = frozenset({"Drained", "Draining", "Blocked"})


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def node_status(
    node_name: str,
    capacity_millicores: int,
    statuses: Mapping[ObjectId, Mapping[str, Any]],
    revision: str,
    last_error: str,
    capacity_memory_bytes: int | None = None,
) -> dict[str, Any]:
    """The host's Node report. `capacity` is the guaranteed CPU and memory the host offers
    (its Node manifest's when stated, else what libvirt counts), which the fleet's
    placement reads back (reported_capacity.py); `allocated` what its running VMs hold."""
    phases = Counter(str(status.get("phase", "")) for status in statuses.values())
    held = allocated(statuses)
    capacity = {"cpu": cpu_quantity(capacity_millicores)}
    if capacity_memory_bytes is not None:
        capacity["memory"] = format_bytes(capacity_memory_bytes)
    return {
        "capacity": capacity,
        "allocated": {"cpu": cpu_quantity(held.millicores), "memory": format_bytes(held.bytes)},
        "guaranteedCPUInUse": f"{held.millicores}m",
        "virtualMachines": {"total": len(statuses), **dict(sorted(phases.items()))},
        "lastAppliedRevision": revision,
        "lastError": last_error,
        "version": __version__,
    }


class Held:
    """Guaranteed CPU (millicores) and memory (bytes) that running VMs hold."""

    __slots__ = ("bytes", "millicores")

    def __init__(self, millicores: int = 0, memory_bytes: int = 0) -> None:
        self.millicores = millicores
        self.bytes = memory_bytes


def allocated(statuses: Mapping[ObjectId, Mapping[str, Any]]) -> Held:
    """What the VMs of these reports hold while they run: a VM reports its requestedCores
    only while its domain is active (engine/vm/status.py), and holds its memory then."""
    held = Held()
    for status in statuses.values():
        resources = status.get("resources", {})
        requested = resources.get("cpu", {}).get("requestedCores")
        if not requested:
            continue
        text = str(requested)
        held.millicores += int(text[:-1]) if text.endswith("m") else int(text) * 1000
        size = resources.get("memory", {}).get("size")
        # Written by this host from a checked spec, so always a quantity; still, a
        # report is no place for a pass to fail.
        with contextlib.suppress(QuantityError):
            held.bytes += Quantity(str(size)).bytes if size is not None else 0
    return held


def cpu_quantity(millicores: int) -> str:
    """Whole cores as a plain number (`4`), anything else in millicores (`2500m`)."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"
