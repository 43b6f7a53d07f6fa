"""The source's copies of the volumes a live migration copied.

With `NON_SHARED_DISK` libvirt copies each writable disk into a volume of the same name
in the destination's pool, runs the guest there, and undefines the domain here, but
leaves the volumes here: every migration would leave a full copy of the guest's disks
on the host it left. Once libvirt has said the migration succeeded the guest writes
only to the destination's copies, so those here are stale and go, with the seed
volumes ejected for the move (seed_media.py), which the destination made again. Only
volumes of this host's pools that the domain named are touched, and only after a
migration that succeeded; a failed one leaves everything as it was.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import libvirt

log = logging.getLogger(__name__)


def copied_volumes(domain: libvirt.virDomain) -> list[tuple[str, str]]:
    """(pool, volume) of each writable pool-volume disk of the running instance: what a
    migration with its storage copied."""
    live = ET.fromstring(domain.XMLDesc(0))
    found: list[tuple[str, str]] = []
    for disk in live.findall("./devices/disk[@type='volume']"):
        source = disk.find("source")
        if disk.find("readonly") is not None or source is None:
            continue
        pool, volume = source.get("pool", ""), source.get("volume", "")
        if pool and volume:
            found.append((pool, volume))
    return found


def volumes_of(disks: list[str]) -> list[tuple[str, str]]:
    """(pool, volume) of each `<disk>` element given as text (the ejected seeds)."""
    found: list[tuple[str, str]] = []
    for text in disks:
        source = ET.fromstring(text).find("source")
        if source is not None and source.get("pool") and source.get("volume"):
            found.append((source.get("pool", ""), source.get("volume", "")))
    return found


def remove_left_behind(
    connection: libvirt.virConnect, domain_name: str, volumes: list[tuple[str, str]]
) -> None:
    """Delete the copies a successful migration left here; one that cannot go is logged
    and left (it costs space, never data)."""
    for pool_name, volume_name in volumes:
        try:
            pool = connection.storagePoolLookupByName(pool_name)
            pool.storageVolLookupByName(volume_name).delete(0)
        except libvirt.libvirtError as error:
            log.warning(
                "%s moved; its old volume %s/%s stays here: %s",
                domain_name,
                pool_name,
                volume_name,
                error,
            )
            continue
        log.info(
            "%s moved; its old volume %s/%s is deleted here", domain_name, pool_name, volume_name
        )
