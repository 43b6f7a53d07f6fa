"""Names of the volumes this project creates, and where an image's file is: pure values.

The planner finds disks and images among the observed volumes of a pool by
these names, and the storage library (reconciler/libvirt/storage) creates,
changes and deletes only volumes named so; both import them from here, so the
planner never imports libvirt.

- A VirtualDisk's volume is `vd-NAMESPACE-NAME.qcow2`.
- An image's volume is `img-NAMESPACE-NAME-DIGEST.FORMAT` for a VirtualImage and
  `cvi-NAME-DIGEST.FORMAT` for a ClusterVirtualImage, FORMAT being what the file's
  content says (qcow2, raw or iso). DIGEST hashes the image's identity together
  with its source path: an image is immutable once imported, and pointing the
  manifest at another file imports a new image under a new name, the way a new
  container tag would, instead of overwriting one a VM may be reading.
- While an import runs, a marker volume `STEM.importing` sits beside it; a marker
  left behind means the import was cut off and its volume is incomplete.

Where the names would not fit a file name (255 bytes), the part before `.qcow2`, and
for an image the part before `-DIGEST`, is fitted (api/names.py): a readable prefix,
`_` and a hash of it. Every name that fits stays as it was.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from urllib.parse import unquote, urlparse

from reconciler.api import ObjectId
from reconciler.api.names import FILE_NAME_MAX, FITTED_MARK, fitted
from reconciler.api.names import disk_volume_name as _disk_volume_name

DISK_KIND = "VirtualDisk"
# Where a host takes image files from unless its configuration says otherwise
# (imageDirectories): images come from nowhere else (rules/images.py).
DEFAULT_IMAGE_DIRECTORIES = ("/var/lib/reconciler/images",)
IMAGE_PREFIXES = {"VirtualImage": "img", "ClusterVirtualImage": "cvi"}
IMPORTING_SUFFIX = ".importing"
_SECTOR = 512


class ImageFormat(StrEnum):
    QCOW2 = "qcow2"
    RAW = "raw"
    ISO = "iso"


# Kubernetes names: lower-case letters, digits, '-' and '.' (api/meta.py), and the hash
# that ends a fitted name.
_NAME = rf"[a-z0-9][a-z0-9.-]*(?:{FITTED_MARK}[0-9a-f]{{32}})?"
_DISK_VOLUME = re.compile(rf"^vd-{_NAME}\.qcow2$")
_IMAGE_VOLUME = re.compile(rf"^(?:img|cvi)-{_NAME}-[0-9a-f]{{8}}\.(?:qcow2|raw|iso|importing)$")
# What follows an image's fitted identity: `-DIGEST` and the longest suffix, `.importing`.
_IMAGE_TAIL = len("-12345678") + len(IMPORTING_SUFFIX)


def disk_volume_name(disk_id: ObjectId) -> str:
    if disk_id.kind != DISK_KIND:
        raise ValueError(f"{disk_id} is not a VirtualDisk; only disks have disk volumes")
    return _disk_volume_name(disk_id.namespace, disk_id.name)


def image_volume_stem(image_id: ObjectId, source: str) -> str:
    """The name of an image's volume without its format suffix."""
    prefix = IMAGE_PREFIXES.get(image_id.kind)
    if prefix is None:
        raise ValueError(f"{image_id} is not a VirtualImage or ClusterVirtualImage")
    digest = hashlib.sha256(f"{image_id}\n{source}".encode()).hexdigest()[:8]
    if image_id.namespace:
        identity = f"{prefix}-{image_id.namespace}-{image_id.name}"
    else:
        identity = f"{prefix}-{image_id.name}"
    return f"{fitted(identity, FILE_NAME_MAX - _IMAGE_TAIL)}-{digest}"


def image_volume_name(image_id: ObjectId, source: str, image_format: ImageFormat) -> str:
    return f"{image_volume_stem(image_id, source)}.{image_format.value}"


def importing_marker_name(stem: str) -> str:
    return stem + IMPORTING_SUFFIX


def image_volume_prefix(image_id: ObjectId) -> str:
    """What every volume of an image starts with, whatever its file: `img-NS-NAME-`."""
    stem = image_volume_stem(image_id, "")
    return stem[: stem.rindex("-") + 1]


def image_stem_of(name: str) -> str | None:
    """The stem of an image volume or of its import marker; None for any other volume."""
    if _IMAGE_VOLUME.match(name) is None:
        return None
    return name.rpartition(".")[0]


def is_disk_volume(name: str) -> bool:
    return _DISK_VOLUME.match(name) is not None


def is_project_volume(name: str) -> bool:
    """Whether this project created (and so may change or delete) a volume of this name."""
    return is_disk_volume(name) or _IMAGE_VOLUME.match(name) is not None


def sector_aligned(size_bytes: int) -> int:
    """The capacity libvirt reports for a qcow2 of this size: QEMU rounds up to sectors.

    Compare observed capacities with this, not with the manifest's bytes, or a
    `1G`-style size that is not a multiple of 512 looks forever too small.
    """
    return -(-size_bytes // _SECTOR) * _SECTOR


def local_path(location: str) -> str | None:
    """The path on this host of an image given by path or file:// URL; None for any
    other URL (http, a file:// URL naming another host), which cannot be imported."""
    parsed = urlparse(location)
    if parsed.scheme == "":
        return location
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return unquote(parsed.path)
    return None
