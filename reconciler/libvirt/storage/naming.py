"""Names of the volumes this project creates: reconciler/model/names.py, re-exported.

The names are pure values the planner shares with this library (it finds disks
and images among the observed volumes by them), so they live in the model layer,
which imports no libvirt; this module keeps the library's own imports short.
"""

from reconciler.model.names import (
    DISK_KIND,
    IMAGE_PREFIXES,
    IMPORTING_SUFFIX,
    ImageFormat,
    disk_volume_name,
    image_volume_name,
    image_volume_stem,
    importing_marker_name,
    is_disk_volume,
    is_project_volume,
)

__all__ = [
    "DISK_KIND",
    "IMAGE_PREFIXES",
    "IMPORTING_SUFFIX",
    "ImageFormat",
    "disk_volume_name",
    "image_volume_name",
    "image_volume_stem",
    "importing_marker_name",
    "is_disk_volume",
    "is_project_volume",
]
