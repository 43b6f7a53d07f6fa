"""libvirt storage for disks and images: import images once, make, grow and delete disks.

Every function takes the pool's lock (lock.py) and raises a StorageError naming
the pool, the volume and the file. Volumes are named by reconciler/model/names.py;
only those names are ever changed or deleted.
"""

from reconciler.libvirt.storage.disks import (
    DiskVolume,
    delete_disk_volume,
    delete_volume,
    ensure_disk_volume,
    make_disk_volume,
    resize_disk,
)
from reconciler.libvirt.storage.errors import (
    DiskSmallerThanImage,
    ForeignVolume,
    ImageImportFailed,
    ImageSourceInvalid,
    ImageSourceMissing,
    ImageSourceRefused,
    PoolUnavailable,
    ShrinkRefused,
    StorageError,
    VolumeInUse,
    VolumeMissing,
    VolumeProtected,
)
from reconciler.libvirt.storage.images import (
    ImageVolume,
    ImportProgress,
    ensure_image_volume,
    find_image_volume,
)
from reconciler.libvirt.storage.lock import pool_lock
from reconciler.libvirt.storage.sources import detect_format, inspect_source, source_path

__all__ = [
    "DiskSmallerThanImage",
    "DiskVolume",
    "ForeignVolume",
    "ImageImportFailed",
    "ImageSourceInvalid",
    "ImageSourceMissing",
    "ImageSourceRefused",
    "ImageVolume",
    "ImportProgress",
    "PoolUnavailable",
    "ShrinkRefused",
    "StorageError",
    "VolumeInUse",
    "VolumeMissing",
    "VolumeProtected",
    "delete_disk_volume",
    "delete_volume",
    "detect_format",
    "ensure_disk_volume",
    "ensure_image_volume",
    "find_image_volume",
    "inspect_source",
    "make_disk_volume",
    "pool_lock",
    "resize_disk",
    "source_path",
]
