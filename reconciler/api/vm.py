"""VirtualMachine (`vm`): dvp-api.md §1."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from reconciler.api.meta import INT32_MAX, INT64_MAX, FieldError, Manifest, Strict, empty_list
from reconciler.api.names import VM_NAME_MAX
from reconciler.api.quantity import MemorySize, Percent, Quantity
from reconciler.api.scheduling import Toleration, TopologySpreadConstraint, VMAffinity

MAX_BLOCK_DEVICES = 16
MAX_VM_NAME = VM_NAME_MAX
USERDATA_LIMIT = 2048


class RunPolicy(StrEnum):
    ALWAYS_ON = "AlwaysOn"
    ALWAYS_OFF = "AlwaysOff"
    MANUAL = "Manual"
    ALWAYS_ON_UNLESS_STOPPED_MANUALLY = "AlwaysOnUnlessStoppedManually"


class RestartApprovalMode(StrEnum):
    MANUAL = "Manual"
    AUTOMATIC = "Automatic"


class LiveMigrationPolicy(StrEnum):
    ALWAYS_SAFE = "AlwaysSafe"
    PREFER_SAFE = "PreferSafe"
    ALWAYS_FORCED = "AlwaysForced"
    PREFER_FORCED = "PreferForced"


class OsType(StrEnum):
    WINDOWS = "Windows"
    GENERIC = "Generic"
    LEGACY = "Legacy"


class Bootloader(StrEnum):
    BIOS = "BIOS"
    EFI = "EFI"
    EFI_WITH_SECURE_BOOT = "EFIWithSecureBoot"


class BlockDeviceKind(StrEnum):
    VIRTUAL_DISK = "VirtualDisk"
    VIRTUAL_IMAGE = "VirtualImage"
    CLUSTER_VIRTUAL_IMAGE = "ClusterVirtualImage"


class CPU(Strict):
    cores: int = Field(ge=1, le=INT32_MAX)
    core_fraction: Percent = Field(default_factory=lambda: Percent(100))


class Memory(Strict):
    size: MemorySize

    @field_validator("size")
    @classmethod
    def _positive(cls, value: Quantity) -> Quantity:
        if value.bytes <= 0:
            raise ValueError("memory.size must be more than zero")
        return value


class BlockDeviceRef(Strict):
    kind: BlockDeviceKind
    name: str = Field(min_length=1)
    boot_order: int | None = Field(default=None, ge=1, le=INT64_MAX)


class SecretRef(Strict):
    kind: Literal["Secret"] = "Secret"
    name: str = Field(min_length=1)


class ProvisioningType(StrEnum):
    USER_DATA = "UserData"
    USER_DATA_REF = "UserDataRef"
    SYSPREP_REF = "SysprepRef"


class Provisioning(Strict):
    type: ProvisioningType
    user_data: str | None = None
    user_data_ref: SecretRef | None = None
    sysprep_ref: SecretRef | None = None

    @model_validator(mode="after")
    def _one_payload_matching_type(self) -> Provisioning:
        # dvp-api.md §1.2: exactly one payload, the one the type names.
        payloads = {
            ProvisioningType.USER_DATA: ("userData", self.user_data),
            ProvisioningType.USER_DATA_REF: ("userDataRef", self.user_data_ref),
            ProvisioningType.SYSPREP_REF: ("sysprepRef", self.sysprep_ref),
        }
        wanted, value = payloads[self.type]
        if value is None:
            raise FieldError(("type",), f"provisioning type {self.type.value} needs {wanted}")
        for kind, (field, other) in payloads.items():
            if kind != self.type and other is not None:
                raise FieldError(
                    (field,),
                    f"provisioning type {self.type.value} takes only {wanted}, not {field}",
                )
        return self


class Disruptions(Strict):
    restart_approval_mode: RestartApprovalMode = RestartApprovalMode.MANUAL


class NetworkSpec(Strict):
    type: Literal["Main", "Network", "ClusterNetwork"]
    name: str | None = None
    id: int | None = Field(default=None, ge=1, le=16383)


class KernelBoot(Strict):
    """Direct kernel boot from files on the host (this project's extension).

    Used for tiny appliance images and the project's own end-to-end guest; the
    platform itself always boots from a block device.
    """

    kernel: str = Field(min_length=1)
    initrd: str | None = None
    cmdline: str | None = None


class VirtualMachineSpec(Strict):
    virtual_machine_class_name: str = Field(min_length=1)
    run_policy: RunPolicy = RunPolicy.ALWAYS_ON_UNLESS_STOPPED_MANUALLY
    virtual_machine_ip_address_name: str | None = Field(
        default=None, min_length=1, alias="virtualMachineIPAddressName"
    )
    topology_spread_constraints: list[TopologySpreadConstraint] = Field(default_factory=empty_list)
    affinity: VMAffinity | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    priority_class_name: str | None = Field(default=None, min_length=1)
    tolerations: list[Toleration] = Field(default_factory=empty_list)
    disruptions: Disruptions = Field(default_factory=Disruptions)
    termination_grace_period_seconds: int = Field(default=60, ge=0, le=INT64_MAX)
    enable_paravirtualization: bool = True
    os_type: OsType = OsType.GENERIC
    bootloader: Bootloader = Bootloader.BIOS
    cpu: CPU
    memory: Memory
    block_device_refs: list[BlockDeviceRef] = Field(min_length=1, max_length=MAX_BLOCK_DEVICES)
    provisioning: Provisioning | None = None
    live_migration_policy: LiveMigrationPolicy = LiveMigrationPolicy.PREFER_SAFE
    networks: list[NetworkSpec] = Field(default_factory=empty_list)
    kernel_boot: KernelBoot | None = None

    @model_validator(mode="after")
    def _cross_field_rules(self) -> VirtualMachineSpec:
        # dvp-api.md §1.1, CRD CEL rules and the VM webhook's blockDeviceRefs checks.
        seen: set[tuple[str, str]] = set()
        orders: set[int] = set()
        for index, ref in enumerate(self.block_device_refs):
            key = (ref.kind.value, ref.name)
            if key in seen:
                raise FieldError(
                    ("blockDeviceRefs", index, "name"),
                    f"blockDeviceRefs lists {ref.kind.value}/{ref.name} twice",
                )
            seen.add(key)
            if ref.boot_order is not None:
                if ref.boot_order in orders:
                    raise FieldError(
                        ("blockDeviceRefs", index, "bootOrder"),
                        f"bootOrder {ref.boot_order} is used twice in blockDeviceRefs",
                    )
                orders.add(ref.boot_order)
        if self.os_type is OsType.LEGACY:
            if self.bootloader is not Bootloader.BIOS:
                raise FieldError(("bootloader",), "osType Legacy boots with BIOS only")
            if self.provisioning is not None:
                raise FieldError(("provisioning",), "osType Legacy takes no provisioning")
            if not self.enable_paravirtualization and len(self.block_device_refs) > 4:
                raise FieldError(
                    ("blockDeviceRefs",),
                    "osType Legacy without paravirtualization takes at most 4 blockDeviceRefs",
                )
        for index, network in enumerate(self.networks):
            if network.type != "Main":
                raise FieldError(
                    ("networks", index, "type"),
                    f"network type {network.type} needs the platform's SDN; a libvirt host"
                    " offers only the Main network",
                )
            if index > 0:
                raise FieldError(("networks", index), "the Main network is listed twice")
            if network.name is not None:
                raise FieldError(("networks", index, "name"), "the Main network takes no name")
            if network.id not in (None, 1):
                raise FieldError(("networks", index, "id"), "the Main network's id is 1")
        return self

    @property
    def restart_approval_mode(self) -> RestartApprovalMode:
        return self.disruptions.restart_approval_mode

    def boot_order(self) -> list[BlockDeviceRef]:
        """Devices in boot order: explicit bootOrder values if any are set, else list order
        (dvp-api.md §1.3)."""
        if any(ref.boot_order is not None for ref in self.block_device_refs):
            return sorted(
                (ref for ref in self.block_device_refs if ref.boot_order is not None),
                key=lambda ref: ref.boot_order or 0,
            )
        return list(self.block_device_refs)


class VirtualMachine(Manifest):
    KIND: ClassVar[str] = "VirtualMachine"
    PLURAL: ClassVar[str] = "virtualmachines"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("vm", "vms")

    spec: VirtualMachineSpec

    @model_validator(mode="after")
    def _name_length(self) -> VirtualMachine:
        if len(self.metadata.name) > MAX_VM_NAME:
            raise FieldError(
                ("metadata", "name"), f"a VirtualMachine name has at most {MAX_VM_NAME} characters"
            )
        return self
