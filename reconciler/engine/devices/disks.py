"""VirtualDisk reports, and the deletion of a disk's volume when its manifest goes.

A disk's volume holds a guest's data, so it goes only when its VirtualDisk manifest
is deleted from a whole revision (SPEC §10): never with its VM, never while a
manifest may still refer to it, never while a domain uses it, never when protected.
Which disks existed is told by their reports under status/ (the inventory, as Flux
prunes only what its inventory lists): a volume `vd-…` whose VirtualDisk is gone
is deleted only if the disk's last report names that volume and does not say it
was protected. A volume without such a report is kept: in doubt, keep it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from reconciler.api import (
    ObjectId,
    VirtualDisk,
    VirtualMachine,
    VirtualMachineBlockDeviceAttachment,
)
from reconciler.api.storage import PROTECT_ANNOTATION
from reconciler.engine.devices.device_index import DeviceIndex
from reconciler.engine.devices.storage import DiskState
from reconciler.model.actions import Action, DeleteDiskVolume
from reconciler.model.conditions import Condition, DiskCondition, DiskReason
from reconciler.model.domain import ObservedDomain, VolumeFacts
from reconciler.model.names import disk_volume_name, is_disk_volume
from reconciler.model.phases import DiskPhase
from reconciler.rules.disks import size_text

# The report field that records the protect annotation (not the platform's: its
# protection lives on the PVC); a report without it is of an unprotected disk.
PROTECTED_FIELD = "protected"
DISK = VirtualDisk.KIND


@dataclass(frozen=True)
class DiskRecord:
    """What a disk's last report says: which volume it had and whether it was protected."""

    disk_id: ObjectId
    volume: str
    protected: bool


class DiskUser(NamedTuple):
    vm_name: str
    # The running instance has the disk (dvp-api.md §8.2 attachedToVirtualMachines.mounted).
    mounted: bool


def disk_users(
    index: DeviceIndex,
    attached: Mapping[ObjectId, Iterable[tuple[ObjectId, ObjectId]]],
    domains: Mapping[ObjectId, ObservedDomain | None],
    pool: str,
) -> dict[ObjectId, list[DiskUser]]:
    """The VMs of this host that use each disk, by blockDeviceRefs or attachment.

    `attached`: per VM, the (attachment, disk) pairs it may take; `domains`: the VMs
    this host reports, with their observed domain (None before it is defined).
    """
    users: dict[ObjectId, list[DiskUser]] = {}
    vm_devices = index.vm_devices
    for vm_id, observed in domains.items():
        disks = [ref for ref, _order in vm_devices.get(vm_id, ()) if ref.kind == DISK]
        pairs = attached.get(vm_id)
        if pairs:
            disks.extend(disk for _a, disk in pairs if disk.kind == DISK)
        if not disks:
            continue
        live = observed.live if observed is not None else None  # None unless running
        sources = {found for _t, found, _d in live.facts.disks} if live is not None else ()
        for disk in disks:
            mounted = f"{pool}/{disk_volume_name(disk)}" in sources
            users.setdefault(disk, []).append(DiskUser(vm_id.name, mounted))
    return users


def disk_report(
    disk: DiskState,
    users: list[DiskUser],
    pool: str,
    *,
    creating: bool,
    growing: bool,
    anticipate: bool,
) -> dict[str, Any]:
    """The `status:` of a VirtualDisk (dvp-api.md §8.2) as this host has it; `creating`,
    `growing`: the pass makes or grows its volume."""
    conditions: dict[DiskCondition, tuple[bool, DiskReason, str]] = {}
    observed = disk.observed
    if observed is not None:
        phase = DiskPhase.RESIZING if growing and anticipate else DiskPhase.READY
        conditions[DiskCondition.READY] = (True, DiskReason.READY, "")
    elif disk.problem:
        phase = DiskPhase.PENDING
        conditions[DiskCondition.READY] = (False, DiskReason.PROVISIONING, disk.problem)
    elif creating:
        phase = DiskPhase.PROVISIONING
        message = "the volume is being created"
        conditions[DiskCondition.READY] = (False, DiskReason.PROVISIONING, message)
    elif users:
        phase = DiskPhase.PENDING
        names = ", ".join(sorted({user.vm_name for user in users}))
        message = f"created when VirtualMachine {names} can be changed"
        conditions[DiskCondition.READY] = (False, DiskReason.PROVISIONING, message)
    else:
        phase = DiskPhase.WAIT_FOR_FIRST_CONSUMER
        message = "no VirtualMachine of this host uses the disk yet; created for the first"
        conditions[DiskCondition.READY] = (False, DiskReason.WAIT_FOR_FIRST_CONSUMER, message)
    if disk.image is not None and disk.image.problem:
        problem = disk.image.problem
        conditions[DiskCondition.DATASOURCE_READY] = (False, DiskReason.IMAGE_NOT_READY, problem)
    elif disk.from_image:
        conditions[DiskCondition.DATASOURCE_READY] = (True, DiskReason.DATASOURCE_READY, "")
    if users:
        conditions[DiskCondition.IN_USE] = (True, DiskReason.ATTACHED_TO_VIRTUAL_MACHINE, "")
    else:
        conditions[DiskCondition.IN_USE] = (False, DiskReason.NOT_IN_USE, "")
    if disk.shrink_refused:
        refused = disk.shrink_refused
        conditions[DiskCondition.RESIZING] = (False, DiskReason.SHRINK_REFUSED, refused)
    elif growing:
        wanted = size_text(disk.size_bytes or 0)
        conditions[DiskCondition.RESIZING] = (True, DiskReason.IN_PROGRESS, f"growing to {wanted}")
    status: dict[str, Any] = {"phase": str(phase)}
    if observed is not None:
        status["capacity"] = _capacity(observed)
    status["target"] = {"persistentVolumeClaimName": disk.volume}
    status["storageClassName"] = pool
    if users:
        status["attachedToVirtualMachines"] = [
            {"name": user.vm_name, "mounted": user.mounted} for user in users
        ]
    if disk.protected:
        status[PROTECTED_FIELD] = True
    status["conditions"] = [_condition(kind, *conditions[kind]) for kind in sorted(conditions)]
    return status


