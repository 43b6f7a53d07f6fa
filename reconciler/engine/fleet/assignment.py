"""The VMs this host plans and reports in a pass: the placement rules (placement.py)
applied to every VM of the revision, from the revision, the fleet's latest reports and
the domains this host has. Nothing else decides which host runs a VM, so a scheduler
that weighs more (capacity, affinity, migration) replaces `assign` and nothing else.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.api import ObjectId, VirtualMachine
from reconciler.api.vmclass import VirtualMachineClass
from reconciler.engine.fleet.placement import FleetNode, Placement, place, reports_here
from reconciler.model.names import domain_name
from reconciler.rules.inventory import Inventory


@dataclass(frozen=True)
class Assignment:
    # The VMs this host reports, in the revision's order, each with its placement: on
    # this host, or (node "") on none, which the fleet's first node reports.
    here: tuple[tuple[VirtualMachine, Placement], ...]
    # How many VMs other hosts of the fleet run and report.
    elsewhere: int


def assign(
    vms: Iterable[VirtualMachine],
    inventory: Inventory,
    members: Sequence[FleetNode],
    *,
    local: str,
    domains: Collection[str],
    reported_nodes: Mapping[ObjectId, str],
) -> Assignment:
    """`domains`: the names of the domains this host has; `reported_nodes`: where the
    latest reports say each VM runs."""
    here: list[tuple[VirtualMachine, Placement]] = []
    elsewhere = 0
    for vm in vms:
        loaded = inventory.get(
            ObjectId("VirtualMachineClass", "", vm.spec.virtual_machine_class_name)
        )
        vmclass = loaded.model if loaded is not None else None
        placement = place(
            vm,
            vmclass if isinstance(vmclass, VirtualMachineClass) else None,
            members,
            running_here=domain_name(vm) in domains,
            local=local,
            reported_node=reported_nodes.get(vm.id, ""),
        )
        if reports_here(placement, members, local):
            here.append((vm, placement))
        else:
            elsewhere += 1  # another host of the fleet runs and reports it
    return Assignment(tuple(here), elsewhere)


def reports_broken_here(
    vm_id: ObjectId,
    members: Sequence[FleetNode],
    *,
    local: str,
    domains: Collection[str],
    reported_nodes: Mapping[ObjectId, str],
) -> bool:
    """Whether this host reports a VM whose manifest is invalid (it cannot be placed):
    the host that has its domain, or that the latest report names, or else the fleet's
    first node."""
    reported = reported_nodes.get(vm_id, "")
    if domain_name(vm_id) in domains or reported == local:
        return True
    return not reported and members[0].name == local
