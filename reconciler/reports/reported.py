"""What the latest status reports remember for the fleet: where each VM runs, which disks
existed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from reconciler.api import ObjectId, VirtualDisk, VirtualMachine
from reconciler.engine.devices.disks import PROTECTED_FIELD, DiskRecord
from reconciler.model.phases import VMPhase
from reconciler.reports.documents import read_document, report_object_id
from reconciler.reports.scan import PerReport
from reconciler.reports.summary import readme_row


class VMReport(NamedTuple):
    """What the readers of the VM reports take from one (vm_reports)."""

    # The VM it is of; None for a file at which no report is ever written.
    vm_id: ObjectId | None
    # status.nodeName: the host that reports the VM ("" when none or unusable).
    node: str
    # Whether it says the VM left by live migration (phase Migrating), and the node it
    # goes to ("" when not said).
    migrating: bool
    migration_target: str
    # Its line of status/README.md; None when the file is no usable report.
    readme_row: str | None


def _vm_report(path: Path) -> VMReport:
    vm_id = report_object_id(path, VirtualMachine.KIND, namespaced=True)
    # Read once per change by every reader of the VM reports, and not kept: a fleet's
    # reports would otherwise stay in memory whole (see scan.py).
    document = read_document(path, keep=False)
    status = document.get("status") if isinstance(document, dict) else None
    if not isinstance(document, dict) or not isinstance(status, dict):
        # A report is advisory; a damaged one only loses its stickiness.
        row = None if vm_id is None or not isinstance(document, dict) else _row(vm_id, document)
        return VMReport(vm_id, "", False, "", row)
    node = status.get("nodeName")
    migrating = status.get("phase") == VMPhase.MIGRATING
    target_node = ""
    if migrating:
        state = status.get("migrationState")
        target = state.get("target") if isinstance(state, dict) else None
        found = target.get("node") if isinstance(target, dict) else None
        target_node = found if isinstance(found, str) else ""
    row = None if vm_id is None else _row(vm_id, document)
    return VMReport(vm_id, node if isinstance(node, str) else "", migrating, target_node, row)


def _row(vm_id: ObjectId, document: dict[str, Any]) -> str:
    status = document.get("status")
    metadata = document.get("metadata")
    created = ""
    if isinstance(metadata, dict):
        created = str(metadata.get("creationTimestamp", "") or "")
    return readme_row(vm_id, status if isinstance(status, dict) else {}, created)


_VM_REPORTS = PerReport(_vm_report)


def vm_reports(status_root: Path) -> list[tuple[str, VMReport]]:
    """Every file under status_root's VM folder, in the glob's order, with what it says:
    each file is read again only when it changed (scan.py)."""
    return _VM_REPORTS.over(status_root / VirtualMachine.PLURAL)


def reported_nodes(status_root: Path) -> dict[ObjectId, str]:
    """nodeName of every VirtualMachine report under status_root; unreadable ones are skipped."""
    return reported_placements(status_root)[0]


def reported_migrations(status_root: Path) -> dict[ObjectId, str]:
    """The node each VM whose report says Migrating goes to (status.migrationState): the
    host it leaves does not define it again once it is gone from there."""
    return reported_placements(status_root)[1]


def reported_placements(
    status_root: Path,
) -> tuple[dict[ObjectId, str], dict[ObjectId, str]]:
    """reported_nodes and reported_migrations from one listing of the reports."""
    nodes: dict[ObjectId, str] = {}
    migrations: dict[ObjectId, str] = {}
    for _name, report in vm_reports(status_root):
        if report.vm_id is None:
            continue
        if report.node:
            nodes[report.vm_id] = report.node
        if report.migration_target:
            migrations[report.vm_id] = report.migration_target
    return nodes, migrations


def _disk_record(path: Path) -> DiskRecord | None:
    document = read_document(path, keep=False)
    status = document.get("status") if isinstance(document, dict) else None
    target = status.get("target") if isinstance(status, dict) else None
    volume = target.get("persistentVolumeClaimName") if isinstance(target, dict) else None
    if not isinstance(volume, str) or not volume:
        return None
    disk_id = report_object_id(path, VirtualDisk.KIND, namespaced=True)
    if disk_id is None:
        return None
    assert isinstance(status, dict)
    # Anything but a plain false counts as protected: in doubt, keep the volume.
    protected = status.get(PROTECTED_FIELD, False) is not False
    return DiskRecord(disk_id, volume, protected)


_DISKS = PerReport(_disk_record)


def reported_disks(status_root: Path) -> dict[str, DiskRecord]:
    """The disks the latest VirtualDisk reports list, by the volume they name: the inventory
    that lets a deleted disk's volume go (engine/disks.py). A report that cannot be read,
    or names no volume, lists nothing, so its volume is kept."""
    found: dict[str, DiskRecord] = {}
    for _name, record in _DISKS.over(status_root / VirtualDisk.PLURAL):
        if record is not None:
            found[record.volume] = record
    return found
