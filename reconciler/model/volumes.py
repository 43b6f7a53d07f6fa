"""Where an image's file is, and the sizes libvirt reports: pure values.

The names of the volumes this project creates are derived in reconciler/model/names.py.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

# Where a host takes image files from unless its configuration says otherwise
# (imageDirectories): images come from nowhere else (rules/images.py).
DEFAULT_IMAGE_DIRECTORIES = ("/var/lib/reconciler/images",)
_SECTOR = 512


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
