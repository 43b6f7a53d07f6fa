"""Image volumes that no image of the revision names any more.

An image is imported under a name that hashes its file (model/names.py), so pointing a
manifest at a new file imports a new volume and leaves the old one behind, and so
does deleting the manifest. Such a volume goes once nothing can still need it: the
revision is whole, no image manifest in it is broken (its file would be unknown), no
image of it has that name, and no domain of the host has the volume (the storage
library checks every domain again when it deletes). A volume of an image whose file
cannot be known (a broken objectRef chain, an HTTP source) is kept. Disks made from
an image are copies, never backed by it.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.api import ClusterVirtualImage, ObjectId, VirtualImage
from reconciler.engine.devices.block_devices import domain_sources
from reconciler.engine.devices.storage import StorageView
from reconciler.model.actions import DeleteImageVolume
from reconciler.model.domain import ObservedDomain
from reconciler.model.names import (
    IMAGE_PREFIXES,
    image_kind_of,
    image_stem_of,
    image_volume_prefix,
    image_volume_stem,
)


def stale_image_volumes(
    view: StorageView,
    broken: frozenset[ObjectId],
    whole_revision: bool,
    domains: Mapping[str, ObservedDomain],
) -> list[DeleteImageVolume]:
    if not whole_revision or any(b.kind in IMAGE_PREFIXES for b in broken):
        return []
    pool = view.pool
    found = sorted(
        (name, stem)
        for volume_pool, name in view.volumes
        if volume_pool == pool and (stem := image_stem_of(name)) is not None
    )
    if not found:
        return []
    wanted: set[str] = set()
    unknown: list[str] = []
    for loaded in view.inventory.objects:
        if not isinstance(loaded.model, VirtualImage | ClusterVirtualImage):
            continue
        state = view.image(loaded.id)
        if state.path:
            wanted.add(image_volume_stem(loaded.id, state.path))
        else:
            unknown.append(image_volume_prefix(loaded.id))
    in_use = set().union(*domain_sources(domains).values())
    deletions = []
    for name, stem in found:
        if stem in wanted or stem.startswith(tuple(unknown)) or f"{pool}/{name}" in in_use:
            continue
        kind = image_kind_of(stem)
        deletions.append(DeleteImageVolume(ObjectId(kind, "", name), pool, name))
    return deletions
