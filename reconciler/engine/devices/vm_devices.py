"""A VM's block devices on the host's pool: each reference resolved to a volume and how
it is attached (storage.py's StorageView tells what the pool holds), and the storage
steps the pool needs before the domain is defined (images imported, disks made or
grown). Pure, like storage.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

from reconciler.api import ObjectId
from reconciler.engine.devices.device_index import DeviceIndex
from reconciler.engine.devices.storage import ImageState, StorageView
from reconciler.findings import Finding
from reconciler.model.actions import Action, EnsureDiskVolume, EnsureImageVolume, ResizeDisk
from reconciler.model.domain import VolumeFacts
from reconciler.model.errors import DeviceNotReady
from reconciler.model.names import ImageFormat, disk_volume_name
from reconciler.rules.inventory import Inventory


class ResolvedDevice(NamedTuple):
    """One block device of a domain: a volume of the host's pool and how it is attached.
    (A tuple: one is made per device of every VM on every pass.)"""

    ref: ObjectId
    volume: str
    format: Literal["qcow2", "raw"]
    cdrom: bool
    readonly: bool
    boot_order: int | None = None
    # The VirtualMachineBlockDeviceAttachment that hot-plugs it; "" for blockDeviceRefs.
    attachment: str = ""


class DeviceProblem(DeviceNotReady):
    """A block device the VM cannot have yet, found while planning; the message says
    which and why."""


def static_devices(
    refs: tuple[tuple[ObjectId, int | None], ...], view: StorageView
) -> tuple[ResolvedDevice, ...]:
    """A VM's blockDeviceRefs with their boot order (DeviceIndex.vm_devices).

    DeviceProblem for the first device the VM cannot have yet: it is not defined
    or changed until every one of them is usable.
    """
    return tuple(resolve_device(ref, view, boot_order=order) for ref, order in refs)


def resolve_device(
    ref_id: ObjectId, view: StorageView, attachment: str = "", boot_order: int | None = None
) -> ResolvedDevice:
    """One disk or image as the domain refers to it; DeviceProblem when it cannot be."""
    if view.inventory.get(ref_id) is None:
        raise DeviceProblem(f"{ref_id.kind} {ref_id.name} is missing or invalid")
    if ref_id.kind == "VirtualDisk":
        disk = view.disk(ref_id)
        if disk.problem:
            raise DeviceProblem(disk.problem)
        return ResolvedDevice(ref_id, disk.volume, "qcow2", False, False, boot_order, attachment)
    image = view.image(ref_id)
    if image.problem:
        raise DeviceProblem(image.problem)
    name = image.volume_name
    if name is None or image.format is None:
        what = f"{ref_id.kind} {ref_id.name}"
        raise DeviceProblem(f"{what} is not imported yet and its file was not looked at")
    cdrom = image.format is ImageFormat.ISO
    # An ISO holds raw sectors; libvirt would take a probed format for a security risk.
    volume_format: Literal["qcow2", "raw"] = "qcow2" if image.format is ImageFormat.QCOW2 else "raw"
    return ResolvedDevice(ref_id, name, volume_format, cdrom, True, boot_order, attachment)


def storage_actions(
    owner: ObjectId,
    devices: tuple[ResolvedDevice, ...],
    view: StorageView,
    imported: set[ObjectId] | None = None,
) -> list[Action]:
    """What the pool needs before a domain with these devices can be defined and run:
    images imported, disks made (each once) and grown to their manifests' sizes.

    `imported`: the images earlier VMs of the pass import (updated): a later VM still
    makes sure of its image, as the earlier one may fail or be suspended, but says so.
    """
    actions: list[Action] = []
    planned = imported if imported is not None else set()
    mine: set[ObjectId] = set()

    def ensure_image(image: ImageState) -> None:
        if not image.imported and image.image_id not in mine:
            mine.add(image.image_id)
            earlier = image.image_id in planned
            planned.add(image.image_id)
            actions.append(
                EnsureImageVolume(
                    owner, view.pool, image.image_id, image.path, earlier, view.image_directories
                )
            )

    for device in devices:
        ref_id = device.ref
        if ref_id.kind != "VirtualDisk":
            ensure_image(view.image(ref_id))
            continue
        disk = view.disk(ref_id)
        if disk.observed is None:
            if disk.image is not None:
                ensure_image(disk.image)
            actions.append(
                EnsureDiskVolume(
                    owner,
                    view.pool,
                    disk.disk_id,
                    disk.volume,
                    disk.size_bytes,
                    disk.image.image_id if disk.image else None,
                    disk.image.path if disk.image else "",
                )
            )
        elif disk.needs_growing and disk.size_bytes is not None:
            # Also finishes a grow that a crash cut off: the next pass sees it small.
            actions.append(ResizeDisk(owner, view.pool, disk.volume, disk.size_bytes))
    return actions


def images_to_inspect(
    inventory: Inventory,
    volumes: Mapping[tuple[str, str], VolumeFacts],
    pool: str,
    index: DeviceIndex,
    findings: list[Finding] | None = None,
) -> set[str]:
    """The files of the images that VMs, disks or attachments need and that are not
    imported yet: only these are read before planning (their format names the volume).
    An image with a finding (one outside the allowed directories) is not read."""
    wanted = set(index.attached_images)
    for disk_id, image_id in index.disk_images.items():
        volume = disk_volume_name(disk_id)
        if volume in index.referenced and (pool, volume) not in volumes:
            wanted.add(image_id)
    if not wanted:
        return set()
    view = StorageView(inventory, volumes, {}, pool, findings)
    paths: set[str] = set()
    for image_id in wanted:
        image = view.image(image_id)
        if not image.imported and not image.problem and image.path:
            paths.add(image.path)
    return paths
