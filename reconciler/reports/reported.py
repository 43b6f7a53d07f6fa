"""What the latest status reports remember for the fleet: where each VM runs, which disks
existed."""

from __future__ import annotations

from pathlib import Path

from reconciler.api import ObjectId, VirtualDisk, VirtualMachine
from reconciler.engine.devices.disks import PROTECTED_FIELD, DiskRecord
from reconciler.model.phases import VMPhase
from reconciler.reports.documents import read_document, report_object_id


def reported_nodes(status_root: Path) -> dict[ObjectId, str]:
    """nodeName of every VirtualMachine report under status_root; unreadable ones are skipped."""
    found: dict[ObjectId, str] = {}
    for path in sorted((status_root / "virtualmachines").glob("*/*.yaml")):
        document = read_document(path)
        if not isinstance(document, dict):
            continue  # a report is advisory; a damaged one only loses its stickiness
        status = document.get("status")
        node = status.get("nodeName") if isinstance(status, dict) else None
        vm_id = report_object_id(path, VirtualMachine.KIND, namespaced=True)
        if isinstance(node, str) and node and vm_id is not None:
            found[vm_id] = node
    return found


def reported_migrations(status_root: Path) -> dict[ObjectId, str]:
    """The node each VM whose report says Migrating goes to (status.migrationState): the
    host it leaves does not define it again once it is gone from there."""
    found: dict[ObjectId, str] = {}
    for path in sorted((status_root / "virtualmachines").glob("*/*.yaml")):
        document = read_document(path)
        status = document.get("status") if isinstance(document, dict) else None
        if not isinstance(status, dict) or status.get("phase") != VMPhase.MIGRATING:
            continue
        state = status.get("migrationState")
        target = state.get("target") if isinstance(state, dict) else None
        node = target.get("node") if isinstance(target, dict) else None
        vm_id = report_object_id(path, VirtualMachine.KIND, namespaced=True)
        if isinstance(node, str) and node and vm_id is not None:
            found[vm_id] = node
    return found


def reported_disks(status_root: Path) -> dict[str, DiskRecord]:
    """The disks the latest VirtualDisk reports list, by the volume they name: the inventory
    that lets a deleted disk's volume go (engine/disks.py). A report that cannot be read,
    or names no volume, lists nothing, so its volume is kept."""
    found: dict[str, DiskRecord] = {}
    for path in sorted((status_root / VirtualDisk.PLURAL).glob("*/*.yaml")):
        document = read_document(path)
        status = document.get("status") if isinstance(document, dict) else None
        target = status.get("target") if isinstance(status, dict) else None
        volume = target.get("persistentVolumeClaimName") if isinstance(target, dict) else None
        disk_id = report_object_id(path, VirtualDisk.KIND, namespaced=True)
        if not isinstance(volume, str) or not volume or disk_id is None:
            continue
        assert isinstance(status, dict)
        # Anything but a plain false counts as protected: in doubt, keep the volume.
        protected = status.get(PROTECTED_FIELD, False) is not False
        found[volume] = DiskRecord(disk_id, volume, protected)
    return found
