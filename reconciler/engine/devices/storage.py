"""Disks and images on the host's pool as the planner sees them (SPEC §5, dvp-api.md §8).

Pure: the revision's VirtualDisks and images, and the observed volumes of the pool
(plus, for images not imported yet, what their files hold), in; what each block
device of a VM is on the host, and the storage steps that make it so, out.

- An image (VirtualImage, ClusterVirtualImage) is a file on the host, given by path
  or file:// URL, directly or through a chain of objectRefs to other images. It is
  imported into the pool once, under a name that hashes its identity and path
  (model/names.py), and attached from there read-only: a CD-ROM when its content
  is an ISO (dvp-api.md §1.3), else a disk of its own format (qcow2, or raw).
- A VirtualDisk is the volume `vd-NAMESPACE-NAME.qcow2`: made blank, or as a copy of
  its image grown to its size, once; after that its dataSource no longer matters
  (dvp-api.md §8.2) and its size may only grow.

This module resolves each disk and image against the pool (StorageView);
vm_devices.py turns a VM's references into its devices and the steps they need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.api import (
    ClusterVirtualImage,
    ObjectId,
    VirtualDisk,
    VirtualImage,
)
from reconciler.api.storage import DataSourceType
from reconciler.findings import Finding
from reconciler.model.domain import VolumeFacts
from reconciler.model.names import (
    ImageFormat,
    disk_volume_name,
    image_volume_stem,
    importing_marker_name,
)
from reconciler.model.volumes import local_path, sector_aligned
from reconciler.rules.disks import shrink_refusal
from reconciler.rules.inventory import Inventory
from reconciler.rules.references import device_id

# An image may be made from another image; a longer chain is taken for a loop.
MAX_IMAGE_CHAIN = 8


@dataclass(frozen=True)
class ImageSourceFacts:
    """An image's file as the host shows it, read before the image is imported."""

    path: str
    format: ImageFormat | None = None
    virtual_bytes: int = 0
    # Why the file cannot be imported (missing, unreadable, a qcow2 with a backing
    # file), naming the file; empty when it can.
    problem: str = ""


@dataclass(frozen=True)
class ImageState:
    image_id: ObjectId
    path: str = ""
    # The imported volume (stem.format) when the import finished.
    volume: str | None = None
    format: ImageFormat | None = None
    capacity_bytes: int = 0
    # Why the image cannot be used; empty when it can (now, or once imported).
    problem: str = ""

    @property
    def imported(self) -> bool:
        return self.volume is not None

    @property
    def volume_name(self) -> str | None:
        """The volume's name once imported (the format decides the suffix)."""
        if self.volume is not None:
            return self.volume
        if self.format is None or not self.path:
            return None
        return f"{image_volume_stem(self.image_id, self.path)}.{self.format.value}"


@dataclass(frozen=True)
class DiskState:
    disk_id: ObjectId
    volume: str
    # The manifest's size; None for a disk as large as its image.
    size_bytes: int | None
    observed: VolumeFacts | None
    protected: bool = False
    # The image to copy the disk from: only for a disk that does not exist yet.
    image: ImageState | None = None
    # Whether the manifest has a dataSource (dvp-api.md §8.2 DatasourceReady).
    from_image: bool = False
    problem: str = ""
    # A size below the volume's capacity: refused (rules/disks.py), the disk keeps its size.
    shrink_refused: str = ""

    @property
    def settled(self) -> bool:
        """There at its size: nothing for the pool to do, nothing to tell."""
        return self.observed is not None and not self.needs_growing and not self.shrink_refused

    @property
    def needs_growing(self) -> bool:
        return (
            self.observed is not None
            and self.size_bytes is not None
            and self.observed.capacity_bytes < sector_aligned(self.size_bytes)
        )


# Disks found in a pool at the size their manifest asks for, by the very manifest object
# they were worked out from: a pass that observes the volume as it was, for the same
# manifest, has the same disk (a daemon's resync finds most disks so).
_SETTLED: dict[ObjectId, tuple[object, DiskState]] = {}
_SETTLED_LIMIT = 50_000


