"""VirtualDisk volumes: made blank or from an image, grown, deleted only when it is safe.

A disk volume, once there, belongs to its data: it is never made again, never
overwritten, never shrunk, and deleted only on request for a disk that is
neither protected nor used by a domain (SPEC §10).
"""

from __future__ import annotations

from dataclasses import dataclass

import libvirt

from reconciler.api import ObjectId
from reconciler.api.storage import PROTECT_ANNOTATION
from reconciler.libvirt.storage.errors import (
    DiskSmallerThanImage,
    ForeignVolume,
    PoolUnavailable,
    ShrinkRefused,
    StorageError,
    VolumeInUse,
    VolumeMissing,
    VolumeProtected,
)
from reconciler.libvirt.storage.images import ImageVolume
from reconciler.libvirt.storage.lock import pool_lock
from reconciler.libvirt.storage.pools import (
    create_volume,
    delete_quietly,
    find_volume,
    libvirt_message,
    require_active,
    volume_capacity,
    volume_users,
    volume_xml,
)
from reconciler.model.names import disk_volume_name, is_disk_volume, is_project_volume
from reconciler.model.volumes import sector_aligned

DISK_FORMAT = "qcow2"


@dataclass(frozen=True)
class DiskVolume:
    pool: str
    name: str
    path: str
    capacity_bytes: int
    # False when the volume was there already and left as it was.
    created: bool


def ensure_disk_volume(
    pool: libvirt.virStoragePool,
    disk_id: ObjectId,
    size_bytes: int | None,
    image: ImageVolume | None = None,
) -> DiskVolume:
    """The disk's volume: blank of `size_bytes`, or a copy of `image` grown to `size_bytes`.

    An existing volume is returned as it is, whatever its size or origin: a disk's
    dataSource only matters when it is provisioned (dvp-api.md §8.2), and growing
    is resize_disk's job.
    """
    pool_name, volume, created = _ensure(pool, disk_id, size_bytes, image)
    path, capacity = str(volume.path()), volume_capacity(volume)
    return DiskVolume(pool_name, disk_volume_name(disk_id), path, capacity, created)


def make_disk_volume(
    pool: libvirt.virStoragePool,
    disk_id: ObjectId,
    size_bytes: int | None,
    image: ImageVolume | None = None,
) -> bool:
    """ensure_disk_volume for a caller that needs only whether it made the volume: two
    calls to libvirt fewer (the path and size), a fifth of a first pass's per disk."""
    return _ensure(pool, disk_id, size_bytes, image)[2]


def _ensure(
    pool: libvirt.virStoragePool,
    disk_id: ObjectId,
    size_bytes: int | None,
    image: ImageVolume | None,
) -> tuple[str, libvirt.virStorageVol, bool]:
    name = disk_volume_name(disk_id)
    if size_bytes is None and image is None:
        raise ValueError(f"{disk_id}: a disk needs a size or an image")
    if size_bytes is not None and size_bytes <= 0:
        raise ValueError(f"{disk_id}: the disk size must be above zero")
    with pool_lock(pool):
        pool_name = require_active(pool)
        volume = find_volume(pool, name)
        created = volume is None
        if volume is None:
            if image is not None:
                volume = _copy_image(pool, pool_name, name, size_bytes, image)
            else:
                assert size_bytes is not None  # checked above
                volume = create_volume(pool, name, size_bytes, DISK_FORMAT)
        return pool_name, volume, created


def _copy_image(
    pool: libvirt.virStoragePool,
    pool_name: str,
    name: str,
    size_bytes: int | None,
    image: ImageVolume,
) -> libvirt.virStorageVol:
    wanted = sector_aligned(image.capacity_bytes if size_bytes is None else size_bytes)
    if wanted < image.capacity_bytes:
        raise DiskSmallerThanImage(
            f"the disk asks for {_size(size_bytes or 0)}, but image {image.pool}/{image.name}"
            f" holds {_size(image.capacity_bytes)}; make the disk at least that big",
            pool=pool_name,
            volume=name,
        )
    # The image's pool is not locked: an imported image is complete and never
    # changes, and the clone holds it busy in libvirt while it reads.
    source = find_volume(_image_pool(pool, pool_name, image), image.name)
    if source is None:
        raise VolumeMissing(
            f"image volume {image.pool}/{image.name} is gone; import the image again",
            pool=pool_name,
            volume=name,
        )
    try:
        volume = pool.createXMLFrom(volume_xml(name, wanted, DISK_FORMAT), source, 0)
    except libvirt.libvirtError as error:
        raise StorageError(
            f"cannot copy image {image.pool}/{image.name} into the disk: {libvirt_message(error)}",
            pool=pool_name,
            volume=name,
            path=image.path,
        ) from error
    # libvirt copies the image at its own size whatever capacity was asked for.
    if volume_capacity(volume) < wanted:
        try:
            volume.resize(wanted, 0)
        except libvirt.libvirtError as error:
            # Only a copy of the image so far, no data of anyone's: removed, so
            # that the next pass makes the disk whole instead of finding it small.
            delete_quietly(pool, name)
            raise StorageError(
                f"cannot grow the copy of image {image.name} to {_size(wanted)}:"
                f" {libvirt_message(error)}",
                pool=pool_name,
                volume=name,
            ) from error
    return volume


def _image_pool(
    pool: libvirt.virStoragePool, pool_name: str, image: ImageVolume
) -> libvirt.virStoragePool:
    if image.pool == pool_name:
        return pool
    try:
        return pool.connect().storagePoolLookupByName(image.pool)
    except libvirt.libvirtError as error:
        raise PoolUnavailable(
            f"the pool of image {image.name} is gone: {libvirt_message(error)}", pool=image.pool
        ) from error


