"""A provisioning seed CD-ROM and a live migration that copies the disks.

libvirt copies only writable disks (`NON_SHARED_DISK`): a read-only one must already be
on the destination at the same path, and listing it in the disks to copy is refused
("Cannot migrate empty or read-only disk"). A seed is read by cloud-init (or sysprep)
at boot and never after, so before such a migration the running instance's seed media
is ejected (the next-boot definition keeps it); the destination's host makes the seed
volume again from the manifest as it makes any missing seed, and the next boot has it.
A migration that fails puts the media back.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import libvirt

from reconciler.model.names import seed_volume_owner

log = logging.getLogger(__name__)


def eject_seeds(domain: libvirt.virDomain) -> list[str]:
    """Eject the running instance's seed CD-ROMs; returns each one's `<disk>` as it was,
    for `insert_again`."""
    live = ET.fromstring(domain.XMLDesc(0))
    ejected: list[str] = []
    for disk in live.findall("./devices/disk[@device='cdrom']"):
        source = disk.find("source")
        volume = source.get("volume", "") if source is not None else ""
        if source is None or seed_volume_owner(volume) is None:
            continue
        before = ET.tostring(disk, encoding="unicode")
        disk.remove(source)
        domain.updateDeviceFlags(
            ET.tostring(disk, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE
        )
        ejected.append(before)
    return ejected


def insert_again(domain: libvirt.virDomain, ejected: list[str]) -> None:
    """Put the ejected media back after a migration that did not happen; a failure is
    only logged: the guest runs on, and its next boot has the seed all the same."""
    for disk in ejected:
        try:
            domain.updateDeviceFlags(disk, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as error:
            log.warning("%s: its seed CD-ROM stays ejected: %s", domain.name(), error)
