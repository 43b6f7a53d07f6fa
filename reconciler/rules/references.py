"""References between objects that must resolve (class, disks, images, IP, Secrets)."""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.api import (
    CLOUD_INIT_SECRET,
    SYSPREP_SECRET,
    ObjectId,
    ProvisioningType,
    Secret,
    VirtualDisk,
    VirtualMachine,
    VirtualMachineBlockDeviceAttachment,
    VirtualMachineOperation,
)
from reconciler.api.vm import SecretRef
from reconciler.findings import Finding, Rule
from reconciler.loader import LoadedObject, Loc
from reconciler.rules.inventory import Inventory

CLOUD_INIT_KEYS = ("userData", "userdata")
SYSPREP_KEYS = ("unattend.xml", "autounattend.xml")


def device_id(kind: str, namespace: str, name: str) -> ObjectId:
    return ObjectId(kind, "" if kind == "ClusterVirtualImage" else namespace, name)


def reference_findings(inventory: Inventory) -> Iterator[Finding]:
    for loaded in inventory.objects:
        model = loaded.model
        if isinstance(model, VirtualMachine):
            yield from _vm_references(inventory, loaded, model)
        elif isinstance(model, VirtualDisk):
            source = model.spec.data_source
            if source is not None and source.object_ref is not None:
                origin = source.object_ref
                target = device_id(
                    str(origin.kind), origin.namespace or model.namespace, origin.name
                )
                yield from _require(
                    inventory, loaded, ("spec", "dataSource", "objectRef", "name"), target
                )
        elif isinstance(model, VirtualMachineBlockDeviceAttachment):
            spec = model.spec
            yield from _require(
                inventory,
                loaded,
                ("spec", "virtualMachineName"),
                ObjectId("VirtualMachine", model.namespace, spec.virtual_machine_name),
            )
            attached = spec.block_device_ref
            yield from _require(
                inventory,
                loaded,
                ("spec", "blockDeviceRef", "name"),
                device_id(attached.kind.value, model.namespace, attached.name),
            )
        elif isinstance(model, VirtualMachineOperation):
            yield from _require(
                inventory,
                loaded,
                ("spec", "virtualMachineName"),
                ObjectId("VirtualMachine", model.namespace, model.spec.virtual_machine_name),
            )


def _vm_references(
    inventory: Inventory, loaded: LoadedObject, vm: VirtualMachine
) -> Iterator[Finding]:
    spec = vm.spec
    ns = vm.namespace
    yield from _require(
        inventory,
        loaded,
        ("spec", "virtualMachineClassName"),
        ObjectId("VirtualMachineClass", "", spec.virtual_machine_class_name),
    )
    for index, ref in enumerate(spec.block_device_refs):
        yield from _require(
            inventory,
            loaded,
            ("spec", "blockDeviceRefs", index, "name"),
            device_id(ref.kind.value, ns, ref.name),
        )
    if spec.virtual_machine_ip_address_name:
        yield from _require(
            inventory,
            loaded,
            ("spec", "virtualMachineIPAddressName"),
            ObjectId("VirtualMachineIPAddress", ns, spec.virtual_machine_ip_address_name),
        )
    provisioning = spec.provisioning
    if provisioning is None or provisioning.type is ProvisioningType.USER_DATA:
        return
    secret_ref: SecretRef | None
    if provisioning.type is ProvisioningType.USER_DATA_REF:
        secret_ref, field, secret_type, keys = (
            provisioning.user_data_ref,
            "userDataRef",
            CLOUD_INIT_SECRET,
            CLOUD_INIT_KEYS,
        )
    else:
        secret_ref, field, secret_type, keys = (
            provisioning.sysprep_ref,
            "sysprepRef",
            SYSPREP_SECRET,
            SYSPREP_KEYS,
        )
    assert secret_ref is not None  # the model guarantees the payload of its type
    loc: Loc = ("spec", "provisioning", field, "name")
    secret_id = ObjectId("Secret", ns, secret_ref.name)
    missing = list(_require(inventory, loaded, loc, secret_id))
    if missing:
        yield from missing
        return
    secret = inventory.get(secret_id)
    if secret is None or not isinstance(secret.model, Secret):
        return
    if secret.model.type != secret_type:
        yield loaded.finding(
            loc,
            f"Secret {secret_ref.name} has type {secret.model.type!r};"
            f" {field} needs type {secret_type!r}",
            Rule.REFERENCE,
        )
    elif not any(key in secret.model.data_keys() for key in keys):
        yield loaded.finding(
            loc,
            f"Secret {secret_ref.name} has no {' or '.join(keys)} key",
            Rule.REFERENCE,
        )


def _require(
    inventory: Inventory, loaded: LoadedObject, loc: Loc, target: ObjectId
) -> Iterator[Finding]:
    if target in inventory:
        return
    what = f"{target.kind} {target.name}"
    where = f" in namespace {target.namespace}" if target.namespace else ""
    yield loaded.finding(loc, f"{what}{where} does not exist", Rule.REFERENCE)
