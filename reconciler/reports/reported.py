"""What the latest status reports remember for the fleet: where each VM runs, which disks
existed."""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, NamedTuple

from reconciler.api import ObjectId, VirtualDisk, VirtualMachine
from reconciler.engine.devices.disks import PROTECTED_FIELD, DiskRecord
from reconciler.model.phases import VMPhase
from reconciler.reports.documents import read_document, report_object_id
from reconciler.reports.scan import PerReport, Tally
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


class ReportFiles:
    """The report file of each object of a folder, and the files of no object."""

    def __init__(self) -> None:
        self.files: dict[ObjectId, str] = {}
        self.unnamed: set[str] = set()  # files no object's report is ever written at
        # Moves whenever the objects of `files` do.
        self.version = 0
        self._absent: tuple[int, AbstractSet[ObjectId], set[ObjectId]] | None = None

    def absent(self, present: AbstractSet[ObjectId]) -> set[ObjectId]:
        """The objects reported that are not in `present` (not to be changed): made again
        only when either changed, for a frozen `present` (Inventory.ids)."""
        last = self._absent
        if last is not None and last[0] == self.version and last[1] is present:
            return last[2]
        found = self.files.keys() - present
        if isinstance(present, frozenset):
            self._absent = (self.version, present, found)
        return found

    def _files_update(
        self,
        removed: Sequence[tuple[str, ObjectId | None]],
        added: Sequence[tuple[str, ObjectId | None]],
    ) -> None:
        gone = {object_id for _name, object_id in removed if object_id is not None}
        came = {object_id for _name, object_id in added if object_id is not None}
        for name, object_id in removed:
            if object_id is None:
                self.unnamed.discard(name)
            elif self.files.get(object_id) == name:  # one file per object (its place)
                del self.files[object_id]
        for name, object_id in added:
            if object_id is None:
                self.unnamed.add(name)
            else:
                self.files[object_id] = name
        if gone != came:
            self.version += 1


class ObjectReports(ReportFiles):
    """ReportFiles of a folder whose files' values are the objects they report."""

    def update(
        self,
        removed: Sequence[tuple[str, ObjectId | None]],
        added: Sequence[tuple[str, ObjectId | None]],
    ) -> None:
        self._files_update(removed, added)


class VMReports(ReportFiles):
    """What the readers of a pass take from every VM report of the fleet, kept by the
    reports that changed (scan.Tally): a host of a fleet of 10,000 VMs rewrites its own
    hundred, and the others' change only with a pull.

    `nodes` and `migrations` are handed out as they are (reported_placements) and never
    changed after: a change makes new ones, so the same mapping means the same reports.
    """

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[ObjectId, str] = {}  # status.nodeName, by VM
        self.migrations: dict[ObjectId, str] = {}  # where a VM reported Migrating goes
        # Per node, the files that say the VM runs there and did not leave by migration,
        # with their VMs.
        self.staying: dict[str, dict[str, ObjectId | None]] = {}
        # The README's rows by VM, and in the order of the VMs (None: sorted when asked).
        self._rows: dict[ObjectId, str] = {}
        self._order: list[ObjectId] | None = []
        self._lines: list[str] = []  # the rows in _order's order

    def update(
        self, removed: Sequence[tuple[str, VMReport]], added: Sequence[tuple[str, VMReport]]
    ) -> None:
        self._files_update(
            [(name, report.vm_id) for name, report in removed],
            [(name, report.vm_id) for name, report in added],
        )
        nodes: dict[ObjectId, str | None] = {}
        migrations: dict[ObjectId, str | None] = {}
        if len(removed) + len(added) > 64:
            self._order = None  # many at once (a first listing): sorted once when asked
        for name, report in removed:
            vm_id = report.vm_id
            self.staying.get(report.node, {}).pop(name, None)
            if vm_id is None:
                continue
            nodes[vm_id] = migrations[vm_id] = None
            if report.readme_row is not None:
                self._row(vm_id, None)
        for name, report in added:
            vm_id = report.vm_id
            if not report.migrating:
                self.staying.setdefault(report.node, {})[name] = vm_id
            if vm_id is None:
                continue
            if report.node:
                nodes[vm_id] = report.node
            if report.migration_target:
                migrations[vm_id] = report.migration_target
            if report.readme_row is not None:
                self._row(vm_id, report.readme_row)
        self.nodes = _changed(self.nodes, nodes)
        self.migrations = _changed(self.migrations, migrations)

    def _row(self, vm_id: ObjectId, row: str | None) -> None:
        order, lines = self._order, self._lines
        if row is None:
            if self._rows.pop(vm_id, None) is not None and order is not None:
                at = bisect.bisect_left(order, vm_id)
                del order[at], lines[at]
            return
        if order is not None:
            at = bisect.bisect_left(order, vm_id)
            if vm_id in self._rows:
                lines[at] = row
            else:
                order.insert(at, vm_id)
                lines.insert(at, row)
        self._rows[vm_id] = row

    def readme_rows(self) -> list[str]:
        """The README's rows, in the order of their VMs (not to be changed)."""
        if self._order is None:
            self._order = sorted(self._rows)
            self._lines = [self._rows[vm_id] for vm_id in self._order]
        return self._lines


