"""VirtualImages and ClusterVirtualImages imported into a pool, once (dvp-api.md §8.3).

An image is immutable once imported: a later call finds its volume and neither
reads nor copies the source file again, even if that file has changed or gone
since (VMs keep starting from what was imported). Pointing the manifest at
another path gives a new volume name (model/names.py), so a change in Git is a new
image; changing a file in place is not noticed, as re-pushing a container tag
would not be by a running cluster.

Every volume is first created raw, exactly as long as the file, and the file's
bytes are uploaded as they are; libvirt then probes the format from the content
(qcow2, ISO), so the volume holds the very file, never a conversion of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import libvirt

from reconciler.api import ObjectId
from reconciler.libvirt.storage.errors import (
    ImageImportFailed,
    ImageSourceInvalid,
    ImageSourceMissing,
)
from reconciler.libvirt.storage.lock import pool_lock
from reconciler.libvirt.storage.pools import (
    create_volume,
    delete_quietly,
    find_volume,
    libvirt_message,
    require_active,
    volume_capacity,
    volume_format,
)
from reconciler.libvirt.storage.sources import (
    ImageSource,
    inspect_file,
    opened_source,
    source_path,
)
from reconciler.model.names import ImageFormat, image_volume_stem, importing_marker_name

log = logging.getLogger(__name__)

# (bytes uploaded so far, bytes in all); raising from it cancels the import.
ImportProgress = Callable[[int, int], None]
UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ImageVolume:
    pool: str
    name: str
    path: str
    format: ImageFormat
    # What a guest sees: a qcow2's virtual size, the file's size otherwise.
    capacity_bytes: int

    @property
    def cdrom(self) -> bool:
        """Attached as a CD-ROM, as DVP does for ISO images (status.cdrom)."""
        return self.format is ImageFormat.ISO


def find_image_volume(
    pool: libvirt.virStoragePool, image_id: ObjectId, source: str | os.PathLike[str]
) -> ImageVolume | None:
    """The image's volume if it was imported completely; reads nothing but the pool.

    Takes no lock, so it answers at once while an import runs (None until it is
    done): the volume is looked up before the marker, and an import creates the
    marker before the volume and removes it after the upload, so a volume seen
    with no marker after it is complete.
    """
    path = source_path(source)
    pool_name = require_active(pool)
    stem = image_volume_stem(image_id, path)
    imported = _imported(pool, pool_name, stem)
    if imported is None or find_volume(pool, importing_marker_name(stem)) is not None:
        return None
    return imported


def ensure_image_volume(
    pool: libvirt.virStoragePool,
    image_id: ObjectId,
    source: str | os.PathLike[str],
    *,
    directories: Sequence[str],
    progress: ImportProgress | None = None,
) -> ImageVolume:
    """The image's volume, imported from `source` (a path or file:// URL) if not yet there.

    The file is read only if it lies inside `directories` (the host's imageDirectories):
    else ImageSourceRefused, and no volume is made. Holds the pool's lock for the whole
    upload: other jobs in the pool wait.
    """
    path = source_path(source)
    with pool_lock(pool):
        pool_name = require_active(pool)
        stem = image_volume_stem(image_id, path)
        marker = find_volume(pool, importing_marker_name(stem))
        if marker is None:
            imported = _imported(pool, pool_name, stem)
            if imported is not None:
                return imported
        else:
            _discard_unfinished(pool, pool_name, stem)
        try:
            with opened_source(path, directories) as file:
                image = inspect_file(file, path)
                return _import(pool, pool_name, stem, image, file, progress)
        except (ImageSourceMissing, ImageSourceInvalid) as error:
            raise error.located(pool=pool_name, volume=f"{stem}.*") from error


def _imported(pool: libvirt.virStoragePool, pool_name: str, stem: str) -> ImageVolume | None:
    for image_format in ImageFormat:
        volume = find_volume(pool, f"{stem}.{image_format.value}")
        if volume is not None:
            return ImageVolume(
                pool=pool_name,
                name=str(volume.name()),
                path=str(volume.path()),
                format=image_format,
                capacity_bytes=volume_capacity(volume),
            )
    return None


def _discard_unfinished(pool: libvirt.virStoragePool, pool_name: str, stem: str) -> None:
    """Remove what an import cut off by a crash left: a partial volume and its marker."""
    log.warning("%s/%s: removing an import that did not finish", pool_name, stem)
    for image_format in ImageFormat:
        delete_quietly(pool, f"{stem}.{image_format.value}")
    delete_quietly(pool, importing_marker_name(stem))
    if find_volume(pool, importing_marker_name(stem)) is not None:
        raise ImageImportFailed(
            "an earlier import did not finish and its marker volume cannot be removed",
            pool=pool_name,
            volume=importing_marker_name(stem),
        )


def _import(
    pool: libvirt.virStoragePool,
    pool_name: str,
    stem: str,
    image: ImageSource,
    file: BinaryIO,
    progress: ImportProgress | None,
) -> ImageVolume:
    name = f"{stem}.{image.format.value}"
    marker_name = importing_marker_name(stem)
    # The marker goes first and last: libvirt cannot rename a volume, so a crash
    # mid-upload would otherwise leave a truncated image under its final name.
    create_volume(pool, marker_name, 0, "raw")
    try:
        volume = create_volume(pool, name, image.file_bytes, "raw")
        _upload(pool.connect(), volume, image, file, progress)
        # Makes libvirt probe the uploaded content, so the volume says qcow2 or
        # iso; a clone would otherwise read a qcow2 file as raw data.
        pool.refresh(0)
        volume = pool.storageVolLookupByName(name)
        seen = volume_format(volume)
        if seen != image.format.value:
            raise ImageImportFailed(
                f"libvirt reads the imported volume as {seen}, the file as {image.format.value};"
                " only qcow2, raw and ISO images are supported"
                " (convert with qemu-img convert -O qcow2)",
                pool=pool_name,
                volume=name,
                path=image.path,
            )
        pool.storageVolLookupByName(marker_name).delete(0)
    except BaseException as error:
        delete_quietly(pool, name)
        delete_quietly(pool, marker_name)
        if isinstance(error, libvirt.libvirtError | OSError):
            reason = libvirt_message(error) if isinstance(error, libvirt.libvirtError) else error
            raise ImageImportFailed(
                f"cannot import the image file: {reason}",
                pool=pool_name,
                volume=name,
                path=image.path,
            ) from error
        raise
    return ImageVolume(pool_name, name, str(volume.path()), image.format, image.virtual_bytes)


def _upload(
    conn: libvirt.virConnect,
    volume: libvirt.virStorageVol,
    image: ImageSource,
    source: BinaryIO,
    progress: ImportProgress | None,
) -> None:
    stream = conn.newStream(0)
    try:
        volume.upload(stream, 0, image.file_bytes, 0)
        done = 0
        source.seek(0)
        while done < image.file_bytes:
            chunk = source.read(min(UPLOAD_CHUNK_BYTES, image.file_bytes - done))
            if not chunk:
                raise OSError(f"{image.path} became shorter while it was imported")
            _send_all(stream, chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, image.file_bytes)
        stream.finish()
    except BaseException:
        # The stream may never have started, or be gone already.
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise


def _send_all(stream: libvirt.virStream, data: bytes) -> None:
    # A blocking stream may still take less than it was given.
    while data:
        sent = stream.send(data)
        if sent <= 0:
            raise OSError(f"libvirt accepted no more data (send returned {sent})")
        data = data[sent:]
