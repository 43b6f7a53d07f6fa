"""libvirt storage for disks and images: import images once, make, grow and delete disks.

Every function takes the pool's lock (lock.py) and raises a StorageError naming
the pool, the volume and the file. Volumes are named by naming.py; only those
names are ever changed or deleted.
"""

from reconciler.libvirt.storage.disks import (
    DiskVolume,
    delete_disk_volume,
    delete_volume,
    ensure_disk_volume,
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
from reconciler.libvirt.storage.naming import (
    ImageFormat,
    disk_volume_name,
    image_volume_name,
    image_volume_stem,
    is_disk_volume,
    is_project_volume,
)
from reconciler.libvirt.storage.sources import detect_format, inspect_source, source_path
from reconciler.model.volumes import sector_aligned

__all__ = [
    "DiskSmallerThanImage",
    "DiskVolume",
    "ForeignVolume",
    "ImageFormat",
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
    "disk_volume_name",
    "ensure_disk_volume",
    "ensure_image_volume",
    "find_image_volume",
    "image_volume_name",
    "image_volume_stem",
    "inspect_source",
    "is_disk_volume",
    "is_project_volume",
    "pool_lock",
    "resize_disk",
    "sector_aligned",
    "source_path",
]
