"""The manifest API: one pydantic model per kind, and the table of kinds.

A kind's module is imported when one of its names is first asked for (PEP 562), and
KINDS imports a kind's module when that kind is looked up: a command that reads one
kind (`reconciler get vm`) does not create every kind's models at start-up (issue 16).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# The module of reconciler.api that defines each name this package exports.
_HOMES: dict[str, str] = {
    "DEFAULT_NAMESPACE": "meta",
    "GROUP_VERSION": "meta",
    "FieldError": "meta",
    "Manifest": "meta",
    "ObjectId": "meta",
    "ObjectMeta": "meta",
    "IPAddressType": "network",
    "VirtualMachineIPAddress": "network",
    "Node": "node",
    "OperationType": "operation",
    "VirtualMachineOperation": "operation",
    "Percent": "quantity",
    "Quantity": "quantity",
    "CLOUD_INIT_SECRET": "secret",
    "SYSPREP_SECRET": "secret",
    "Secret": "secret",
    "ClusterVirtualImage": "storage",
    "VirtualDisk": "storage",
    "VirtualImage": "storage",
    "VirtualMachineBlockDeviceAttachment": "storage",
    "BlockDeviceKind": "vm",
    "ProvisioningType": "vm",
    "RestartApprovalMode": "vm",
    "RunPolicy": "vm",
    "VirtualMachine": "vm",
    "CPUType": "vmclass",
    "VirtualMachineClass": "vmclass",
}

# Every kind, in the order the loader has always listed them, with its model's class
# name (a kind is its class's name) and plural: the status tree's folders are named by
# the plural, and naming them must not import every kind (tests/api prove both agree
# with the models).
PLURALS: dict[str, str] = {
    "VirtualMachineClass": "virtualmachineclasses",
    "VirtualMachine": "virtualmachines",
    "VirtualMachineIPAddress": "virtualmachineipaddresses",
    "VirtualDisk": "virtualdisks",
    "VirtualImage": "virtualimages",
    "ClusterVirtualImage": "clustervirtualimages",
    "VirtualMachineBlockDeviceAttachment": "virtualmachineblockdeviceattachments",
    "VirtualMachineOperation": "virtualmachineoperations",
    "Secret": "secrets",
    "Node": "nodes",
}


def __getattr__(name: str) -> Any:
    """A name of a kind's module, imported on first use (for start-up speed)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Always one of this package's modules, which the TYPE_CHECKING imports above show
    # the import contract. Imported here, for start-up speed: a kind's models only when used.
    module = importlib.import_module(f"{__name__}.{home}")
    value = getattr(module, name)
    globals()[name] = value
    return value


class _Kinds(Mapping[str, "type[Manifest]"]):
    """Kind -> model. Looking a kind up imports its module; listing the kinds (keys,
    `in`, len) imports nothing."""

    def __getitem__(self, kind: str) -> type[Manifest]:
        if kind not in PLURALS:
            raise KeyError(kind)
        # The loader asks once per document: a kind already imported is a global here.
        model: type[Manifest] = globals().get(kind) or __getattr__(kind)
        return model

    def __iter__(self) -> Iterator[str]:
        return iter(PLURALS)

    def __len__(self) -> int:
        return len(PLURALS)

    def __contains__(self, kind: object) -> bool:
        return kind in PLURALS


KINDS: Mapping[str, type[Manifest]] = _Kinds()

__all__ = [
    "CLOUD_INIT_SECRET",
    "DEFAULT_NAMESPACE",
    "GROUP_VERSION",
    "KINDS",
    "PLURALS",
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
