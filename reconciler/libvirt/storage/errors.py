"""What can go wrong with volumes and images, each error naming the pool, volume and file.

Each is also retryable (the pool or the volume may change by the next pass) or
permanent (until the manifest or the file changes): reconciler/model/errors.py.
"""

from __future__ import annotations

from reconciler.model.errors import PermanentError, ReconcileError, RetryableError


class StorageError(ReconcileError):
    """A storage step that did not happen; the message says where and why.

    `pool`, `volume` and `path` (the volume's file, or an image's source file)
    are kept apart too, so the engine can put them into a condition.
    """

    def __init__(
        self,
        message: str,
        *,
        pool: str | None = None,
        volume: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(_located(message, pool, volume, path))
        self.reason = message
        self.pool = pool
        self.volume = volume
        self.path = path

    def located(self, *, pool: str, volume: str) -> StorageError:
        """The same error, saying which pool and volume it kept from being made."""
        return type(self)(self.reason, pool=pool, volume=volume, path=self.path)


def _located(message: str, pool: str | None, volume: str | None, path: str | None) -> str:
    where = f"{pool}/{volume}" if pool and volume else pool or volume or ""
    if path:
        where = f"{where} ({path})" if where else path
    return f"{where}: {message}" if where else message


class PoolUnavailable(StorageError, RetryableError):
    """The storage pool is not defined or not started."""


class ImageSourceMissing(StorageError, RetryableError):
    """The file an image is made from is not there (the VM waits: BlockDevicesReady False)."""


class ImageSourceInvalid(StorageError, PermanentError):
    """The image source is not something this host can import (URL scheme, backing file)."""


class ImageSourceRefused(ImageSourceInvalid):
    """The image file lies outside the host's imageDirectories: it is never read."""


class ImageImportFailed(StorageError, RetryableError):
    """Copying an image into the pool failed; nothing of the attempt is left in the pool."""


class DiskSmallerThanImage(StorageError, PermanentError):
    """A disk asks for less room than the image it is made from holds."""


class ShrinkRefused(StorageError, PermanentError):
    """A disk may only grow (dvp-api.md §8.2): shrinking would cut off the guest's data."""


class VolumeProtected(StorageError, PermanentError):
    """The disk's manifest asks to keep the volume even when the manifest goes."""


class VolumeInUse(StorageError, RetryableError):
    """A domain still uses the volume."""


class ForeignVolume(StorageError, PermanentError):
    """The volume is not one this project creates, so it is never changed or deleted."""


class VolumeMissing(StorageError, RetryableError):
    """A volume the call needs is not in the pool."""
