"""The planner's block-device work for one pass: what plan.py asks of storage.py,
vm_devices.py, attachments.py and disks.py, kept here so the planner's steps only call in.

Per VM: its devices (blockDeviceRefs, then its attachments' devices), the storage
steps they need (images imported, disks made or grown) and the hot-plug steps of a
running VM. After all VMs: the reports of the disks and attachments this host
reports, and the volumes of disks whose manifests were deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.api import (
    ObjectId,
    VirtualDisk,
    VirtualMachine,
    VirtualMachineBlockDeviceAttachment,
)
from reconciler.engine.devices.attachments import (
    Attachment,
    attachment_report,
    attachments_by_vm,
    hotplug_actions,
)
from reconciler.engine.devices.device_index import DeviceIndex, device_index
from reconciler.engine.devices.disks import (
    DeletionCheck,
    DiskRecord,
    decide_deletions,
    disk_report,
    disk_users,
    orphan_volumes,
    terminating_report,
)
from reconciler.engine.devices.storage import (
    DiskState,
    ImageSourceFacts,
    StorageView,
)
from reconciler.engine.devices.vm_devices import ResolvedDevice, static_devices, storage_actions
from reconciler.findings import Finding
from reconciler.model.actions import (
    Action,
    AttachDevice,
    DetachDevice,
    EnsureDiskVolume,
    EnsureImageVolume,
    ResizeDisk,
)
from reconciler.model.conditions import (
    AttachmentCondition,
    AttachmentReason,
    ConditionType,
    DiskCondition,
    DiskReason,
    Reason,
    mark_false,
)
from reconciler.model.domain import DiskDevice, DomainSpec, ObservedDomain, VolumeFacts
from reconciler.model.errors import NotReady, ReconcileError
from reconciler.model.names import domain_name
from reconciler.model.phases import DiskPhase
from reconciler.model.status import VMStatus
from reconciler.rules.disks import size_text
from reconciler.rules.inventory import Inventory

ATTACHMENT_KIND = VirtualMachineBlockDeviceAttachment.KIND
# The last report of each disk and what it was made of: a disk found as it was (the same
# DiskState, storage._SETTLED) with the same users has the same report.
_REPORTS: dict[tuple[ObjectId, bool], tuple[DiskState, tuple[Any, ...], dict[str, Any]]] = {}
_REPORTS_LIMIT = 50_000
# The last view made, with what it was made from (compared by identity; held, so no id
# is reused meanwhile).
_LAST_VIEW: list[tuple[tuple[object, ...], StorageView, dict[ObjectId, list[Attachment]]]] = []
DISK = VirtualDisk.KIND


@dataclass
class PassDevices:
    """The pass's view of the pool and of the revision's attachments."""

    view: StorageView
    attachments: dict[ObjectId, list[Attachment]]
    index: DeviceIndex
    # Images an earlier VM of the pass imports: the one accumulator of the pass's VMs,
    # kept here as storage_actions reads and adds to it for each VM in turn.
    imported: set[ObjectId] = field(default_factory=set)

    @classmethod
    def of(
        cls,
        inventory: Inventory,
        findings: list[Finding],
        broken: frozenset[ObjectId],
        volumes: Mapping[tuple[str, str], VolumeFacts],
        image_sources: Mapping[str, ImageSourceFacts],
        pool: str,
        image_directories: tuple[str, ...] = (),
    ) -> PassDevices:
        index = device_index(inventory, broken)
        inputs = (inventory, findings, volumes, image_sources, pool, image_directories)
        last = _LAST_VIEW[0] if _LAST_VIEW else None
        if last is not None and all(a is b for a, b in zip(last[0], inputs, strict=True)):
            # The pass's second plan, on the same observation: the same view of the pool.
            return cls(last[1], last[2], index)
        view = StorageView(inventory, volumes, image_sources, pool, findings, image_directories)
        attachments = attachments_by_vm(inventory, findings, view)
        _LAST_VIEW[:] = [(inputs, view, attachments)]
        return cls(view, attachments, index)

    def devices(self, vm_id: ObjectId) -> tuple[ResolvedDevice, ...]:
        """The VM's devices in the order the domain lists them; DeviceProblem (vm_devices.py)
        for a blockDeviceRef it cannot have yet. Attachments that cannot be attached
        now only wait: they do not hold up their VM."""
        static = static_devices(self.index.vm_devices.get(vm_id, ()), self.view)
        attachments = self.attachments.get(vm_id)
        if not attachments:
            return static
        return (*static, *(a.device for a in attachments if a.device is not None))

    def storage_steps(
        self, vm_id: ObjectId, devices: tuple[ResolvedDevice, ...]
    ) -> tuple[list[Action], list[str]]:
        """The storage actions of the VM's devices, and details for `reconciler plan`."""
        view = self.view
        if all(d.ref.kind == DISK and view.disk(d.ref).settled for d in devices):
            return [], []  # the common case on a resync: every disk there, at its size
        actions = storage_actions(vm_id, devices, self.view, self.imported)
        details = []
        for device in devices:
            if device.ref.kind == VirtualDisk.KIND:
                disk = self.view.disk(device.ref)
                if disk.shrink_refused:
                    details.append(disk.shrink_refused)
        return actions, details

    def hotplug_steps(
        self, vm_id: ObjectId, spec: DomainSpec, observed: ObservedDomain | None
    ) -> list[Action]:
        return hotplug_actions(vm_id, spec, observed)


