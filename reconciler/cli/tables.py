"""The rows of `reconciler get`: one listed object, its table columns, and kubectl's AGE.

Columns follow `d8 k get` as reference/dvp-virtual-machines.txt shows it; a cell the
reports and manifests know nothing about stays empty, as kubectl prints a missing
field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.api import ObjectId
from reconciler.model.conditions import DiskCondition
from reconciler.reports.summary import COLUMNS as README_COLUMNS
from reconciler.reports.summary import vm_row

# kubectl's tabwriter: cells padded by three spaces, a column at least six wide.
PADDING = 3
MIN_WIDTH = 6
UNKNOWN_AGE = "<unknown>"


@dataclass(frozen=True)
class Listed:
    """One object as `get` shows it: the manifest's part and the report's part."""

    object_id: ObjectId
    api_version: str
    manifest: Mapping[str, Any] | None = None
    status: Mapping[str, Any] | None = None
    created: str = ""

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = (self.manifest or {}).get("spec")
        return spec if isinstance(spec, Mapping) else {}

    @property
    def reported(self) -> Mapping[str, Any]:
        return self.status or {}

    def document(self) -> dict[str, Any]:
        """The object as `kubectl get -o yaml` prints it: manifest spec, reported status."""
        source = (self.manifest or {}).get("metadata")
        metadata: dict[str, Any] = dict(source) if isinstance(source, Mapping) else {}
        metadata["name"] = self.object_id.name
        if self.object_id.namespace:
            metadata["namespace"] = self.object_id.namespace
        if self.created:
            metadata["creationTimestamp"] = self.created
        document: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.object_id.kind,
            "metadata": metadata,
        }
        if self.manifest is not None and "spec" in self.manifest:
            document["spec"] = self.manifest["spec"]
        if self.status is not None:
            document["status"] = dict(self.status)
        return document


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def human_age(created: str, now: datetime) -> str:
    """AGE as kubectl prints it (apimachinery's duration.HumanDuration)."""
    moment = parse_time(created) if created else None
    if moment is None:
        return UNKNOWN_AGE
    return human_duration(int((now - moment).total_seconds()))


def human_duration(seconds: int) -> str:
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years, rest = divmod(days, 365)
    if years < 8:
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns as kubectl's tabwriter lays them out; the last is not padded."""
    lines = [list(header), *(list(row) for row in rows)]
    widths = [
        max(MIN_WIDTH, max(len(line[index]) for line in lines) + PADDING)
        for index in range(len(header))
    ]
    rendered = []
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=False)]
        rendered.append(("".join(cells) + line[-1]).rstrip())
    return "\n".join(rendered)


Row = Callable[[Listed], list[str]]


@dataclass(frozen=True)
class Columns:
    header: tuple[str, ...]
    row: Row
    wide_header: tuple[str, ...] | None = None
    wide_row: Row | None = None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _vm_cells(listed: Listed) -> list[str]:
    """NAME to IPADDRESS of `-o wide`; a VM no host has reported yet has only a name
    (summary.vm_row would print False for its unknown conditions)."""
    cells = list(vm_row(listed.object_id, listed.reported)[1:-1])
    if listed.status is None:
        return [cells[0], *("" for _ in cells[1:])]
    return cells


def _vm(listed: Listed) -> list[str]:
    cells = _vm_cells(listed)
    return [cells[0], cells[1], cells[8], cells[9]]


def _vm_wide(listed: Listed) -> list[str]:
    return _vm_cells(listed)


def _vmip(listed: Listed) -> list[str]:
    status = listed.reported
    address = status.get("address") or listed.spec.get("staticIP")
    return [
        listed.object_id.name,
        _text(address),
        _text(status.get("phase")),
        _text(status.get("virtualMachineName")),
    ]


def _vmipl(listed: Listed) -> list[str]:
    # A lease's reference is in its report (no manifest exists), or implied from a VM's.
    ref = listed.reported.get("virtualMachineIPAddressRef") or listed.spec.get(
        "virtualMachineIPAddressRef"
    )
    return [
        listed.object_id.name,
        json.dumps(ref, separators=(",", ":")) if ref else "",
        _text(listed.reported.get("phase")),
    ]


