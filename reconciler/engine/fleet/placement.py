"""Which host of the fleet runs each VM: the same answer on every host, without talking.

Every host reads the same revision, so a deterministic function of it places
each VM once. The fleet is the repository's Node objects; a repository
without any is a fleet of one, this host. Rules, in order:

1. A VM this host already runs (its domain exists here) stays here: moving a
   running VM is a restart-class change, never done behind its back.
2. A VM whose latest status report names another fleet node stays there.
3. Otherwise among the schedulable nodes whose labels satisfy the VM's
   nodeSelector, its required node affinity and its class's nodeSelector, the
   one with the highest rendezvous hash of (VM, node) takes it: stable when
   nodes come and go, and spread evenly.

A VM no node can take is reported Pending by the first node of the fleet, so
exactly one host explains why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.api import ObjectId, VirtualMachine
from reconciler.api.node import Node
from reconciler.api.scheduling import NodeSelectorRequirement
from reconciler.api.vmclass import VirtualMachineClass


@dataclass(frozen=True)
class FleetNode:
    name: str
    labels: Mapping[str, str]
    schedulable: bool = True


@dataclass(frozen=True)
class Placement:
    node: str  # "" when no node can take the VM
    reason: str


def fleet(nodes: Iterable[Node], local: str, local_labels: Mapping[str, str]) -> list[FleetNode]:
    """The fleet from the repository's Node objects; this host alone when there are none."""
    members = [
        FleetNode(
            node.name,
            {**node.metadata.labels, **(local_labels if node.name == local else {})},
            not node.spec.unschedulable,
        )
        for node in nodes
    ]
    if not members:
        return [FleetNode(local, dict(local_labels))]
    return sorted(members, key=lambda member: member.name)


def requirement_holds(requirement: NodeSelectorRequirement, labels: Mapping[str, str]) -> bool:
    value = labels.get(requirement.key)
    match requirement.operator:
        case "In":
            return value is not None and value in requirement.values
        case "NotIn":
            return value is None or value not in requirement.values
        case "Exists":
            return value is not None
        case "DoesNotExist":
            return value is None
        case "Gt" | "Lt":
            try:
                number, bound = int(value or ""), int(requirement.values[0])
            except (ValueError, IndexError):
                return False
            return number > bound if requirement.operator == "Gt" else number < bound
    return False


def fits(vm: VirtualMachine, vmclass: VirtualMachineClass | None, node: FleetNode) -> bool:
    labels = node.labels
    if any(labels.get(key) != value for key, value in vm.spec.node_selector.items()):
        return False
    if vmclass is not None and vmclass.spec.node_selector is not None:
        selector = vmclass.spec.node_selector
        if any(labels.get(key) != value for key, value in selector.match_labels.items()):
            return False
        if not all(requirement_holds(r, labels) for r in selector.match_expressions):
            return False
    affinity = vm.spec.affinity.node_affinity if vm.spec.affinity else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    if required is not None and required.node_selector_terms:
        # Terms are ORed, the expressions of one term ANDed (Kubernetes' rule).
        return any(
            all(requirement_holds(r, labels) for r in term.match_expressions)
            for term in required.node_selector_terms
        )
    return True


def _score(vm_id: ObjectId, node: str) -> bytes:
    return hashlib.sha256(f"{vm_id}\0{node}".encode()).digest()


def place(
    vm: VirtualMachine,
    vmclass: VirtualMachineClass | None,
    members: Sequence[FleetNode],
    running_here: bool,
    local: str,
    reported_node: str = "",
) -> Placement:
    if running_here:
        return Placement(local, "runs on this host")
    names = {member.name for member in members}
    if reported_node and reported_node in names:
        return Placement(reported_node, f"runs on {reported_node}")
    candidates = [m for m in members if m.schedulable and fits(vm, vmclass, m)]
    if not candidates:
        return Placement(
            "",
            "no node of the fleet is schedulable and matches the VM's nodeSelector,"
            " node affinity and class nodeSelector",
        )
    chosen = max(candidates, key=lambda member: _score(vm.id, member.name))
    return Placement(chosen.name, f"placed on {chosen.name}")


def reports_here(placement: Placement, members: Sequence[FleetNode], local: str) -> bool:
    """Whether this host plans and reports the VM."""
    if placement.node:
        return placement.node == local
    return bool(members) and members[0].name == local
