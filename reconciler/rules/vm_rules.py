"""Rules on one VM and its class: topology, sizing policy, inline userData size."""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.api import ObjectId, VirtualMachine, VirtualMachineClass
from reconciler.api.vm import USERDATA_LIMIT
from reconciler.findings import Finding, Rule
from reconciler.loader import LoadedObject
from reconciler.policies import TopologyPolicy
from reconciler.rules.derived import Derived
from reconciler.rules.inventory import Inventory
from reconciler.rules.sizing import SizingVerdict, sizing_verdict
from reconciler.rules.topology import TopologyError, topology_for

# Between two revisions nearly every VM and class is the same (frozen) object: what a
# VM's findings depend on is looked up, not worked out again.
_OWN: Derived[tuple[TopologyPolicy, tuple[Finding, ...], ObjectId]] = Derived()
_SIZING: Derived[tuple[VirtualMachineClass, SizingVerdict]] = Derived()


def vm_findings(inventory: Inventory, topology: TopologyPolicy) -> Iterator[Finding]:
    for loaded, vm in inventory.of_kind(VirtualMachine):
        yield from one_vm_findings(inventory, loaded, vm, topology)


def one_vm_findings(
    inventory: Inventory, loaded: LoadedObject, vm: VirtualMachine, topology: TopologyPolicy
) -> Iterator[Finding]:
    """The findings of one VM: its own, and its sizing against its class."""
    own = _OWN.get(loaded)
    if own is None or own[0] is not topology:
        class_id = ObjectId("VirtualMachineClass", "", vm.spec.virtual_machine_class_name)
        findings = tuple(_own_findings(loaded, vm, topology))
        own = _OWN.put(loaded, (topology, findings, class_id))
    yield from own[1]
    vmclass = inventory.get(own[2])
    if vmclass is not None and isinstance(vmclass.model, VirtualMachineClass):
        sized = _SIZING.get(loaded)
        if sized is None or sized[0] is not vmclass.model:
            sized = _SIZING.put(loaded, (vmclass.model, sizing_verdict(vm.spec, vmclass.model)))
        verdict = sized[1]
        if not verdict.matched:
            yield loaded.finding(verdict.field, verdict.message, Rule.SIZING_POLICY)


def _own_findings(
    loaded: LoadedObject, vm: VirtualMachine, topology: TopologyPolicy
) -> Iterator[Finding]:
    """The findings of the VM alone, under the topology policy."""
    try:
        topology_for(topology, vm.spec.cpu.cores)
    except TopologyError as error:
        yield loaded.finding(("spec", "cpu", "cores"), str(error), Rule.TOPOLOGY)
    provisioning = vm.spec.provisioning
    if provisioning is not None and provisioning.user_data is not None:
        size = len(provisioning.user_data.encode())
        if size > USERDATA_LIMIT:
            yield loaded.finding(
                ("spec", "provisioning", "userData"),
                f"inline userData is {size} bytes, above the {USERDATA_LIMIT}-byte limit;"
                " put it in a Secret and use userDataRef",
                Rule.USERDATA_SIZE,
            )