def _vd(listed: Listed) -> list[str]:
    claim = listed.spec.get("persistentVolumeClaim")
    wanted = claim.get("size") if isinstance(claim, Mapping) else None
    capacity = listed.reported.get("capacity") or wanted
    return [listed.object_id.name, _text(listed.reported.get("phase")), _text(capacity)]


def _vd_wide(listed: Listed) -> list[str]:
    """The platform's priority-1 columns too: InUse (the condition's status), Progress,
    StorageClass (here the libvirt pool), TargetPVC (here the volume)."""
    status = listed.reported
    in_use = next(
        (
            c.get("status")
            for c in status.get("conditions", [])
            if isinstance(c, Mapping) and c.get("type") == DiskCondition.IN_USE
        ),
        None,
    )
    target = status.get("target")
    volume = target.get("persistentVolumeClaimName") if isinstance(target, Mapping) else None
    return [
        *_vd(listed),
        _text(in_use),
        _text(status.get("progress")),
        _text(status.get("storageClassName")),
        _text(volume),
    ]


def _vmop(listed: Listed) -> list[str]:
    return [
        listed.object_id.name,
        _text(listed.reported.get("phase")),
        _text(listed.spec.get("type")),
        _text(listed.spec.get("virtualMachineName")),
    ]


def _vmbda(listed: Listed) -> list[str]:
    return [
        listed.object_id.name,
        _text(listed.reported.get("phase")),
        _text(listed.spec.get("virtualMachineName")),
    ]


def _vmbda_wide(listed: Listed) -> list[str]:
    ref = listed.spec.get("blockDeviceRef")
    ref = ref if isinstance(ref, Mapping) else {}
    name, phase, vm = _vmbda(listed)
    return [name, phase, _text(ref.get("kind")), _text(ref.get("name")), vm]


def _phase_only(listed: Listed) -> list[str]:
    return [listed.object_id.name, _text(listed.reported.get("phase"))]


# The README's columns (d8 k get vm -o wide) between NAMESPACE and the creation date.
VM_WIDE = README_COLUMNS[1:-1]

# Without the AGE column, which every kind ends with.
COLUMNS: dict[str, Columns] = {
    "VirtualMachine": Columns(("NAME", "PHASE", "NODE", "IPADDRESS"), _vm, VM_WIDE, _vm_wide),
    "VirtualMachineIPAddress": Columns(("NAME", "ADDRESS", "STATUS", "VM"), _vmip),
    "VirtualMachineIPAddressLease": Columns(("NAME", "VIRTUALMACHINEIPADDRESS", "STATUS"), _vmipl),
    "VirtualDisk": Columns(
        ("NAME", "PHASE", "CAPACITY"),
        _vd,
        ("NAME", "PHASE", "CAPACITY", "INUSE", "PROGRESS", "STORAGECLASS", "TARGETPVC"),
        _vd_wide,
    ),
    "VirtualMachineOperation": Columns(("NAME", "PHASE", "TYPE", "VIRTUALMACHINE"), _vmop),
    "VirtualMachineBlockDeviceAttachment": Columns(
        ("NAME", "PHASE", "VIRTUAL MACHINE NAME"),
        _vmbda,
        ("NAME", "PHASE", "BLOCKDEVICE KIND", "BLOCKDEVICE NAME", "VIRTUAL MACHINE NAME"),
        _vmbda_wide,
    ),
    "VirtualMachineClass": Columns(("NAME", "PHASE"), _phase_only),
}


def object_table(
    items: Sequence[Listed], *, wide: bool, all_namespaces: bool, now: datetime
) -> str:
    """The `get` table of one kind, AGE last and NAMESPACE first across namespaces."""
    columns = COLUMNS[items[0].object_id.kind]
    header = columns.wide_header if wide and columns.wide_header else columns.header
    row = columns.wide_row if wide and columns.wide_row else columns.row
    rows = []
    for listed in items:
        cells = [*row(listed), human_age(listed.created, now)]
        rows.append([listed.object_id.namespace, *cells] if all_namespaces else cells)
    full_header = [*header, "AGE"]
    return render_table(["NAMESPACE", *full_header] if all_namespaces else full_header, rows)
