"""Rules on one VM and its class: topology, sizing policy, inline userData size."""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.api import ObjectId, VirtualMachine, VirtualMachineClass
from reconciler.api.vm import USERDATA_LIMIT
from reconciler.findings import Finding, Rule
from reconciler.policies import TopologyPolicy
from reconciler.rules.inventory import Inventory
from reconciler.rules.sizing import sizing_verdict
from reconciler.rules.topology import TopologyError, topology_for


def vm_findings(inventory: Inventory, topology: TopologyPolicy) -> Iterator[Finding]:
    for loaded, vm in inventory.of_kind(VirtualMachine):
        try:
            topology_for(topology, vm.spec.cpu.cores)
        except TopologyError as error:
            yield loaded.finding(("spec", "cpu", "cores"), str(error), Rule.TOPOLOGY)
        class_id = ObjectId("VirtualMachineClass", "", vm.spec.virtual_machine_class_name)
        vmclass = inventory.get(class_id)
        if vmclass is not None and isinstance(vmclass.model, VirtualMachineClass):
            verdict = sizing_verdict(vm.spec, vmclass.model)
            if not verdict.matched:
                yield loaded.finding(verdict.field, verdict.message, Rule.SIZING_POLICY)
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
