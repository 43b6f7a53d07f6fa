"""Who refers to which disk and image in a revision, worked out once per loaded revision.

A daemon plans the same revision pass after pass; these references only change
when the revision does, so they are kept with its Inventory (and go with it),
and a pass that finds nothing to do does not walk every manifest again for them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from reconciler.api import (
    ObjectId,
    VirtualDisk,
    VirtualMachine,
    VirtualMachineBlockDeviceAttachment,
)
from reconciler.api.storage import DataSourceType
from reconciler.engine.from_last import FromLast, Replaced
from reconciler.memo import IdentityMemo
from reconciler.model.names import disk_volume_name
from reconciler.rules.inventory import Inventory
from reconciler.rules.references import device_id


@dataclass(frozen=True)
class DeviceIndex:
    # Every VirtualDisk of the revision, valid ones in the order they were loaded.
    disks: tuple[ObjectId, ...]
    # The volume names of all of them, broken manifests' included: these are not orphans.
    disk_volumes: frozenset[str]
    # Disk volumes some VM or attachment names, and the first that does.
    referenced: Mapping[str, ObjectId]
    # VirtualDisks a VM's blockDeviceRefs names.
    used_by_vms: frozenset[ObjectId]
    # Images VMs or attachments name directly, and the images disks are made from.
    attached_images: frozenset[ObjectId]
    disk_images: Mapping[ObjectId, ObjectId]
    # Each VM's blockDeviceRefs in list order with its boot order (dvp-api.md §1.3: the
    # list position, or only the explicit bootOrder values when any is set).
    vm_devices: Mapping[ObjectId, tuple[tuple[ObjectId, int | None], ...]]
    # The images attachments hot-plug into each VM: (attachment, image), by name.
    vm_attached_images: Mapping[ObjectId, tuple[tuple[ObjectId, ObjectId], ...]] = field(
        default_factory=dict
    )

    @cached_property
    def disk_positions(self) -> Mapping[ObjectId, int]:
        """Where each disk is in `disks`."""
        return {disk: at for at, disk in enumerate(self.disks)}

    @cached_property
    def unused_disks(self) -> tuple[ObjectId, ...]:
        """The disks no VM's blockDeviceRefs names, in the order of `disks`."""
        return tuple(disk for disk in self.disks if disk not in self.used_by_vms)


_INDEXES: weakref.WeakKeyDictionary[Inventory, DeviceIndex] = weakref.WeakKeyDictionary()


def device_index(inventory: Inventory, broken: Iterable[ObjectId] = ()) -> DeviceIndex:
    index = _INDEXES.get(inventory)
    if index is None:
        index = _FROM_LAST(inventory, frozenset(broken))
        _INDEXES[inventory] = index
    return index


def _unchanged(last: DeviceIndex, replaced: Replaced) -> DeviceIndex | None:
    """The last revision's index for one whose objects refer to the same devices (a
    VM's cores, memory, run policy edited; a file read again), or changed only objects
    the index does not read; None (made anew) when a reference or a disk changed."""
    for old, new in replaced:
        before, after = old.model, new.model
        if isinstance(before, VirtualMachine) and isinstance(after, VirtualMachine):
            if _vm_refs(before) != _vm_refs(after):
                return None
        elif isinstance(before, VirtualDisk) and isinstance(after, VirtualDisk):
            if _disk_entry(before) != _disk_entry(after):
                return None
        elif (isinstance(before, _READ) or isinstance(after, _READ)) and before != after:
            return None
    return last


def _build(inventory: Inventory, broken: Iterable[ObjectId]) -> DeviceIndex:
    disks: list[ObjectId] = []
    volumes: set[str] = set()
    disk_images: dict[ObjectId, ObjectId] = {}
    for _, disk in inventory.of_kind(VirtualDisk):
        disk_id, volume, image = _disk_entry(disk)
        disks.append(disk_id)
        volumes.add(volume)
        if image is not None:
            disk_images[disk_id] = image
    volumes.update(disk_volume_name(b) for b in broken if b.kind == VirtualDisk.KIND)
    referenced: dict[str, ObjectId] = {}
    used: set[ObjectId] = set()
    images: set[ObjectId] = set()
    vm_devices: dict[ObjectId, _Refs] = {}
    for _, vm in inventory.of_kind(VirtualMachine):
        vm_id, refs, disk_volumes = _vm_refs(vm)
        for target, _order in refs:
            (used if target.kind == VirtualDisk.KIND else images).add(target)
        for volume in disk_volumes:
            referenced.setdefault(volume, vm_id)
        vm_devices[vm_id] = refs
    attached: dict[ObjectId, list[tuple[ObjectId, ObjectId]]] = {}
    for loaded, vmbda in inventory.of_kind(VirtualMachineBlockDeviceAttachment):
        device = vmbda.spec.block_device_ref
        target = device_id(device.kind.value, vmbda.namespace, device.name)
        if target.kind == VirtualDisk.KIND:
            referenced.setdefault(disk_volume_name(target), loaded.id)
        else:
            images.add(target)
            vm_id = ObjectId(VirtualMachine.KIND, vmbda.namespace, vmbda.spec.virtual_machine_name)
            attached.setdefault(vm_id, []).append((loaded.id, target))
    return DeviceIndex(
        tuple(disks),
        frozenset(volumes),
        referenced,
        frozenset(used),
        frozenset(images),
        disk_images,
        vm_devices,
        {vm_id: tuple(sorted(pairs)) for vm_id, pairs in attached.items()},
    )


# The kinds the index reads.
_READ = (VirtualMachine, VirtualDisk, VirtualMachineBlockDeviceAttachment)
# The index of the last revision, kept for the next (engine/from_last.py).
_FROM_LAST: FromLast[DeviceIndex] = FromLast(
    lambda inventory, broken: _build(inventory, broken), _unchanged
)

_Refs = tuple[tuple[ObjectId, int | None], ...]
# What a manifest refers to, by the very model object it was read from: between two
# revisions most manifests are the same (frozen) objects, so a new revision reads only
# the ones that changed.
_VM_REFS: IdentityMemo[tuple[ObjectId, _Refs, tuple[str, ...]]] = IdentityMemo()
_DISKS: IdentityMemo[tuple[ObjectId, str, ObjectId | None]] = IdentityMemo()


def _vm_refs(vm: VirtualMachine) -> tuple[ObjectId, _Refs, tuple[str, ...]]:
    """The VM's id, its devices with their boot order, and its disks' volume names."""
    known = _VM_REFS.get(vm)
    if known is not None:
        return known
    boot = {(r.kind, r.name): i + 1 for i, r in enumerate(vm.spec.boot_order())}
    refs = tuple(
        (device_id(ref.kind.value, vm.namespace, ref.name), boot.get((ref.kind, ref.name)))
        for ref in vm.spec.block_device_refs
    )
    volumes = tuple(disk_volume_name(ref) for ref, _ in refs if ref.kind == VirtualDisk.KIND)
    return _VM_REFS.put((vm,), (vm.id, refs, volumes))


def _disk_entry(disk: VirtualDisk) -> tuple[ObjectId, str, ObjectId | None]:
    """The disk's id, its volume's name and the image it is made from, if any."""
    known = _DISKS.get(disk)
    if known is not None:
        return known
    disk_id = disk.id
    source = disk.spec.data_source
    ref = source.object_ref if source is not None else None
    image = None
    if source is not None and source.type is DataSourceType.OBJECT_REF and ref is not None:
        image = device_id(ref.kind, ref.namespace or disk.namespace, ref.name)
    return _DISKS.put((disk,), (disk_id, disk_volume_name(disk_id), image))
