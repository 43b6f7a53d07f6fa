"""Whether a VM can live-migrate to another host of the fleet: its `Migratable`
condition (dvp-api.md §2.3), and what an Evict or Migrate of it checks first (§7.3:
"VirtualMachine is not migratable").

Pure: from the revision and the host's configuration alone, so every caller (the VM's
report, its operations, a drain) gets the same answer in the same pass. What keeps a
VM from moving:

- A read-only volume of this host's pool, when the pool is not shared: an image
  (VirtualImage, ClusterVirtualImage: a host file imported into the pool and attached
  read-only, as a CD-ROM or a disk), whether in blockDeviceRefs or hot-plugged by a
  VirtualMachineBlockDeviceAttachment. A migration that copies storage
  (`NON_SHARED_DISK`) copies only writable disks; libvirt expects the read-only ones to
  be on the destination already, and they are not, so the migration would fail there.
  On a pool the configuration marks shared (`storagePoolShared`) every host has them.
  The provisioning seed CD-ROM is no obstacle: it is read at boot only, so the source
  ejects it from the running instance before it migrates (libvirt/seed_media.py) and
  the destination makes the seed volume again for the next boot.
- A class whose CPU is the host's own (`cpu.type` Host or HostPassthrough), in a fleet
  of more than one Node: the guest sees this host's CPU model and features, which
  another host may not have. Under software emulation (TCG) such a class gets a
  generic model (desired.py), which every host has.

VirtualDisks are writable volumes, copied by the migration (or shared with the pool).
"""

from __future__ import annotations

from reconciler.api import ObjectId, VirtualDisk, VirtualMachine
from reconciler.api.vmclass import CPUType, VirtualMachineClass
from reconciler.engine.devices.device_index import device_index
from reconciler.engine.devices.storage import StorageView
from reconciler.engine.plan_types import PlanContext
from reconciler.model.conditions import Condition, VMCondition, VMReason, mark_false, mark_true
from reconciler.model.migration import StorageMode

MIGRATABLE = mark_true(VMCondition.MIGRATABLE, VMReason.VIRTUAL_MACHINE_MIGRATABLE)
_HOST_CPUS = frozenset({CPUType.HOST, CPUType.HOST_PASSTHROUGH})


def why_not_migratable(context: PlanContext, vm: VirtualMachine) -> str:
    """Why the VM cannot live-migrate, naming each thing that cannot; "" when it can."""
    reasons: list[str] = []
    # On a pool every host sees, the read-only volumes are on the destination too.
    read_only = (
        _read_only(context, vm) if context.host.migration_storage is StorageMode.COPY else []
    )
    if read_only:
        verb = "is a read-only volume" if len(read_only) == 1 else "are read-only volumes"
        reasons.append(
            f"{_listed(read_only)} {verb} of this host's pool {context.host.storage_pool},"
            " which a live migration does not copy and the other hosts do not have"
            " (a pool on storage every host sees can be marked storagePoolShared)"
        )
    cpu = _host_cpu(context, vm)
    if cpu:
        reasons.append(cpu)
    return "; ".join(reasons)


def migratable_condition(context: PlanContext, vm: VirtualMachine) -> Condition:
    """The VM's `Migratable` condition: True, or False saying what cannot migrate."""
    why = why_not_migratable(context, vm)
    if not why:
        return MIGRATABLE
    return mark_false(VMCondition.MIGRATABLE, VMReason.VIRTUAL_MACHINE_NON_MIGRATABLE, why)


def _read_only(context: PlanContext, vm: VirtualMachine) -> list[str]:
    """The VM's read-only volumes of the pool, each as a user would name it."""
    index = device_index(context.inventory, context.broken)
    images = [
        ref for ref, _order in index.vm_devices.get(vm.id, ()) if ref.kind != VirtualDisk.KIND
    ]
    attached = index.vm_attached_images.get(vm.id, ())
    found: list[str] = []
    if images or attached:
        # Only the image's file is wanted: the pool's volumes do not change it.
        view = StorageView(context.inventory, {}, {}, context.host.storage_pool)
        for image in images:
            found.append(f"{image.kind} {image.name}{_file(view, image)}")
        for attachment, image in attached:
            found.append(
                f"{image.kind} {image.name}{_file(view, image)}, hot-plugged by"
                f" VirtualMachineBlockDeviceAttachment {attachment.name}"
            )
    return found


def _file(view: StorageView, image: ObjectId) -> str:
    path = view.image(image).path
    return f" (the host file {path})" if path else ""


def _listed(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _host_cpu(context: PlanContext, vm: VirtualMachine) -> str:
    """Why the VM's CPU keeps it on this host, or ""."""
    if len(context.members) < 2 or context.host.domain_type != "kvm":
        return ""
    name = vm.spec.virtual_machine_class_name
    loaded = context.inventory.get(ObjectId(VirtualMachineClass.KIND, "", name))
    vmclass = loaded.model if loaded is not None else None
    if not isinstance(vmclass, VirtualMachineClass) or vmclass.spec.cpu.type not in _HOST_CPUS:
        return ""
    return (
        f"VirtualMachineClass {name} gives it this host's own CPU (cpu.type"
        f" {vmclass.spec.cpu.type}), and the fleet's hosts may have different ones"
    )
