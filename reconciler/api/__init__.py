"""The manifest API: one pydantic model per kind, and the table of kinds."""

from __future__ import annotations

from reconciler.api.meta import (
    DEFAULT_NAMESPACE,
    GROUP_VERSION,
    FieldError,
    Manifest,
    ObjectId,
    ObjectMeta,
)
from reconciler.api.network import IPAddressType, VirtualMachineIPAddress
from reconciler.api.node import Node
from reconciler.api.operation import OperationType, VirtualMachineOperation
from reconciler.api.quantity import Percent, Quantity
from reconciler.api.secret import CLOUD_INIT_SECRET, SYSPREP_SECRET, Secret
from reconciler.api.storage import (
    ClusterVirtualImage,
    VirtualDisk,
    VirtualImage,
    VirtualMachineBlockDeviceAttachment,
)
from reconciler.api.vm import (
    BlockDeviceKind,
    ProvisioningType,
    RestartApprovalMode,
    RunPolicy,
    VirtualMachine,
)
from reconciler.api.vmclass import CPUType, VirtualMachineClass

KINDS: dict[str, type[Manifest]] = {
    model.KIND: model
    for model in (
        VirtualMachineClass,
        VirtualMachine,
        VirtualMachineIPAddress,
        VirtualDisk,
        VirtualImage,
        ClusterVirtualImage,
        VirtualMachineBlockDeviceAttachment,
        VirtualMachineOperation,
        Secret,
        Node,
    )
}

__all__ = [
    "CLOUD_INIT_SECRET",
    "DEFAULT_NAMESPACE",
    "GROUP_VERSION",
    "KINDS",
    "SYSPREP_SECRET",
    "BlockDeviceKind",
    "CPUType",
    "ClusterVirtualImage",
    "FieldError",
    "IPAddressType",
    "Manifest",
    "Node",
    "ObjectId",
    "ObjectMeta",
    "OperationType",
    "Percent",
    "ProvisioningType",
    "Quantity",
    "RestartApprovalMode",
    "RunPolicy",
    "Secret",
    "VirtualDisk",
    "VirtualImage",
    "VirtualMachine",
    "VirtualMachineBlockDeviceAttachment",
    "VirtualMachineClass",
    "VirtualMachineIPAddress",
    "VirtualMachineOperation",
]