def report_devices(
    devices: PassDevices,
    inventory: Inventory,
    reported_vms: Iterable[ObjectId],
    domains: Mapping[str, ObservedDomain],
    actions: Sequence[Action],
    *,
    held: Mapping[ObjectId, str],
    first_member: bool,
    anticipate: bool,
) -> dict[ObjectId, dict[str, Any]]:
    """The reports of the disks and attachments of the VMs this host reports; a disk no
    VM uses is reported by the host that has its volume, else by the fleet's first host.
    `held`: the VMs whose devices this pass does not change, and why."""
    pool = devices.view.pool
    here = {
        vm_id: domains.get(domain_name(vm_id))
        for vm_id in reported_vms
        if vm_id.kind == VirtualMachine.KIND
    }
    reports: dict[ObjectId, dict[str, Any]] = {}
    requested = {a.attachment for a in actions if isinstance(a, AttachDevice)}
    pairs: dict[ObjectId, list[tuple[ObjectId, ObjectId]]] = {}
    for vm_id, attachments in devices.attachments.items():
        pairs[vm_id] = [(a.object_id, a.device_id) for a in attachments if a.device is not None]
        if vm_id in here:
            for attachment in attachments:
                source = f"{pool}/{attachment.device.volume}" if attachment.device else ""
                reports[attachment.object_id] = attachment_report(
                    attachment,
                    here[vm_id],
                    source,
                    vm_blocked=held.get(vm_id, ""),
                    requested=anticipate and attachment.object_id.name in requested,
                )
        elif vm_id not in inventory and first_member:
            # No such VM anywhere: the attachment waits, reported once for the fleet.
            for attachment in attachments:
                reports[attachment.object_id] = attachment_report(attachment, None, "")
    index = devices.index
    users = disk_users(index, pairs, here, pool)
    attached = {disk for vm_pairs in pairs.values() for _a, disk in vm_pairs}
    creating = {a.volume for a in actions if isinstance(a, EnsureDiskVolume)}
    growing = {a.volume for a in actions if isinstance(a, ResizeDisk)}
    # A disk a VM of another host uses (or an attachment does) is that host's to report:
    # this one does not work out its state (in a fleet-sized repository, most disks are
    # such), nor walks all of them: only those of its VMs and those no VM uses.
    position = index.disk_positions
    candidates = {disk for disk in users if disk in position}
    candidates.update(disk for disk in index.unused_disks if disk not in attached)
    for disk_id in sorted(candidates, key=position.__getitem__):
        state = devices.view.disk(disk_id)
        if disk_id not in users and state.observed is None and not first_member:
            continue
        using = users.get(disk_id, [])
        inputs = (using, state.volume in creating, state.volume in growing, anticipate)
        # By disk and plan: a pass with actions plans twice (anticipating, then not).
        known = _REPORTS.get((disk_id, anticipate))
        if known is not None and known[0] is state and known[1] == inputs:
            report = known[2]  # the disk as the last pass saw it: the same report
        else:
            report = disk_report(
                state,
                using,
                pool,
                creating=inputs[1],
                growing=inputs[2],
                anticipate=anticipate,
            )
            if len(_REPORTS) >= _REPORTS_LIMIT:
                _REPORTS.clear()
            _REPORTS[disk_id, anticipate] = (state, inputs, report)
        reports[disk_id] = dict(report)  # the caller may amend its copy
    return reports


def domain_sources(domains: Mapping[str, ObservedDomain]) -> dict[str, set[str]]:
    """What each domain has as disks ("pool/volume" or a path), next boot and running."""
    return {
        name: {
            source
            for view in (observed.config, observed.live)
            if view is not None
            for _target, source, _device in view.facts.disks
        }
        for name, observed in domains.items()
    }


