"""Hot-plugging an attachment's disk into a running domain, and unplugging it.

The next-boot definition already has the disk (or no longer has it): the planner
redefines the domain with its attachments first. These steps change the running
instance, and the definition too should it still differ.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import libvirt

from reconciler.libvirt.render import render_disk
from reconciler.model.actions import AttachDevice, DetachDevice
from reconciler.model.domain import DiskDevice

_LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG


def attach(conn: libvirt.virConnect, action: AttachDevice) -> int:
    """Hot-plug the disk unless the running instance has it; returns the calls made."""
    domain = conn.lookupByName(action.domain)
    flags = 0
    disk = action.disk
    live = _disks(domain.XMLDesc(0))
    if disk.source not in live.values():
        flags |= _LIVE
        disk = _free_target(disk, live)
    if domain.isPersistent():
        config = _disks(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if disk.source not in config.values() and disk.target not in config:
            flags |= _CONFIG
    if not flags:
        return 0
    domain.attachDeviceFlags(render_disk(disk), flags)
    return 1


def detach(conn: libvirt.virConnect, action: DetachDevice) -> int:
    """Unplug the attachment's disk (found by its alias) wherever it still is.

    detachDeviceFlags, not detachDeviceAlias: the latter only sends the request, so
    the pass would read the disk back as still there; the former waits (a few
    seconds) for QEMU to report the device gone, which a SCSI disk is at once.
    """
    domain = conn.lookupByName(action.domain)
    calls = 0
    live = _disk_element(domain.XMLDesc(0), action.alias)
    if live is not None:
        domain.detachDeviceFlags(live, _LIVE)
        calls += 1
    if domain.isPersistent():
        config = _disk_element(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), action.alias)
        if config is not None:
            domain.detachDeviceFlags(config, _CONFIG)
            calls += 1
    return calls


def _disks(xml: str) -> dict[str, str]:
    """Target -> source (pool/volume or file) of a definition's disks."""
    found: dict[str, str] = {}
    for disk in ET.fromstring(xml).iterfind("devices/disk"):
        target = disk.find("target")
        source = disk.find("source")
        if target is None:
            continue
        location = ""
        if source is not None:
            volume = source.get("volume")
            location = f"{source.get('pool', '')}/{volume}" if volume else source.get("file", "")
        found[target.get("dev", "")] = location
    return found


def _disk_element(xml: str, alias: str) -> str | None:
    """The `<disk>` of a definition that carries the alias, as detachDeviceFlags takes it."""
    for disk in ET.fromstring(xml).iterfind("devices/disk"):
        found = disk.find("alias")
        if found is not None and found.get("name") == alias:
            return ET.tostring(disk, encoding="unicode")
    return None


def _free_target(disk: DiskDevice, taken: dict[str, str]) -> DiskDevice:
    """The disk on its planned target, or on the first free one of its bus: the running
    instance may still have a device the next-boot definition moved (a restart pending)."""
    if disk.target not in taken:
        return disk
    prefix = disk.target[:2]  # sd, vd, hd: engine/desired.py names every target so
    for index in range(26 * 27):
        letters = ""
        number = index + 1
        while number:
            number, rest = divmod(number - 1, 26)
            letters = chr(ord("a") + rest) + letters
        if prefix + letters not in taken:
            return replace(disk, target=prefix + letters)
    return disk