class StorageView:
    """The revision's disks and images against one observation, each resolved once."""

    def __init__(
        self,
        inventory: Inventory,
        volumes: Mapping[tuple[str, str], VolumeFacts],
        image_sources: Mapping[str, ImageSourceFacts],
        pool: str,
        findings: list[Finding] | None = None,
        image_directories: tuple[str, ...] = (),
    ) -> None:
        self.inventory = inventory
        self.volumes = volumes
        self.image_sources = image_sources
        self.pool = pool
        # Where image files may be read from: handed to the imports, which check again.
        self.image_directories = image_directories
        self._images: dict[ObjectId, ImageState] = {}
        self._disks: dict[ObjectId, DiskState] = {}

        # A device whose own manifest breaks a rule is not used (dvp-api.md §2.3: the VM
        # needs every device Ready).
        self._findings: dict[str, str] = {}
        for finding in findings or ():
            if finding.object.startswith(("VirtualDisk/", "VirtualImage/", "ClusterVirtual")):
                self._findings.setdefault(finding.object, finding.message)

    # --- images ---------------------------------------------------------------------

    def image(self, image_id: ObjectId) -> ImageState:
        state = self._images.get(image_id)
        if state is None:
            state = self._resolve_image(image_id)
            self._images[image_id] = state
        return state

    def _resolve_image(self, image_id: ObjectId) -> ImageState:
        path, problem = self._image_path(image_id, ())
        if problem:
            return ImageState(image_id, problem=problem)
        stem = image_volume_stem(image_id, path)
        if (self.pool, importing_marker_name(stem)) not in self.volumes:
            for image_format in ImageFormat:
                found = self.volumes.get((self.pool, f"{stem}.{image_format.value}"))
                if found is not None:
                    return ImageState(
                        image_id, path, found.name, image_format, found.capacity_bytes
                    )
        # Not imported (or an import was cut off): what the file holds decides.
        source = self.image_sources.get(path)
        if source is None:
            return ImageState(image_id, path)
        problem = f"{image_id.kind} {image_id.name}: {source.problem}" if source.problem else ""
        return ImageState(image_id, path, None, source.format, source.virtual_bytes, problem)

    def _image_path(self, image_id: ObjectId, chain: tuple[ObjectId, ...]) -> tuple[str, str]:
        """The file an image is made from, or the problem that keeps it from being known."""
        what = f"{image_id.kind} {image_id.name}"
        if image_id in chain or len(chain) >= MAX_IMAGE_CHAIN:
            return "", f"{what} is made from itself (a loop of objectRefs)"
        loaded = self.inventory.get(image_id)
        if loaded is None or not isinstance(loaded.model, VirtualImage | ClusterVirtualImage):
            return "", f"{what} does not exist or is invalid"
        known = self._findings.get(str(image_id))
        if known:
            return "", f"{what}: {known}"
        source = loaded.model.spec.data_source
        if source.type is DataSourceType.HTTP and source.http is not None:
            path = local_path(source.http.url)
            if path is None:
                return "", (
                    f"{what} comes from {source.http.url}; only files on the host"
                    " (a path or a file:// URL) can be imported"
                )
            return path, ""
        ref = source.object_ref
        if ref is not None and ref.kind in ("VirtualImage", "ClusterVirtualImage"):
            namespace = ref.namespace or image_id.namespace
            return self._image_path(device_id(ref.kind, namespace, ref.name), (*chain, image_id))
        return "", (
            f"{what} is made from a {source.type.value} source, which this host cannot"
            " import; give it a file:// URL or an objectRef to such an image"
        )

    # --- disks ----------------------------------------------------------------------

    def disk(self, disk_id: ObjectId) -> DiskState:
        state = self._disks.get(disk_id)
        if state is None:
            loaded = self.inventory.get(disk_id)
            model = loaded.model if loaded is not None else None
            known = _SETTLED.get(disk_id)
            if (
                known is not None
                and known[0] is model
                and known[1].observed == self.volumes.get((self.pool, known[1].volume))
                and not (self._findings and str(disk_id) in self._findings)
            ):
                state = known[1]
            else:
                state = self._resolve_disk(disk_id)
                if state.observed is not None and not state.problem:
                    if len(_SETTLED) >= _SETTLED_LIMIT:
                        _SETTLED.clear()
                    _SETTLED[disk_id] = (model, state)
            self._disks[disk_id] = state
        return state

    def _resolve_disk(self, disk_id: ObjectId) -> DiskState:
        what = "VirtualDisk " + disk_id.name
        volume = disk_volume_name(disk_id)
        observed = self.volumes.get((self.pool, volume))
        loaded = self.inventory.get(disk_id)
        if loaded is None or not isinstance(loaded.model, VirtualDisk):
            return DiskState(disk_id, volume, None, observed, problem=f"{what} does not exist")
        model = loaded.model
        size = model.spec.persistent_volume_claim.size
        size_bytes = size.bytes if size is not None else None
        source = model.spec.data_source
        known = self._findings.get(str(disk_id)) if self._findings else None
        image: ImageState | None = None
        problem = ""
        refusal = None
        if known:
            problem = f"{what}: {known}"
        elif observed is not None:
            # Provisioned: its dataSource no longer matters (dvp-api.md §8.2), its size does.
            if size_bytes is not None:
                aligned = sector_aligned(size_bytes)
                refusal = shrink_refusal(model.name, observed.capacity_bytes, aligned)
        elif source is not None:
            ref = source.object_ref
            if source.type is DataSourceType.OBJECT_REF and ref is not None:
                namespace = ref.namespace or disk_id.namespace
                image = self.image(device_id(ref.kind, namespace, ref.name))
                if image.problem:
                    problem = f"{what} is made from {image.problem}"
            else:
                problem = (
                    f"{what} is made from a {source.type.value} source; declare the file as"
                    " a VirtualImage and make the disk from it with an objectRef"
                )
        return DiskState(
            disk_id,
            volume,
            size_bytes,
            observed,
            model.protected,
            image,
            source is not None,
            problem,
            refusal or "",
        )
