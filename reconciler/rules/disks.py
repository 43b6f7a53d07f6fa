"""Rules on VirtualDisks: one volume per disk, and a size that only grows (dvp-api.md §8.2)."""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.api import VirtualDisk
from reconciler.findings import Finding, Rule
from reconciler.loader import LoadedObject
from reconciler.model.names import disk_volume_name
from reconciler.rules.derived import Derived
from reconciler.rules.inventory import Inventory

# A disk's volume name, worked out once per (frozen) disk object.
_VOLUMES: Derived[str] = Derived()


def volume_name_findings(inventory: Inventory) -> Iterator[Finding]:
    """Two disks whose volumes would have the same name (`vd-NAMESPACE-NAME.qcow2`: namespace
    `a` with disk `b-c`, and namespace `a-b` with disk `c`) would share one volume on the
    host, each VM writing over the other's data; the second one is refused."""
    claims: dict[str, LoadedObject] = {}
    for loaded, disk in inventory.of_kind(VirtualDisk):
        volume = _VOLUMES.get(loaded)
        if volume is None:
            volume = _VOLUMES.put(loaded, disk_volume_name(disk.id))
        earlier = claims.setdefault(volume, loaded)
        if earlier is not loaded:
            yield loaded.finding(
                ("metadata", "name"),
                f"VirtualDisk {disk.name} would share the volume {volume} with {earlier.id};"
                " rename one of them",
                Rule.CONFLICT,
            )


def shrink_refusal(disk_name: str, capacity_bytes: int, requested_bytes: int) -> str | None:
    """Why a disk is not resized to `requested_bytes` (as libvirt rounds it), or None.

    dvp-api.md §8.2: a disk's size may only grow. A smaller size would cut off the
    guest's data at the end of the disk, so the disk keeps its size and says so.
    """
    if requested_bytes >= capacity_bytes:
        return None
    return (
        f"VirtualDisk {disk_name} has {size_text(capacity_bytes)}; shrinking it to"
        f" {size_text(requested_bytes)} is refused: a disk can only grow."
        f" Set persistentVolumeClaim.size to {size_text(capacity_bytes)} or more"
    )


def size_text(size_bytes: int) -> str:
    """A size as a manifest would write it, with the exact bytes when it is not round."""
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return f"{size_bytes} bytes"
