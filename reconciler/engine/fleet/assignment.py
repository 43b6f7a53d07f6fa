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

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import compress
from operator import is_not

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
    vms: Sequence[VirtualMachine],
    inventory: Inventory,
    members: Sequence[FleetNode],
    *,
    local: str,
    domains: Collection[str],
    reported_nodes: Mapping[ObjectId, str],
    reported_migrations: Mapping[ObjectId, str] | None = None,
    held_back: str = "",
) -> Assignment:
    """`vms`: the revision's VMs in the order of their ids; `domains`: the names of the
    domains this host has; `reported_nodes`: where the latest reports say each VM runs;
    `reported_migrations`: where the VMs reported Migrating go; `held_back`: why no VM
    is placed anew (a Node manifest is invalid, so the hosts may not see the same
    fleet): VMs stay where they are, the others wait.

    The last assignment is made again from itself when only VMs' manifests changed and
    every VM stays where it is (_LastAssignment)."""
    classes = tuple(model for _, model in inventory.of_kind(VirtualMachineClass))
    last = _LAST[0] if _LAST else None
    ids = last.ids if last is not None and last.same_ids(vms) else {vm.id for vm in vms}
    # From the host's domains (a hundred), not from every VM's name (ten thousand).
    here_now = frozenset(
        owner for owner in map(domain_owner, domains) if owner is not None and owner in ids
    )
    inputs = _Inputs(
        classes, tuple(members), local, here_now, reported_nodes, reported_migrations, held_back
    )
    if last is not None and last.inputs.same_as(inputs):
        kept = last.again(vms, inventory)
        if kept is not None:
            return kept
    assignment = _assign(vms, inventory, members, local, here_now, inputs, held_back)
    _LAST[:] = [_LastAssignment(inputs, tuple(vms), ids, assignment)]
    return assignment


def _assign(
    ordered: Sequence[VirtualMachine],
    inventory: Inventory,
    members: Sequence[FleetNode],
    local: str,
    here_now: frozenset[ObjectId],
    inputs: _Inputs,
    held_back: str,
) -> Assignment:
    current = dict(inputs.reported_nodes)
    for vm_id in here_now:
        current[vm_id] = local
    for vm_id, target in (inputs.reported_migrations or {}).items():
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


def _same(a: object, b: object) -> bool:
    return a is b or a == b


@dataclass(frozen=True)
class _Inputs:
    """What an assignment is made from besides the VMs (see assign)."""

    classes: tuple[VirtualMachineClass, ...]
    members: tuple[FleetNode, ...]
    local: str
    here_now: frozenset[ObjectId]
    reported_nodes: Mapping[ObjectId, str]
    reported_migrations: Mapping[ObjectId, str] | None
    held_back: str

    def same_as(self, other: _Inputs) -> bool:
        return (
            len(self.classes) == len(other.classes)
            and all(a is b for a, b in zip(self.classes, other.classes, strict=True))
            and self.members == other.members
            and self.local == other.local
            and self.here_now == other.here_now
            and self.held_back == other.held_back
            and _same(self.reported_nodes, other.reported_nodes)
            and _same(self.reported_migrations or {}, other.reported_migrations or {})
        )


@dataclass(frozen=True)
class _LastAssignment:
    """The last assignment and what it was made from.

    With the same other inputs (the very classes, the same fleet, domains here and
    reports) and the same VM identities in the same order, each VM's `current` host
    is the one it had. When every VM stayed where it was (no VM waited for a place),
    every home is the one it had too: a VM stays wherever its current host is a member,
    whatever its manifest says. So only the edited VMs' demands are made again, and
    the VMs this host reports are the same ones, the edited ones as they are now.
    Placing a waiting VM weighs every other VM's demand: that is planned whole.
    """

    inputs: _Inputs
    vms: tuple[VirtualMachine, ...]
    ids: frozenset[ObjectId] | set[ObjectId]
    assignment: Assignment

    def same_ids(self, vms: Sequence[VirtualMachine]) -> bool:
        if vms is self.vms:
            return True
        return len(vms) == len(self.vms) and all(a.id == b.id for a, b in _replaced(self.vms, vms))

    def again(self, vms: Sequence[VirtualMachine], inventory: Inventory) -> Assignment | None:
        if vms is self.vms:
            return self.assignment
        planned = self.assignment.fleet_schedule
        if planned is None or planned.placed_anew or len(vms) != len(self.vms):
            return None
        edited = _replaced(self.vms, vms)
        if any(old.id != new.id for old, new in edited):
            return None
        demands = dict(planned.demands)
        now = {new.id: new for _old, new in edited}
        for new in now.values():
            demands[new.id] = _demand(new, inventory)
        here = tuple((now.get(vm.id, vm), placement) for vm, placement in self.assignment.here)
        again = Assignment(
            here, self.assignment.elsewhere, Schedule(planned.homes, planned.hosts, demands)
        )
        _LAST[:] = [replace(self, vms=tuple(vms), assignment=again)]
        return again


def _replaced(
    before: Sequence[VirtualMachine], after: Sequence[VirtualMachine]
) -> list[tuple[VirtualMachine, VirtualMachine]]:
    """The (before, after) pairs at the places where two lists of the same length hold
    other objects: found at C speed, as 10,000 VMs are the same ones after a push."""
    places = compress(range(len(after)), map(is_not, before, after))
    return [(before[at], after[at]) for at in places]


# The assignment of the last plan: the second plan of a pass, and the pass after a push
# that edited VMs, make it again from this one.
_LAST: list[_LastAssignment] = []


def forget() -> None:
    """No assignment is made from the last one (the tests' full computation)."""
    _LAST.clear()


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