def _capacity(volume: VolumeFacts) -> str:
    return size_text(volume.capacity_bytes).removesuffix(" bytes")


def _condition(
    kind: DiskCondition, status: bool, reason: DiskReason, message: str
) -> dict[str, str]:
    return Condition(kind, status, reason, message).as_entry()


@dataclass(frozen=True)
class DeletionCheck:
    """Everything that may keep the volume of a deleted disk."""

    index: DeviceIndex
    broken: frozenset[ObjectId]
    whole_revision: bool
    records: Mapping[str, DiskRecord]
    # Domains that stay after this pass, with the volumes (pool/volume) they use.
    domains_in_use: Mapping[str, set[str]]


@dataclass(frozen=True)
class Deletion:
    record: DiskRecord
    action: Action | None
    # Why the volume is kept; empty when it is deleted.
    kept: str = ""


def orphan_volumes(index: DeviceIndex, volumes: Iterable[tuple[str, str]], pool: str) -> list[str]:
    """Disk volumes of the pool whose VirtualDisk is not in the revision (nor broken)."""
    return sorted(
        name
        for found_pool, name in volumes
        if found_pool == pool and name not in index.disk_volumes and is_disk_volume(name)
    )


def decide_deletions(
    check: DeletionCheck, orphans: list[str], pool: str
) -> tuple[list[Deletion], list[str]]:
    """For each orphan volume, whether it goes; notes for those kept without a report."""
    notes: list[str] = []
    decided: list[Deletion] = []
    if not orphans:
        return decided, notes
    if not check.whole_revision:
        notes.append(
            f"{len(orphans)} disk volume(s) have no VirtualDisk, but this revision has"
            " unreadable files or no objects at all: none is deleted"
        )
        return decided, notes
    referenced = check.index.referenced
    uncertain = {b.namespace for b in check.broken if b.kind in _DISK_USERS}
    for name in orphans:
        record = check.records.get(name)
        if record is None:
            notes.append(
                f"volume {pool}/{name} has no VirtualDisk and no report of one: kept"
                " (delete it by hand if it is not needed)"
            )
            continue
        if record.protected:
            notes.append(
                f"volume {pool}/{name} of the deleted VirtualDisk {record.disk_id.namespace}/"
                f"{record.disk_id.name} is kept: it was protected by {PROTECT_ANNOTATION}"
            )
            continue  # the volume is the operator's now; its report goes with the manifest
        kept = _keeper(name, record, referenced, uncertain, check.domains_in_use, pool)
        if kept:
            decided.append(Deletion(record, None, kept))
        else:
            action = DeleteDiskVolume(record.disk_id, pool, name)
            decided.append(Deletion(record, action))
    return decided, notes


_DISK_USERS = frozenset(
    {VirtualMachine.KIND, VirtualMachineBlockDeviceAttachment.KIND, VirtualDisk.KIND}
)


def _keeper(
    name: str,
    record: DiskRecord,
    referenced: Mapping[str, ObjectId],
    uncertain: set[str],
    domains_in_use: Mapping[str, set[str]],
    pool: str,
) -> str:
    if name in referenced:
        return f"{referenced[name].kind} {referenced[name].name} still refers to it"
    if record.disk_id.namespace in uncertain:
        return f"namespace {record.disk_id.namespace} has invalid manifests that may refer to it"
    users = sorted(domain for domain, used in domains_in_use.items() if f"{pool}/{name}" in used)
    if users:
        return "domain " + ", ".join(users) + " still uses it"
    return ""


def terminating_report(deletion: Deletion, observed: VolumeFacts | None) -> dict[str, Any]:
    """The report of a deleted disk whose volume is kept for now: kept, so the inventory
    still lists it and the volume goes once nothing holds it any more."""
    status: dict[str, Any] = {"phase": str(DiskPhase.TERMINATING)}
    if observed is not None:
        status["capacity"] = _capacity(observed)
    status["target"] = {"persistentVolumeClaimName": deletion.record.volume}
    status["conditions"] = [
        _condition(
            DiskCondition.READY,
            False,
            DiskReason.TERMINATING,
            f"the VirtualDisk manifest was deleted; the volume is kept while {deletion.kept}",
        )
    ]
    return status
