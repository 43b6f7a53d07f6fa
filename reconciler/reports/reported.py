"""What the latest status reports remember for the fleet: where each VM runs, which disks
existed."""

from __future__ import annotations

from pathlib import Path

from reconciler.api import ObjectId, VirtualDisk, VirtualMachine
from reconciler.engine.devices.disks import PROTECTED_FIELD, DiskRecord
from reconciler.model.phases import VMPhase
from reconciler.reports.documents import read_document, report_object_id
from reconciler.reports.scan import PerReport


def _vm_placement(path: Path) -> tuple[ObjectId | None, str, str]:
    """A VM report's object, its nodeName and, when it says Migrating, the node the VM
    goes to ("" for each that is not there or not usable)."""
    document = read_document(path)
    status = document.get("status") if isinstance(document, dict) else None
    if not isinstance(status, dict):
        # A report is advisory; a damaged one only loses its stickiness.
        return None, "", ""
    vm_id = report_object_id(path, VirtualMachine.KIND, namespaced=True)
    node = status.get("nodeName")
    target_node = ""
    if status.get("phase") == VMPhase.MIGRATING:
        state = status.get("migrationState")
        target = state.get("target") if isinstance(state, dict) else None
        found = target.get("node") if isinstance(target, dict) else None
        target_node = found if isinstance(found, str) else ""
    return vm_id, node if isinstance(node, str) else "", target_node


_PLACEMENTS = PerReport(_vm_placement)


def reported_nodes(status_root: Path) -> dict[ObjectId, str]:
    """nodeName of every VirtualMachine report under status_root; unreadable ones are skipped."""
    found: dict[ObjectId, str] = {}
    for _name, (vm_id, node, _target) in _PLACEMENTS.over(status_root / "virtualmachines"):
        if node and vm_id is not None:
            found[vm_id] = node
    return found


def reported_migrations(status_root: Path) -> dict[ObjectId, str]:
    """The node each VM whose report says Migrating goes to (status.migrationState): the
    host it leaves does not define it again once it is gone from there."""
    found: dict[ObjectId, str] = {}
    for _name, (vm_id, _node, target) in _PLACEMENTS.over(status_root / "virtualmachines"):
        if target and vm_id is not None:
            found[vm_id] = target
    return found


def _disk_record(path: Path) -> DiskRecord | None:
    document = read_document(path)
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
