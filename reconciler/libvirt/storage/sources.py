"""An image's source file on the host: where it is, what format it holds, how big it is.

Only files inside the host's image directories are opened (confined.py); a file is
inspected and uploaded through one descriptor, so what was checked is what is read.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from reconciler.confined import NotARegularFile, OutsideDirectories, open_inside
from reconciler.libvirt.storage.errors import (
    ImageSourceInvalid,
    ImageSourceMissing,
    ImageSourceRefused,
)
from reconciler.model.names import ImageFormat
from reconciler.model.volumes import local_path

_QCOW2_MAGIC = b"QFI\xfb"
# ISO 9660: the first volume descriptor sits at sector 16 (0x8000); its
# identifier "CD001" follows the one-byte type.
_ISO_MAGIC = b"CD001"
_ISO_MAGIC_OFFSET = 0x8001
# qcow2 header (big-endian): magic, version, backing_file_offset, backing_file_size,
# cluster_bits, size; version 3 adds incompatible_features at offset 72.
_QCOW2_HEADER = struct.Struct(">4sIQIIQ")
_QCOW2_INCOMPATIBLE_OFFSET = 72
_QCOW2_EXTERNAL_DATA_FILE = 1 << 2


@dataclass(frozen=True)
class ImageSource:
    path: str
    format: ImageFormat
    file_bytes: int
    # What a guest sees: the virtual size of a qcow2, the file size otherwise.
    virtual_bytes: int


def source_path(location: str | os.PathLike[str]) -> str:
    """The local path of an image given by path or file:// URL (desired.py's rule)."""
    text = os.fspath(location)
    path = local_path(text)
    if path is not None:
        return path
    raise ImageSourceInvalid(
        "only images given by a path or a file:// URL on this host can be imported",
        path=text,
    )


def refusal(directories: Sequence[str]) -> str:
    listed = ", ".join(directories) or "none"
    return f"the image file is not inside the allowed image directories ({listed}); it is not read"


@contextmanager
def opened_source(path: str, directories: Sequence[str]) -> Iterator[BinaryIO]:
    """The image file open for reading, only if it lies inside `directories` (confined.py:
    checked on the path and again on the file opened). Errors name the file as the
    manifest gives it, never where a symlink leads, and say nothing of its content."""
    try:
        descriptor = open_inside(path, directories)
    except OutsideDirectories:
        raise ImageSourceRefused(refusal(directories), path=path) from None
    except NotARegularFile:
        raise ImageSourceInvalid("the image source is not a regular file", path=path) from None
    except FileNotFoundError:
        raise ImageSourceMissing("the image file does not exist", path=path) from None
    except OSError as error:
        raise ImageSourceMissing(
            f"the image file cannot be read: {error.strerror}", path=path
        ) from None
    with os.fdopen(descriptor, "rb") as file:
        yield file


def inspect_source(path: str, directories: Sequence[str]) -> ImageSource:
    """Format and sizes of an image file inside `directories`; errors name the file and
    what is wrong."""
    with opened_source(path, directories) as file:
        return inspect_file(file, path)


def inspect_file(file: BinaryIO, path: str) -> ImageSource:
    """Format and sizes of an image file already opened (opened_source)."""
    try:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            raise ImageSourceInvalid("the image file is empty", path=path)
        file.seek(0)
        head = file.read(_ISO_MAGIC_OFFSET + len(_ISO_MAGIC))
    except OSError as error:
        raise ImageSourceMissing(
            f"the image file cannot be read: {error.strerror}", path=path
        ) from error
    image_format = detect_format(head)
    virtual = _qcow2_virtual_bytes(head, path) if image_format is ImageFormat.QCOW2 else size
    return ImageSource(path, image_format, size, virtual)


def detect_format(head: bytes) -> ImageFormat:
    """The format the first bytes of a file show; anything unrecognised is raw."""
    if head.startswith(_QCOW2_MAGIC):
        return ImageFormat.QCOW2
    if head[_ISO_MAGIC_OFFSET : _ISO_MAGIC_OFFSET + len(_ISO_MAGIC)] == _ISO_MAGIC:
        return ImageFormat.ISO
    return ImageFormat.RAW


def _qcow2_virtual_bytes(head: bytes, path: str) -> int:
    if len(head) < _QCOW2_HEADER.size:
        raise ImageSourceInvalid("the qcow2 header is truncated", path=path)
    _magic, version, backing_offset, _backing_size, _bits, virtual = _QCOW2_HEADER.unpack_from(head)
    # A backing file or an external data file would make QEMU read another file
    # of the host whenever the image is copied or attached: an image must stand alone.
    if backing_offset:
        raise ImageSourceInvalid(
            "the qcow2 image has a backing file; flatten it first"
            " (qemu-img convert -O qcow2 SOURCE FLAT.qcow2)",
            path=path,
        )
    if version >= 3 and len(head) >= _QCOW2_INCOMPATIBLE_OFFSET + 8:
        (incompatible,) = struct.unpack_from(">Q", head, _QCOW2_INCOMPATIBLE_OFFSET)
        if incompatible & _QCOW2_EXTERNAL_DATA_FILE:
            raise ImageSourceInvalid(
                "the qcow2 image keeps its data in an external file; flatten it first",
                path=path,
            )
    return int(virtual)
