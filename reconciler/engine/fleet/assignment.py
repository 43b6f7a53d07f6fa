"""The VMs this host plans and reports in a pass: the fleet's schedule (schedule.py)
of every VM of the revision, from the revision, the fleet's latest reports and the
domains this host has. Nothing else decides which host runs a VM.

Where a VM is now: the host that has its domain, as this host sees its own libvirt
(a domain found here, even one that just arrived by live migration, is this host's to
report, unless it is a copy of a VM another host runs: strays.py, whose domains the
caller leaves out), else the host its latest report names. Every host computes the same schedule
from the same revision and reports; the one input they do not share, their own
domains, differs only while a report is on its way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.api import ObjectId, VirtualMachine
from reconciler.api.vmclass import VirtualMachineClass
from reconciler.engine.fleet.placement import FleetNode, Placement, reports_here
from reconciler.engine.fleet.schedule import Demand, FleetHost, Schedule, schedule
from reconciler.memo import IdentityMemo
from reconciler.model.names import domain_name, domain_owner
from reconciler.rules.inventory import Inventory


@dataclass(frozen=True)
class Assignment:
    # The VMs this host reports, in the revision's order, each with its placement: on
    # this host, or (node "") on none, which the fleet's first node reports.
    here: tuple[tuple[VirtualMachine, Placement], ...]
    # How many VMs other hosts of the fleet run and report.
    elsewhere: int
    # The fleet's schedule this assignment was read from: a move's target comes from it.
    fleet_schedule: Schedule | None = None


def vm_class(vm: VirtualMachine, inventory: Inventory) -> VirtualMachineClass | None:
    loaded = inventory.get(ObjectId("VirtualMachineClass", "", vm.spec.virtual_machine_class_name))
    model = loaded.model if loaded is not None else None
    return model if isinstance(model, VirtualMachineClass) else None


# A VM's demand, by the very VM and class objects it was made from: a daemon keeps its
# loaded objects across passes, and plans each pass twice.
_DEMANDS: IdentityMemo[Demand] = IdentityMemo()


def _demand(vm: VirtualMachine, inventory: Inventory) -> Demand:
    vmclass = vm_class(vm, inventory)
    known = _DEMANDS.get(vm, vmclass)
    if known is not None:
        return known
    return _DEMANDS.put((vm, vmclass), Demand.of(vm, vmclass))


def assign(
    vms: Iterable[VirtualMachine],
    inventory: Inventory,
    members: Sequence[FleetNode],
    *,
    local: str,
    domains: Collection[str],
    reported_nodes: Mapping[ObjectId, str],
    reported_migrations: Mapping[ObjectId, str] | None = None,
    held_back: str = "",
) -> Assignment:
    """`domains`: the names of the domains this host has; `reported_nodes`: where the
    latest reports say each VM runs; `reported_migrations`: where the VMs reported
    Migrating go; `held_back`: why no VM is placed anew (a Node manifest is invalid, so
    the hosts may not see the same fleet): VMs stay where they are, the others wait."""
    ordered = list(vms)
    current = dict(reported_nodes)
    # From the host's domains (a hundred), not from every VM's name (ten thousand).
    ids = {vm.id for vm in ordered}
    here_now = {owner for owner in map(domain_owner, domains) if owner is not None and owner in ids}
    for vm_id in here_now:
        current[vm_id] = local
    for vm_id, target in (reported_migrations or {}).items():
        if current.get(vm_id) == local and vm_id not in here_now:
            # It left this host by live migration: it is the target's now, never
            # defined here again (the target reports it once it has it).
            current[vm_id] = target
    planned = schedule(
        (_demand(vm, inventory) for vm in ordered),
        [FleetHost.of(member) for member in members],
        current,
    )
    here: list[tuple[VirtualMachine, Placement]] = []
    elsewhere = 0
    # Runs here, even on a host that is no Node of the repository: moving a running VM
    # is never done behind its back. One value for all of them.
    runs_here = Placement(local, "runs on this host")
    placements: dict[tuple[str, str], Placement] = {}
    member_names = {member.name for member in members}
    for vm in ordered:
        if vm.id in here_now:
            placement = runs_here
        elif held_back and current.get(vm.id, "") not in member_names:
            # Not placed anew. One another host reports stays its to report.
            if current.get(vm.id):
                elsewhere += 1
                continue
            placement = Placement("", held_back)
        else:
            home = planned.homes[vm.id]
            key = (home.host, home.reason)
            placement = placements.get(key) or placements.setdefault(key, Placement(*key))
        if reports_here(placement, members, local):
            here.append((vm, placement))
        else:
            elsewhere += 1  # another host of the fleet runs and reports it
    return Assignment(tuple(here), elsewhere, planned)


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
