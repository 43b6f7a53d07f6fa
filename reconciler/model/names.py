"""Names derived from an object's identity, each defined once, with its parse beside it.

Every host derives the same names from the same manifests, and a derivation never
changes: a changed domain name, UUID, MAC or volume name would orphan a running
domain, its address reservation or its data. tests/model pins today's values.

- a VM's domain is `NAME.NAMESPACE`; it also names the VM's address reservation and
  starts the cloud-init instance-id. A namespace has no dots, so the last dot splits it.
- a domain's UUID and MAC are hashes of the VM's identity, so a redefinition or a
  reinstall keeps them.
- a VirtualDisk's volume is `vd-NAMESPACE-NAME.qcow2`.
- an image's volume is `img-NAMESPACE-NAME-DIGEST.FORMAT` for a VirtualImage and
  `cvi-NAME-DIGEST.FORMAT` for a ClusterVirtualImage, FORMAT being what the file's
  content says (qcow2, raw or iso). DIGEST hashes the image's identity together
  with its source path: an image is immutable once imported, and pointing the
  manifest at another file imports a new image under a new name, the way a new
  container tag would, instead of overwriting one a VM may be reading.
- while an import runs, a marker volume `STEM.importing` sits beside it; a marker
  left behind means the import was cut off and its volume is incomplete.
- a seed's volume is `cidata-NAMESPACE.NAME-DIGEST.iso`, named by its content.

The planner finds disks, images and seeds among the observed volumes of a pool by
these names, and the storage library (reconciler/libvirt/storage) creates, changes
and deletes only volumes named so. Where a volume name would not fit a file name
(255 bytes), the part before `.qcow2`, and for an image the part before `-DIGEST`, is
fitted (api/names.py): a readable prefix, `_` and a hash of it. Every name that fits
stays as it was.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from enum import StrEnum
from typing import Protocol

from reconciler.api import ObjectId
from reconciler.api.names import FILE_NAME_MAX, FITTED_MARK, fitted

VM_KIND = "VirtualMachine"
DISK_KIND = "VirtualDisk"
DISK_VOLUME_SUFFIX = ".qcow2"
IMAGE_PREFIXES = {"VirtualImage": "img", "ClusterVirtualImage": "cvi"}
IMPORTING_SUFFIX = ".importing"
# Every seed volume's name starts so; nothing else in a pool may be removed as a seed.
SEED_PREFIX = "cidata-"
# The alias of a hot-plugged disk: libvirt keeps user aliases (prefix "ua-") in both
# definitions, so the running instance tells which disks an attachment brought.
ATTACHMENT_ALIAS_PREFIX = "ua-vmbda-"

_UUID_NAMESPACE = uuid.UUID("5f3c2a4e-8d1b-4c6a-9e7f-2b0d4a6c8e10")
_IMAGE_KINDS = {prefix: kind for kind, prefix in IMAGE_PREFIXES.items()}
# Kubernetes names: lower-case letters, digits, '-' and '.' (api/meta.py), and the hash
# that ends a fitted name.
_NAME = rf"[a-z0-9][a-z0-9.-]*(?:{FITTED_MARK}[0-9a-f]{{32}})?"
_DISK_VOLUME = re.compile(rf"^vd-{_NAME}\.qcow2$")
_IMAGE_VOLUME = re.compile(rf"^(?:img|cvi)-{_NAME}-[0-9a-f]{{8}}\.(?:qcow2|raw|iso|importing)$")
# What follows an image's fitted identity: `-DIGEST` and the longest suffix, `.importing`.
_IMAGE_TAIL = len("-12345678") + len(IMPORTING_SUFFIX)


class Named(Protocol):
    """A VM as its manifest (`VirtualMachine`) or its identity (`ObjectId`) gives it."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...


class ImageFormat(StrEnum):
    QCOW2 = "qcow2"
    RAW = "raw"
    ISO = "iso"


def domain_name(vm: Named) -> str:
    """The libvirt domain of a VM: `NAME.NAMESPACE`."""
    return f"{vm.name}.{vm.namespace}"


def domain_owner(domain: str) -> ObjectId | None:
    """The VM a domain name (or a reservation named like one) names; None when it cannot
    be one. Whether this project made it is for the caller to tell (metadata, MAC)."""
    name, dot, namespace = domain.rpartition(".")
    if not dot or not name or not namespace:
        return None
    return ObjectId(VM_KIND, namespace, name)


def domain_uuid(object_id: ObjectId) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, str(object_id)))


def domain_mac(object_id: ObjectId) -> str:
    digest = hashlib.sha256(str(object_id).encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def seed_instance_id(vm: Named, content_digest: str) -> str:
    """The NoCloud instance-id: the VM's domain name and 16 hex digits of what its seed
    says (provisioning/seed.py hashes it)."""
    return f"{domain_name(vm)}-{content_digest[:16]}"


def disk_volume_name(disk_id: ObjectId) -> str:
    """A VirtualDisk's volume in the storage pool: `vd-NAMESPACE-NAME.qcow2`, fitted to a
    file name (a disk of 253 characters would not fit)."""
    if disk_id.kind != DISK_KIND:
        raise ValueError(f"{disk_id} is not a VirtualDisk; only disks have disk volumes")
    stem = fitted(f"vd-{disk_id.namespace}-{disk_id.name}", FILE_NAME_MAX - len(DISK_VOLUME_SUFFIX))
    return stem + DISK_VOLUME_SUFFIX


def is_disk_volume(name: str) -> bool:
    return _DISK_VOLUME.match(name) is not None


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


def image_kind_of(stem: str) -> str:
    """The kind of image an image volume's stem (`image_stem_of`) belongs to."""
    return _IMAGE_KINDS[stem.partition("-")[0]]


def is_project_volume(name: str) -> bool:
    """Whether this project created (and so may change or delete) a volume of this name."""
    return is_disk_volume(name) or _IMAGE_VOLUME.match(name) is not None


def seed_volume_prefix(namespace: str, vm_name: str) -> str:
    """What every seed volume of one VM is named with, whatever its kind or content.

    The dot keeps names unambiguous: a namespace has no dots, so `a-b`/`c` and `a`/`b-c`
    cannot meet in one name.
    """
    return f"{SEED_PREFIX}{namespace}.{vm_name}-"


def seed_volume_name(namespace: str, vm_name: str, image: bytes) -> str:
    """The storage-pool volume holding a VM's seed image: named by its content, so a
    changed seed is a new volume (a running guest keeps the one it booted with, and
    the next boot gets the new one) and an unchanged one is never uploaded again."""
    digest = hashlib.sha256(image).hexdigest()[:12]
    return f"{seed_volume_prefix(namespace, vm_name)}{digest}.iso"


def seed_volume_owner(volume: str) -> str | None:
    """The `seed_volume_prefix` of the VM a seed volume belongs to; None for a volume
    that is not a seed."""
    if volume.startswith(SEED_PREFIX) and "-" in volume[len(SEED_PREFIX) :]:
        return volume.rsplit("-", 1)[0] + "-"
    return None
