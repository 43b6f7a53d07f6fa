"""Small reads of a pool shared by the image and disk functions."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import libvirt

from reconciler.libvirt.escape import escape
from reconciler.libvirt.storage.errors import PoolUnavailable, StorageError


@dataclass(frozen=True)
class VolumeUser:
    """A domain whose definition refers to a volume, and the disk's target there."""

    domain: str
    target: str
    running: bool


def require_active(pool: libvirt.virStoragePool) -> str:
    """The pool's name; PoolUnavailable when it is not started."""
    name = str(pool.name())
    if not pool.isActive():
        raise PoolUnavailable(f"storage pool {name!r} is not active (virsh pool-start)", pool=name)
    return name


def find_volume(pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as error:
        if error.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise StorageError(
            f"cannot look up the volume: {libvirt_message(error)}", pool=pool.name(), volume=name
        ) from error


def create_volume(
    pool: libvirt.virStoragePool, name: str, capacity_bytes: int, volume_format: str
) -> libvirt.virStorageVol:
    """A new, empty volume, allocated lazily."""
    try:
        return pool.createXML(volume_xml(name, capacity_bytes, volume_format), 0)
    except libvirt.libvirtError as error:
        raise StorageError(
            f"cannot create the volume: {libvirt_message(error)}", pool=pool.name(), volume=name
        ) from error


def volume_xml(name: str, capacity_bytes: int, volume_format: str) -> str:
    # Written out rather than serialized by ElementTree, which costs several times the
    # createXML call itself when a first pass makes a volume for each of many VMs.
    return (
        f"<volume><name>{escape(name, quote=False)}</name>"
        f'<capacity unit="bytes">{int(capacity_bytes)}</capacity>'
        '<allocation unit="bytes">0</allocation>'
        f'<target><format type="{escape(volume_format)}" /></target></volume>'
    )


def delete_quietly(pool: libvirt.virStoragePool, name: str) -> None:
    """Remove a volume this call created, as clean-up after a failure; never raises."""
    volume = None
    with contextlib.suppress(libvirt.libvirtError):
        volume = pool.storageVolLookupByName(name)
    if volume is not None:
        with contextlib.suppress(libvirt.libvirtError):
            volume.delete(0)


def volume_format(volume: libvirt.virStorageVol) -> str:
    """The format libvirt sees in the volume ('raw' when it says none)."""
    element = ET.fromstring(volume.XMLDesc(0)).find("target/format")
    return element.get("type", "raw") if element is not None else "raw"


def volume_capacity(volume: libvirt.virStorageVol) -> int:
    _type, capacity, _allocation = volume.info()
    return int(capacity)


def volume_users(
    conn: libvirt.virConnect, pool: str, volume: str, path: str, *, running_only: bool
) -> list[VolumeUser]:
    """Domains that use the volume, by pool/volume reference or by its file path.

    A running domain is read from its live definition, and also from its next-boot
    one unless `running_only`: a disk about to be deleted must not be in either.
    """
    flags = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE if running_only else 0
    users: list[VolumeUser] = []
    for domain in conn.listAllDomains(flags):
        try:
            running = bool(domain.isActive())
            definitions = [domain.XMLDesc(0)] if running else []
            if not running_only and domain.isPersistent():
                definitions.append(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                continue  # gone while we looked
            raise
        for definition in definitions:
            target = _disk_target(definition, pool, volume, path)
            if target is not None:
                users.append(VolumeUser(str(domain.name()), target, running))
                break
    return users


def _disk_target(definition: str, pool: str, volume: str, path: str) -> str | None:
    for disk in ET.fromstring(definition).iterfind("devices/disk"):
        source = disk.find("source")
        if source is None:
            continue
        by_reference = source.get("pool") == pool and source.get("volume") == volume
        by_path = path in (source.get("file"), source.get("dev"))
        if by_reference or by_path:
            target = disk.find("target")
            return target.get("dev", "") if target is not None else ""
    return None


def libvirt_message(error: libvirt.libvirtError) -> str:
    return str(error.get_error_message() or error)