def resize_disk(
    conn: libvirt.virConnect,
    pool: libvirt.virStoragePool,
    volume_name: str,
    new_bytes: int,
    running_domain: libvirt.virDomain | None = None,
    target_dev: str | None = None,
) -> int:
    """Grow a disk volume to `new_bytes`; return its capacity afterwards.

    A disk used by a running domain grows through that domain (QEMU holds the
    image open and locked, so only QEMU may change it, and the guest sees the new
    size at once); otherwise libvirt grows the file. When no running domain is
    given, the running domains of `conn` are searched for one using the volume.
    """
    pool_name = str(pool.name())
    if not is_disk_volume(volume_name):
        raise ForeignVolume(
            "only VirtualDisk volumes (vd-…) are resized: images are immutable and"
            " other volumes are not this project's",
            pool=pool_name,
            volume=volume_name,
        )
    if new_bytes <= 0:
        raise ValueError(f"{pool_name}/{volume_name}: the new size must be above zero")
    with pool_lock(pool):
        require_active(pool)
        volume = find_volume(pool, volume_name)
        if volume is None:
            raise VolumeMissing(
                "the disk volume does not exist", pool=pool_name, volume=volume_name
            )
        path = str(volume.path())
        current = volume_capacity(volume)
        wanted = sector_aligned(new_bytes)
        if wanted < current:
            # dvp-api.md §8.2: a disk size may only grow.
            raise ShrinkRefused(
                f"a disk cannot shrink from {_size(current)} to {_size(new_bytes)}",
                pool=pool_name,
                volume=volume_name,
                path=path,
            )
        if wanted == current:
            return current
        domain, target = _running_user(
            conn, pool_name, volume_name, path, running_domain, target_dev
        )
        try:
            if domain is not None:
                domain.blockResize(target, wanted, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
            else:
                volume.resize(wanted, 0)
        except libvirt.libvirtError as error:
            how = f"through running domain {domain.name()} ({target})" if domain else "offline"
            raise StorageError(
                f"cannot grow from {_size(current)} to {_size(wanted)} {how}:"
                f" {libvirt_message(error)}",
                pool=pool_name,
                volume=volume_name,
                path=path,
            ) from error
        return volume_capacity(volume)


def _running_user(
    conn: libvirt.virConnect,
    pool_name: str,
    volume_name: str,
    path: str,
    domain: libvirt.virDomain | None,
    target_dev: str | None,
) -> tuple[libvirt.virDomain | None, str]:
    """The running domain to grow the disk through and the disk's target there, if any."""
    if domain is not None and domain.isActive() and target_dev:
        return domain, target_dev
    users = volume_users(conn, pool_name, volume_name, path, running_only=True)
    if domain is not None and domain.isActive():
        mine = [user for user in users if user.domain == domain.name()]
        if not mine:
            raise StorageError(
                f"running domain {domain.name()} does not use the volume; name its disk target",
                pool=pool_name,
                volume=volume_name,
                path=path,
            )
        return domain, mine[0].target
    if not users:
        return None, ""
    if len(users) > 1:
        raise VolumeInUse(
            "running domains "
            + ", ".join(sorted(user.domain for user in users))
            + " share the volume; it cannot grow under all of them at once",
            pool=pool_name,
            volume=volume_name,
            path=path,
        )
    return conn.lookupByName(users[0].domain), users[0].target


def delete_disk_volume(pool: libvirt.virStoragePool, disk_id: ObjectId, protected: bool) -> bool:
    """Delete a VirtualDisk's volume; False when there was none.

    Call it only for a disk whose manifest was deleted (SPEC §10). `protected`
    is the manifest's protect annotation (VirtualDisk.protected).
    """
    return delete_volume(pool, disk_volume_name(disk_id), protected=protected)


def delete_volume(pool: libvirt.virStoragePool, volume_name: str, *, protected: bool) -> bool:
    """Delete a volume this project made; refused for anyone else's, a protected or a used one."""
    pool_name = str(pool.name())
    if not is_project_volume(volume_name):
        raise ForeignVolume(
            "the volume was not made by vm-reconciler and is never deleted by it",
            pool=pool_name,
            volume=volume_name,
        )
    with pool_lock(pool):
        require_active(pool)
        volume = find_volume(pool, volume_name)
        if volume is None:
            return False
        path = str(volume.path())
        if protected:
            raise VolumeProtected(
                f'the volume is protected by the annotation {PROTECT_ANNOTATION}="true";'
                " remove the annotation to let it go",
                pool=pool_name,
                volume=volume_name,
                path=path,
            )
        users = volume_users(pool.connect(), pool_name, volume_name, path, running_only=False)
        if users:
            # DVP keeps a disk attached to a VM from going (dvp-api.md §8.2, InUse).
            raise VolumeInUse(
                "still used by domain "
                + ", ".join(sorted({user.domain for user in users}))
                + "; detach it or delete the VM first",
                pool=pool_name,
                volume=volume_name,
                path=path,
            )
        try:
            volume.delete(0)
        except libvirt.libvirtError as error:
            raise StorageError(
                f"cannot delete the volume: {libvirt_message(error)}",
                pool=pool_name,
                volume=volume_name,
                path=path,
            ) from error
        return True


def _size(size_bytes: int) -> str:
    """A size as a manifest would write it, with the exact bytes when it is not round."""
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return f"{size_bytes} bytes"
