"""Hot-plugged block devices: VirtualMachineBlockDeviceAttachment (dvp-api.md §8.1).

An attachment's disk (or image) becomes part of its VM's domain: in the next-boot
definition, so it survives a restart, and hot-plugged into the running instance on
the SCSI bus, with an alias naming the attachment. Deleting the attachment unplugs
the disk live and drops it from the definition; the disk itself stays.

An attachment waits (Pending) while its VM or its device is not there or not ready,
and while the VM is not running: the disk is then attached at the next start. It is
refused (Failed) when its device is already used by a VM's blockDeviceRefs or by
another attachment (rules/conflicts.py), or when the VM cannot take hot-plugged
disks (a Legacy VM without paravirtualization).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.api import ObjectId, VirtualMachine, VirtualMachineBlockDeviceAttachment
from reconciler.api.vm import OsType
from reconciler.engine.devices.storage import StorageView
from reconciler.engine.devices.vm_devices import DeviceProblem, ResolvedDevice, resolve_device
from reconciler.findings import Finding, Rule
from reconciler.model.actions import Action, AttachDevice, DetachDevice
from reconciler.model.conditions import AttachmentCondition, AttachmentReason, Condition
from reconciler.model.domain import DomainSpec, ObservedDomain
from reconciler.model.names import ATTACHMENT_ALIAS_PREFIX
from reconciler.model.phases import AttachmentPhase
from reconciler.rules.inventory import Inventory
from reconciler.rules.references import device_id

KIND = VirtualMachineBlockDeviceAttachment.KIND

# The reason of the condition an attachment waits on while it says so.
_NOT_READY = {
    AttachmentCondition.VIRTUAL_MACHINE_READY: AttachmentReason.VIRTUAL_MACHINE_NOT_READY,
    AttachmentCondition.BLOCK_DEVICE_READY: AttachmentReason.BLOCK_DEVICE_NOT_READY,
}


@dataclass(frozen=True)
class Attachment:
    object_id: ObjectId
    vm_id: ObjectId
    device_id: ObjectId
    # The device as the domain gets it; None while the attachment waits or is refused.
    device: ResolvedDevice | None = None
    # Pending: what it waits for, and the condition that says so.
    waiting: str = ""
    waiting_on: AttachmentCondition | None = None
    # Failed: why it is refused.
    refused: str = ""

    @property
    def alias(self) -> str:
        return ATTACHMENT_ALIAS_PREFIX + self.object_id.name


def attachments_by_vm(
    inventory: Inventory, findings: list[Finding], view: StorageView
) -> dict[ObjectId, list[Attachment]]:
    """Every attachment of the revision under the VM it names, by name."""
    refusals: dict[str, str] = {}
    for finding in findings:
        if finding.object.startswith(KIND + "/") and finding.rule is Rule.CONFLICT:
            refusals.setdefault(finding.object, finding.message)
    grouped: dict[ObjectId, list[Attachment]] = {}
    for loaded, vmbda in sorted(inventory.of_kind(VirtualMachineBlockDeviceAttachment), key=_id):
        attachment = _attachment(loaded.id, vmbda, inventory, view, refusals)
        grouped.setdefault(attachment.vm_id, []).append(attachment)
    return grouped


def _id(pair: tuple[Any, VirtualMachineBlockDeviceAttachment]) -> ObjectId:
    return pair[1].id


def _attachment(
    object_id: ObjectId,
    vmbda: VirtualMachineBlockDeviceAttachment,
    inventory: Inventory,
    view: StorageView,
    refusals: Mapping[str, str],
) -> Attachment:
    ref = vmbda.spec.block_device_ref
    vm_id = ObjectId("VirtualMachine", vmbda.namespace, vmbda.spec.virtual_machine_name)
    target = device_id(ref.kind.value, vmbda.namespace, ref.name)
    refused = refusals.get(str(object_id))
    if refused:
        return Attachment(object_id, vm_id, target, refused=refused)
    loaded = inventory.get(vm_id)
    if loaded is None or not isinstance(loaded.model, VirtualMachine):
        state = "is invalid" if vm_id in inventory else "does not exist"
        return Attachment(
            object_id,
            vm_id,
            target,
            waiting=f"VirtualMachine {vm_id.name} {state}",
            waiting_on=AttachmentCondition.VIRTUAL_MACHINE_READY,
        )
    vm = loaded.model
    if vm.spec.os_type is OsType.LEGACY and not vm.spec.enable_paravirtualization:
        return Attachment(
            object_id,
            vm_id,
            target,
            refused=f"VirtualMachine {vm.name} is a Legacy VM without paravirtualization,"
            " which cannot take hot-plugged disks (dvp-api.md §8.1)",
        )
    try:
        device = resolve_device(target, view, attachment=object_id.name)
    except DeviceProblem as problem:
        return Attachment(
            object_id,
            vm_id,
            target,
            waiting=str(problem),
            waiting_on=AttachmentCondition.BLOCK_DEVICE_READY,
        )
    return Attachment(object_id, vm_id, target, device)


def hotplug_actions(
    vm_id: ObjectId, spec: DomainSpec, observed: ObservedDomain | None
) -> list[Action]:
    """Unplug what the running instance has of attachments that are gone (or now name
    another device), then plug in what it lacks of the current ones."""
    if observed is None or not observed.state.active or observed.live is None:
        return []  # a stopped VM takes its attachments with its next-boot definition
    wanted = {d.alias: d for d in spec.disks if d.alias}
    if not wanted and not observed.live.facts.attached:
        return []  # the common case: no attachments at all
    actions: list[Action] = []
    unplugged: set[str] = set()
    for alias, _target, source in observed.live.facts.attached:
        if not alias.startswith(ATTACHMENT_ALIAS_PREFIX):
            continue  # someone else's device
        disk = wanted.get(alias)
        if disk is None or disk.source != source:
            name = alias[len(ATTACHMENT_ALIAS_PREFIX) :]
            actions.append(DetachDevice(vm_id, spec.name, name, alias, source))
            unplugged.add(source)
    present = {source for _t, source, _d in observed.live.facts.disks} - unplugged
    for alias, disk in sorted(wanted.items()):
        if disk.source not in present:
            name = alias[len(ATTACHMENT_ALIAS_PREFIX) :]
            actions.append(AttachDevice(vm_id, spec.name, name, disk))
    return actions


def attached_live(observed: ObservedDomain | None, source: str) -> bool:
    """Whether the running instance has a disk of this source (pool/volume)."""
    if observed is None or not observed.state.active or observed.live is None:
        return False
    return any(found == source for _t, found, _d in observed.live.facts.disks)


def attachment_report(
    attachment: Attachment,
    observed: ObservedDomain | None,
    source: str,
    *,
    vm_blocked: str = "",
    requested: bool = False,
) -> dict[str, Any]:
    """The `status:` of an attachment (dvp-api.md §8.1): phase and conditions.

    `source`: the pool/volume its device has on this host; `vm_blocked`: why the VM
    itself is not changed this pass; `requested`: this pass sends the hot-plug.
    """
    vm_name = attachment.vm_id.name
    conditions: dict[AttachmentCondition, tuple[bool, AttachmentReason, str]] = {
        AttachmentCondition.BLOCK_DEVICE_READY: (True, AttachmentReason.BLOCK_DEVICE_READY, ""),
        AttachmentCondition.VIRTUAL_MACHINE_READY: (
            True,
            AttachmentReason.VIRTUAL_MACHINE_READY,
            "",
        ),
    }
    if attachment.refused:
        phase = AttachmentPhase.FAILED
        conditions[AttachmentCondition.ATTACHED] = (
            False,
            AttachmentReason.CONFLICT,
            attachment.refused,
        )
    elif attachment.waiting:
        phase = AttachmentPhase.PENDING
        on = attachment.waiting_on
        if on is not None:
            conditions[on] = (False, _NOT_READY[on], attachment.waiting)
        conditions[AttachmentCondition.ATTACHED] = (
            False,
            AttachmentReason.NOT_ATTACHED,
            f"waiting: {attachment.waiting}",
        )
    elif attached_live(observed, source):
        phase = AttachmentPhase.ATTACHED
        conditions[AttachmentCondition.ATTACHED] = (True, AttachmentReason.ATTACHED, "")
    elif vm_blocked:
        phase = AttachmentPhase.PENDING
        message = f"VirtualMachine {vm_name} is not changed: {vm_blocked}"
        conditions[AttachmentCondition.VIRTUAL_MACHINE_READY] = (
            False,
            AttachmentReason.VIRTUAL_MACHINE_NOT_READY,
            message,
        )
        conditions[AttachmentCondition.ATTACHED] = (False, AttachmentReason.NOT_ATTACHED, message)
    elif observed is None or not observed.state.active:
        phase = AttachmentPhase.PENDING
        message = f"VirtualMachine {vm_name} is not running; the disk is attached when it starts"
        conditions[AttachmentCondition.VIRTUAL_MACHINE_READY] = (
            False,
            AttachmentReason.VIRTUAL_MACHINE_NOT_READY,
            message,
        )
        conditions[AttachmentCondition.ATTACHED] = (False, AttachmentReason.NOT_ATTACHED, message)
    else:
        phase = AttachmentPhase.IN_PROGRESS
        message = (
            "the hot-plug request is sent in this pass"
            if requested
            else "the hot-plug request was sent; the device is not attached yet"
        )
        conditions[AttachmentCondition.ATTACHED] = (
            False,
            AttachmentReason.ATTACHMENT_REQUEST_SENT,
            message,
        )
    return {
        "phase": str(phase),
        "virtualMachineName": vm_name,
        "conditions": [_condition(kind, *conditions[kind]) for kind in sorted(conditions)],
    }


def _condition(
    kind: AttachmentCondition, status: bool, reason: AttachmentReason, message: str
) -> dict[str, str]:
    return Condition(kind, status, reason, message).as_entry()