def plan_disk_deletions(
    devices: PassDevices,
    broken: frozenset[ObjectId],
    whole_revision: bool,
    records: Mapping[str, DiskRecord],
    volumes: Mapping[tuple[str, str], VolumeFacts],
    domains: Mapping[str, ObservedDomain],
    undefined: set[str],
) -> tuple[list[Action], dict[ObjectId, dict[str, Any]], list[str]]:
    """Deletions of the volumes of deleted disks; reports of those kept for now; notes."""
    pool = devices.view.pool
    orphans = orphan_volumes(devices.index, volumes, pool)
    if not orphans:
        return [], {}, []
    # Not the domains undefined earlier in this very pass.
    in_use = domain_sources({n: d for n, d in domains.items() if n not in undefined})
    check = DeletionCheck(devices.index, broken, whole_revision, records, in_use)
    decided, notes = decide_deletions(check, orphans, pool)
    actions: list[Action] = []
    kept: dict[ObjectId, dict[str, Any]] = {}
    for deletion in decided:
        if deletion.action is not None:
            actions.append(deletion.action)
        else:
            volume = volumes.get((pool, deletion.record.volume))
            kept[deletion.record.disk_id] = terminating_report(deletion, volume)
            notes.append(
                f"volume {pool}/{deletion.record.volume} of the deleted VirtualDisk"
                f" {deletion.record.disk_id.name} is kept: {deletion.kept}"
            )
    return actions, kept, notes


def explain_failures(
    statuses: Mapping[ObjectId, VMStatus],
    reports: dict[ObjectId, dict[str, Any]],
    failures: Iterable[tuple[Action, ReconcileError]],
) -> None:
    """Put what failed into the reports the pass writes: a missing or invalid image file
    into its VM's BlockDevicesReady, a failed hot-plug into its attachment, a disk that
    could not be made (or whose image could not be imported) into the disk's report."""
    failures = list(failures)
    images = {a.image: str(e) for a, e in failures if isinstance(a, EnsureImageVolume)}
    for action, error in failures:
        if isinstance(error, NotReady):
            status = statuses.get(action.owner)
            if status is not None:
                status.set(mark_false(error.condition, error.reason, str(error)))
        report: dict[str, Any] | None = None
        if isinstance(action, AttachDevice | DetachDevice):
            name = action.attachment
            report = reports.get(ObjectId(ATTACHMENT_KIND, action.owner.namespace, name))
            if report is not None:
                _set(
                    report,
                    AttachmentCondition.ATTACHED,
                    AttachmentReason.NOT_ATTACHED,
                    f"{action.describe()} failed: {error}",
                )
        elif isinstance(action, EnsureDiskVolume):
            report = reports.get(action.disk)
            if report is None:
                continue
            if action.image is not None and action.image in images:
                report["phase"] = str(DiskPhase.PENDING)
                _set(
                    report,
                    DiskCondition.DATASOURCE_READY,
                    DiskReason.IMAGE_NOT_READY,
                    images[action.image],
                )
            else:
                report["phase"] = str(DiskPhase.FAILED)
                _set(report, DiskCondition.READY, DiskReason.PROVISIONING, str(error))


def _set(report: dict[str, Any], kind: ConditionType, reason: Reason, message: str) -> None:
    """A False condition in a report, in place of any of its type."""
    conditions = [c for c in report.get("conditions", []) if c.get("type") != kind]
    # With its message even when empty (Condition.as_entry leaves an empty one out).
    conditions.append(
        {"type": str(kind), "status": "False", "reason": str(reason), "message": message}
    )
    report["conditions"] = sorted(conditions, key=lambda c: str(c.get("type")))


def block_device_refs(
    devices: Sequence[ResolvedDevice],
    disks: Sequence[DiskDevice],
    observed: ObservedDomain | None,
    volumes: Mapping[tuple[str, str], VolumeFacts],
    pool: str,
) -> list[dict[str, Any]]:
    """status.blockDeviceRefs (dvp-api.md §1.3): each device of the VM, in the domain's
    order, with its size, its target, and whether the running instance has it."""
    live: dict[str, str] = {}
    if observed is not None and observed.state.active and observed.live is not None:
        live = {source: target for target, source, _ in observed.live.facts.disks}
    planned = {disk.source: disk.target for disk in disks}
    refs: list[dict[str, Any]] = []
    for device in devices:
        source = f"{pool}/{device.volume}"
        entry: dict[str, Any] = {"kind": device.ref.kind, "name": device.ref.name}
        facts = volumes.get((pool, device.volume))
        if facts is not None:
            entry["size"] = size_text(facts.capacity_bytes).removesuffix(" bytes")
        target = live.get(source) or planned.get(source)
        if target:
            entry["target"] = target
        entry["attached"] = source in live
        if device.attachment:
            entry["hotplugged"] = True
            entry["virtualMachineBlockDeviceAttachmentName"] = device.attachment
        if device.boot_order is not None:
            entry["bootOrder"] = device.boot_order
        refs.append(entry)
    return refs
