"""References between objects that must resolve (class, disks, images, IP, Secrets)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from reconciler.api import (
    CLOUD_INIT_SECRET,
    SYSPREP_SECRET,
    Manifest,
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
from reconciler.rules.derived import Derived
from reconciler.rules.inventory import Inventory

CLOUD_INIT_KEYS = ("userData", "userdata")
SYSPREP_KEYS = ("unattend.xml", "autounattend.xml")


def device_id(kind: str, namespace: str, name: str) -> ObjectId:
    return ObjectId(kind, "" if kind == "ClusterVirtualImage" else namespace, name)


@dataclass(frozen=True)
class _References:
    """What one object refers to: every target that must exist, and the Secret whose
    type and keys must fit the VM's provisioning."""

    required: tuple[tuple[Loc, ObjectId], ...]
    secret: _SecretUse | None = None


@dataclass(frozen=True)
class _SecretUse:
    loc: Loc
    target: ObjectId
    field: str
    secret_type: str
    keys: tuple[str, ...]


# Nearly every object of a pass is the very object of the pass before: its references
# are read off once; only whether they resolve is asked anew.
_REFERENCES: Derived[_References] = Derived()


def reference_findings(inventory: Inventory) -> Iterator[Finding]:
    for loaded in inventory.objects:
        yield from object_reference_findings(inventory, loaded)


def object_reference_findings(inventory: Inventory, loaded: LoadedObject) -> Iterator[Finding]:
    """The reference findings of one object: its own references, against the others."""
    references = references_of(loaded)
    for loc, target in references.required:
        if target not in inventory:
            yield _missing(loaded, loc, target)
    use = references.secret
    if use is not None and use.target in inventory:
        yield from _secret_findings(inventory, loaded, use)


def references_of(loaded: LoadedObject) -> _References:
    """What the object refers to (kept with it)."""
    references = _REFERENCES.get(loaded)
    if references is None:
        references = _REFERENCES.put(loaded, _references(loaded.model))
    return references


def _references(model: Manifest) -> _References:
    if isinstance(model, VirtualMachine):
        return _vm_references(model)
    if isinstance(model, VirtualDisk):
        source = model.spec.data_source
        if source is not None and source.object_ref is not None:
            origin = source.object_ref
            target = device_id(str(origin.kind), origin.namespace or model.namespace, origin.name)
            return _References(((("spec", "dataSource", "objectRef", "name"), target),))
    elif isinstance(model, VirtualMachineBlockDeviceAttachment):
        spec = model.spec
        attached = spec.block_device_ref
        return _References(
            (
                (
                    ("spec", "virtualMachineName"),
                    ObjectId("VirtualMachine", model.namespace, spec.virtual_machine_name),
                ),
                (
                    ("spec", "blockDeviceRef", "name"),
                    device_id(attached.kind.value, model.namespace, attached.name),
                ),
            )
        )
    elif isinstance(model, VirtualMachineOperation):
        target = ObjectId("VirtualMachine", model.namespace, model.spec.virtual_machine_name)
        return _References(((("spec", "virtualMachineName"), target),))
    return _NONE


_NONE = _References(())


def _vm_references(vm: VirtualMachine) -> _References:
    spec = vm.spec
    ns = vm.namespace
    required: list[tuple[Loc, ObjectId]] = [
        (
            ("spec", "virtualMachineClassName"),
            ObjectId("VirtualMachineClass", "", spec.virtual_machine_class_name),
        )
    ]
    for index, ref in enumerate(spec.block_device_refs):
        required.append(
            (("spec", "blockDeviceRefs", index, "name"), device_id(ref.kind.value, ns, ref.name))
        )
    if spec.virtual_machine_ip_address_name:
        required.append(
            (
                ("spec", "virtualMachineIPAddressName"),
                ObjectId("VirtualMachineIPAddress", ns, spec.virtual_machine_ip_address_name),
            )
        )
    provisioning = spec.provisioning
    if provisioning is None or provisioning.type is ProvisioningType.USER_DATA:
        return _References(tuple(required))
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
    required.append((loc, secret_id))
    return _References(tuple(required), _SecretUse(loc, secret_id, field, secret_type, keys))


def _secret_findings(
    inventory: Inventory, loaded: LoadedObject, use: _SecretUse
) -> Iterator[Finding]:
    """Whether the VM's provisioning Secret (which exists) has the type and a key it needs."""
    secret = inventory.get(use.target)
    if secret is None or not isinstance(secret.model, Secret):
        return
    name = use.target.name
    if secret.model.type != use.secret_type:
        yield loaded.finding(
            use.loc,
            f"Secret {name} has type {secret.model.type!r};"
            f" {use.field} needs type {use.secret_type!r}",
            Rule.REFERENCE,
        )
    elif not any(key in secret.model.data_keys() for key in use.keys):
        yield loaded.finding(
            use.loc,
            f"Secret {name} has no {' or '.join(use.keys)} key",
            Rule.REFERENCE,
        )


def _missing(loaded: LoadedObject, loc: Loc, target: ObjectId) -> Finding:
    what = f"{target.kind} {target.name}"
    where = f" in namespace {target.namespace}" if target.namespace else ""
    return loaded.finding(loc, f"{what}{where} does not exist", Rule.REFERENCE)
