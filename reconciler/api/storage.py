"""VirtualDisk, VirtualImage, ClusterVirtualImage and block-device attachments:
dvp-api.md §8."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from reconciler.api.meta import FieldError, Manifest, Strict
from reconciler.api.quantity import DiskSize
from reconciler.api.vm import BlockDeviceKind

# Keeps even a deleted VirtualDisk manifest from deleting its volume.
PROTECT_ANNOTATION = "virtualization.deckhouse.io/protect-volume"


class DataSourceType(StrEnum):
    HTTP = "HTTP"
    CONTAINER_IMAGE = "ContainerImage"
    OBJECT_REF = "ObjectRef"
    UPLOAD = "Upload"


class HTTPSource(Strict):
    url: str = Field(min_length=1)
    checksum: dict[str, str] = Field(default_factory=dict)
    ca_bundle: str | None = None


class ContainerImageSource(Strict):
    image: str = Field(min_length=1)
    image_pull_secret: dict[str, str] = Field(default_factory=dict)
    ca_bundle: str | None = None


class ObjectRefSource(Strict):
    kind: Literal["VirtualImage", "ClusterVirtualImage", "VirtualDisk", "VirtualDiskSnapshot"]
    name: str = Field(min_length=1)
    namespace: str | None = None


class UploadSource(Strict):
    checksum: dict[str, str] = Field(default_factory=dict)


class DataSource(Strict):
    type: DataSourceType
    http: HTTPSource | None = None
    container_image: ContainerImageSource | None = None
    object_ref: ObjectRefSource | None = None
    upload: UploadSource | None = None

    @model_validator(mode="after")
    def _one_source_matching_type(self) -> DataSource:
        fields = {
            DataSourceType.HTTP: ("http", self.http),
            DataSourceType.CONTAINER_IMAGE: ("containerImage", self.container_image),
            DataSourceType.OBJECT_REF: ("objectRef", self.object_ref),
            DataSourceType.UPLOAD: ("upload", self.upload),
        }
        wanted, value = fields[self.type]
        if value is None and self.type is not DataSourceType.UPLOAD:
            raise FieldError(("type",), f"dataSource type {self.type.value} needs {wanted}")
        for kind, (field, other) in fields.items():
            if kind != self.type and other is not None:
                raise FieldError((field,), f"dataSource type {self.type.value} takes no {field}")
        return self


class DiskClaim(Strict):
    size: DiskSize | None = None
    storage_class_name: str | None = None


class VirtualDiskSpec(Strict):
    persistent_volume_claim: DiskClaim = Field(default_factory=DiskClaim)
    data_source: DataSource | None = None

    @model_validator(mode="after")
    def _sized(self) -> VirtualDiskSpec:
        size = self.persistent_volume_claim.size
        if size is None and self.data_source is None:
            raise FieldError(
                ("persistentVolumeClaim",),
                "a VirtualDisk without a dataSource needs persistentVolumeClaim.size",
            )
        if size is not None and size.bytes <= 0:
            raise FieldError(("persistentVolumeClaim", "size"), "the disk size must be above zero")
        if self.data_source is not None and self.data_source.object_ref is not None:
            kind = self.data_source.object_ref.kind
            if kind not in ("VirtualImage", "ClusterVirtualImage"):
                raise FieldError(
                    ("dataSource", "objectRef", "kind"),
                    f"a disk can be made from a VirtualImage or ClusterVirtualImage, not a {kind}",
                )
        return self


class VirtualDisk(Manifest):
    KIND: ClassVar[str] = "VirtualDisk"
    PLURAL: ClassVar[str] = "virtualdisks"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("vd", "vds")

    spec: VirtualDiskSpec

    @property
    def protected(self) -> bool:
        return self.metadata.annotations.get(PROTECT_ANNOTATION) == "true"


class ImageClaim(Strict):
    storage_class_name: str | None = None


class VirtualImageSpec(Strict):
    storage: Literal["ContainerRegistry", "PersistentVolumeClaim", "Kubernetes"] = (
        "ContainerRegistry"
    )
    persistent_volume_claim: ImageClaim | None = None
    data_source: DataSource


class VirtualImage(Manifest):
    KIND: ClassVar[str] = "VirtualImage"
    PLURAL: ClassVar[str] = "virtualimages"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("vi", "vis")

    spec: VirtualImageSpec


class ClusterVirtualImageSpec(Strict):
    data_source: DataSource


class ClusterVirtualImage(Manifest):
    KIND: ClassVar[str] = "ClusterVirtualImage"
    NAMESPACED: ClassVar[bool] = False
    PLURAL: ClassVar[str] = "clustervirtualimages"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("cvi", "cvis")

    spec: ClusterVirtualImageSpec


class AttachedDeviceRef(Strict):
    kind: BlockDeviceKind
    name: str = Field(min_length=1)


class VirtualMachineBlockDeviceAttachmentSpec(Strict):
    virtual_machine_name: str = Field(min_length=1)
    block_device_ref: AttachedDeviceRef


class VirtualMachineBlockDeviceAttachment(Manifest):
    KIND: ClassVar[str] = "VirtualMachineBlockDeviceAttachment"
    PLURAL: ClassVar[str] = "virtualmachineblockdeviceattachments"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("vmbda", "vmbdas")

    spec: VirtualMachineBlockDeviceAttachmentSpec
