"""Where a domain's disks go: the bus each device takes for its VM's OS and
paravirtualization (dvp-api.md §1.1), and the target names in the order the domain
lists them (block devices, the seed CD-ROM, then the hot-plugged ones).

`used` counts the target names taken so far per prefix; the domain's builder
(desired.py) hands the same one to each part in turn.
"""

from __future__ import annotations

from typing import Literal

from reconciler.api import VirtualMachine
from reconciler.api.vm import OsType
from reconciler.engine.devices.vm_devices import ResolvedDevice
from reconciler.model.domain import DiskDevice
from reconciler.model.names import ATTACHMENT_ALIAS_PREFIX


def _bus(vm: VirtualMachine, cdrom: bool) -> Literal["virtio", "scsi", "sata", "ide"]:
    # dvp-api.md §1.1: paravirtualized disks go on virtio-scsi; Legacy uses
    # virtio-blk and IDE CD-ROMs; without paravirtualization SATA (IDE for Legacy).
    legacy = vm.spec.os_type is OsType.LEGACY
    if vm.spec.enable_paravirtualization:
        if legacy:
            return "ide" if cdrom else "virtio"
        return "scsi"
    return "ide" if legacy else "sata"


_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "ide": "hd"}


def _target(bus: str, used: dict[str, int]) -> str:
    prefix = _PREFIX[bus]
    index = used.get(prefix, 0)
    used[prefix] = index + 1
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return prefix + letters


def own_disks(
    vm: VirtualMachine, devices: tuple[ResolvedDevice, ...], pool: str, used: dict[str, int]
) -> tuple[DiskDevice, ...]:
    """The VM's own block devices (blockDeviceRefs), in list order with their boot order."""
    disks: list[DiskDevice] = []
    for device in devices:
        if device.attachment:
            continue
        bus = _bus(vm, cdrom=device.cdrom)
        disks.append(
            DiskDevice(
                _target(bus, used),
                bus,
                "cdrom" if device.cdrom else "disk",
                pool=pool,
                volume=device.volume,
                format=device.format,
                readonly=device.readonly,
                boot_order=device.boot_order,
            )
        )
    return tuple(disks)


def seed_cdrom(vm: VirtualMachine, pool: str, volume: str, used: dict[str, int]) -> DiskDevice:
    """The provisioning seed, a read-only CD-ROM after the block devices."""
    bus = _bus(vm, cdrom=True)
    return DiskDevice(
        _target(bus, used), bus, "cdrom", pool=pool, volume=volume, format="raw", readonly=True
    )


def attached_disks(
    devices: tuple[ResolvedDevice, ...], pool: str, used: dict[str, int]
) -> tuple[DiskDevice, ...]:
    """The devices of the VM's attachments: always on the SCSI bus, as the platform
    hot-plugs them (dvp-api.md §8.1), marked by an alias naming their attachment."""
    disks: list[DiskDevice] = []
    for device in sorted((d for d in devices if d.attachment), key=lambda d: d.attachment):
        disks.append(
            DiskDevice(
                _target("scsi", used),
                "scsi",
                "cdrom" if device.cdrom else "disk",
                pool=pool,
                volume=device.volume,
                format=device.format,
                readonly=device.readonly,
                alias=ATTACHMENT_ALIAS_PREFIX + device.attachment,
            )
        )
    return tuple(disks)