def _changed(
    mapping: dict[ObjectId, str], changes: dict[ObjectId, str | None]
) -> dict[ObjectId, str]:
    """mapping with the changes (None: gone): the very same one when none changes it."""
    moved = [(k, v) for k, v in changes.items() if mapping.get(k) != v]
    if not moved:
        return mapping
    made = dict(mapping)
    for key, value in moved:
        if value is None:
            del made[key]
        else:
            made[key] = value
    return made


_VM_TALLY = Tally(_VM_REPORTS, VMReports)


def vm_reports(status_root: Path) -> list[tuple[str, VMReport]]:
    """Every file under status_root's VM folder, in the glob's order, with what it says:
    each file is read again only when it changed (scan.py)."""
    return _VM_REPORTS.over(status_root / VirtualMachine.PLURAL)


def vm_summary(status_root: Path) -> VMReports:
    """What every VM report under status_root says, kept by the reports that changed:
    not to be changed by the caller."""
    return _VM_TALLY.over(status_root / VirtualMachine.PLURAL)


def reported_nodes(status_root: Path) -> dict[ObjectId, str]:
    """nodeName of every VirtualMachine report under status_root; unreadable ones are skipped."""
    return dict(reported_placements(status_root)[0])


def reported_migrations(status_root: Path) -> dict[ObjectId, str]:
    """The node each VM whose report says Migrating goes to (status.migrationState): the
    host it leaves does not define it again once it is gone from there."""
    return dict(reported_placements(status_root)[1])


def reported_placements(
    status_root: Path,
) -> tuple[dict[ObjectId, str], dict[ObjectId, str]]:
    """reported_nodes and reported_migrations from one listing of the reports: the same
    mappings while the reports say the same, never to be changed by the caller."""
    summary = vm_summary(status_root)
    return summary.nodes, summary.migrations


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


class _DiskRecords:
    """reported_disks, kept by the reports that changed: a volume named by several
    reports is the one of the last in the listing's order."""

    def __init__(self) -> None:
        self.found: dict[str, DiskRecord] = {}
        self._named: dict[str, dict[str, DiskRecord]] = {}  # volume -> file -> record

    def update(
        self,
        removed: Sequence[tuple[str, DiskRecord | None]],
        added: Sequence[tuple[str, DiskRecord | None]],
    ) -> None:
        volumes: set[str] = set()
        for name, record in removed:
            if record is not None:
                named = self._named.get(record.volume, {})
                named.pop(name, None)
                if not named:
                    self._named.pop(record.volume, None)
                volumes.add(record.volume)
        for name, record in added:
            if record is not None:
                self._named.setdefault(record.volume, {})[name] = record
                volumes.add(record.volume)
        changes: dict[str, DiskRecord | None] = {}
        for volume in volumes:
            files = self._named.get(volume)
            last = files[max(files, key=os.path.split)] if files else None
            if self.found.get(volume) != last:
                changes[volume] = last
        if changes:  # a new mapping: the one handed out stays as it was
            found = dict(self.found)
            for volume, record in changes.items():
                if record is None:
                    del found[volume]
                else:
                    found[volume] = record
            self.found = found


_DISK_TALLY = Tally(_DISKS, _DiskRecords)


def reported_disks(status_root: Path) -> dict[str, DiskRecord]:
    """The disks the latest VirtualDisk reports list, by the volume they name: the inventory
    that lets a deleted disk's volume go (engine/disks.py). A report that cannot be read,
    or names no volume, lists nothing, so its volume is kept. The same mapping while the
    reports say the same, never to be changed by the caller."""
    return _DISK_TALLY.over(status_root / VirtualDisk.PLURAL).found
