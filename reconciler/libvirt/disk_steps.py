"""The planner's storage actions, carried out with the storage library (libvirt/storage).

Each returns how many volumes it created, grew or deleted (the applier counts them
as mutations); the library raises a StorageError naming pool, volume and file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import libvirt

from reconciler.libvirt.storage import (
    ImageImportFailed,
    ImageSourceMissing,
    PoolUnavailable,
    VolumeInUse,
    VolumeMissing,
    delete_volume,
    ensure_image_volume,
    find_image_volume,
    inspect_source,
    make_disk_volume,
    pool_lock,
    resize_disk,
    source_path,
)
from reconciler.libvirt.storage.pools import create_volume, find_volume, volume_capacity
from reconciler.libvirt.storage.sources import ImageSource
from reconciler.model.actions import (
    DeleteDiskVolume,
    DeleteImageVolume,
    EnsureDiskVolume,
    EnsureImageVolume,
    ResizeDisk,
)
from reconciler.model.names import ImageFormat, image_volume_name

log = logging.getLogger(__name__)

# An import says how far it is at every tenth of the file.
PROGRESS_STEPS = 10


def storage_pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as error:
        raise PoolUnavailable(
            f"storage pool {name!r} does not exist; create it (virsh pool-define-as)"
            " or name another one with --storage-pool",
            pool=name,
        ) from error


def import_image(
    conn: libvirt.virConnect, action: EnsureImageVolume, report: Callable[[str], None]
) -> int:
    """Import the image unless it is there; holds the pool's lock for the whole upload,
    so other storage steps of the pool wait for it. Its file is read only inside the
    action's directories (the host's imageDirectories), checked as it is opened."""
    directories = action.directories
    pool = storage_pool(conn, action.pool)
    if find_image_volume(pool, action.image, action.source) is not None:
        return 0
    what = f"{action.image.kind} {action.image.name}"
    try:
        ensure_image_volume(
            pool,
            action.image,
            action.source,
            directories=directories,
            progress=_Progress(what, report),
        )
    except (ImageImportFailed, ImageSourceMissing) as error:
        if not is_test_driver(conn):
            raise
        if isinstance(error, ImageImportFailed) and not _unsupported(error):
            raise
        _stand_in(pool, action, directories)
    return 1


class _Progress:
    """Reports an upload at each tenth, so a large image shows it is moving."""

    def __init__(self, what: str, report: Callable[[str], None]) -> None:
        self._what = what
        self._report = report
        self._step = -1

    def __call__(self, done: int, total: int) -> None:
        step = done * PROGRESS_STEPS // total if total else PROGRESS_STEPS
        if step != self._step:
            self._step = step
            mib = 1024 * 1024
            self._report(
                f"importing {self._what}: {step * 100 // PROGRESS_STEPS}%"
                f" ({done // mib} of {total // mib} MiB)"
            )


def is_test_driver(conn: libvirt.virConnect) -> bool:
    """libvirt's test driver: a simulated host that keeps no volume data at all."""
    return str(conn.getType()).lower() == "test"


def simulated_source(path: str) -> ImageSource:
    """What the test driver's simulated host takes an image file to be when it is not on
    this machine (the sample repository's images are not): named by its suffix, empty."""
    suffix = path.rpartition(".")[2].lower()
    image_format = ImageFormat(suffix) if suffix in ("qcow2", "iso") else ImageFormat.RAW
    return ImageSource(path, image_format, 0, 0)


def _unsupported(error: ImageImportFailed) -> bool:
    cause = error.__cause__
    return (
        isinstance(cause, libvirt.libvirtError)
        and cause.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT
    )


def _stand_in(
    pool: libvirt.virStoragePool, action: EnsureImageVolume, directories: Sequence[str]
) -> None:
    """On the test driver a volume stands for its content, as every volume there does
    (the seeds too, libvirt/apply.py): the image's volume, of its name and size."""
    path = source_path(action.source)
    try:
        image = inspect_source(path, directories)
    except ImageSourceMissing:
        image = simulated_source(path)
    name = image_volume_name(action.image, image.path, image.format)
    log.warning(
        "%s keeps no volume data; image %s/%s stands for %s without its content",
        pool.connect().getURI(),
        pool.name(),
        name,
        image.path,
    )
    with pool_lock(pool):
        if find_volume(pool, name) is None:
            kind = "qcow2" if image.format is ImageFormat.QCOW2 else "raw"
            create_volume(pool, name, image.virtual_bytes, kind)


def make_disk(conn: libvirt.virConnect, action: EnsureDiskVolume) -> int:
    pool = storage_pool(conn, action.pool)
    image = None
    if action.image is not None:
        image = find_image_volume(pool, action.image, action.image_source)
        if image is None:
            raise VolumeMissing(
                f"{action.image.kind} {action.image.name} is not imported, so the disk"
                " cannot be made from it yet",
                pool=action.pool,
                volume=action.volume,
            )
    return 1 if make_disk_volume(pool, action.disk, action.capacity_bytes, image) else 0


def grow_disk(conn: libvirt.virConnect, action: ResizeDisk) -> int:
    pool = storage_pool(conn, action.pool)
    volume = find_volume(pool, action.volume)
    before = volume_capacity(volume) if volume is not None else 0
    after = resize_disk(conn, pool, action.volume, action.capacity_bytes)
    return 1 if after != before else 0


def remove_disk(conn: libvirt.virConnect, action: DeleteDiskVolume) -> int:
    pool = storage_pool(conn, action.pool)
    return 1 if delete_volume(pool, action.volume, protected=action.protected) else 0


def remove_image(conn: libvirt.virConnect, action: DeleteImageVolume) -> int:
    pool = storage_pool(conn, action.pool)
    try:
        return 1 if delete_volume(pool, action.volume, protected=False) else 0
    except VolumeInUse as error:
        # A domain the planner does not see (not ours) has it: kept, and nothing failed.
        log.info("image volume %s/%s is kept: %s", action.pool, action.volume, error)
        return 0
