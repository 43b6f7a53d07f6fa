"""The fleet as placement sees it: its nodes, and whether a node's labels satisfy a VM's
node rules (its nodeSelector, required node affinity and its class's nodeSelector).

The fleet is the repository's Node objects; a repository without any is a fleet of
one, this host. Which node takes each VM is schedule.py's; a VM no node can take is
reported Pending by the first node of the fleet, so exactly one host explains why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.api import VirtualMachine
from reconciler.api.node import Node
from reconciler.api.scheduling import LabelSelectorRequirement, NodeSelectorRequirement
from reconciler.api.vmclass import VirtualMachineClass


@dataclass(frozen=True)
class FleetNode:
    name: str
    labels: Mapping[str, str]
    schedulable: bool = True
    # Its guaranteed capacity (None: not known, not limited), each as the Node manifest
    # states it, else as the host's latest Node report does; and the libvirt URI other
    # hosts migrate to.
    cpu_millicores: int | None = None
    memory_bytes: int | None = None
    libvirt_uri: str = ""


@dataclass(frozen=True)
class ReportedCapacity:
    """The guaranteed capacity a host's own Node report states (reports/reported_capacity.py
    checked it); None where the report does not say."""

    cpu_millicores: int | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True)
class Placement:
    node: str  # "" when no node can take the VM
    reason: str


def fleet(
    nodes: Iterable[Node],
    local: str,
    local_labels: Mapping[str, str],
    reported: Mapping[str, ReportedCapacity] | None = None,
) -> list[FleetNode]:
    """The fleet from the repository's Node objects; this host alone, with its configured
    labels, when there are none.

    `reported`: the capacity each host's latest Node report states, by Node name. Each
    of CPU and memory is the manifest's when it states it (an operator may keep some
    back for the host itself), else the report's, else not limited. Every host reads
    the same reports from Git, so every host sees the same capacities; its own live
    count is never used here, or two hosts could place one VM differently.
    """
    reports = reported or {}
    # A Node's labels are its manifest's alone: every host reads the same ones. A host's
    # configured nodeLabels serve a fleet of one; merged into its own Node they would
    # make its schedule differ from its peers'.
    members = []
    for node in nodes:
        stated = node.spec.capacity
        found = reports.get(node.name, _NOT_REPORTED)
        members.append(
            FleetNode(
                node.name,
                dict(node.metadata.labels),
                not node.spec.unschedulable,
                found.cpu_millicores if stated.cpu is None else stated.cpu * 1000,
                found.memory_bytes if stated.memory is None else stated.memory.bytes,
                node.spec.libvirt_uri or "",
            )
        )
    if not members:
        return [FleetNode(local, dict(local_labels))]
    return sorted(members, key=lambda member: member.name)


_NOT_REPORTED = ReportedCapacity()


def host_capacity(
    nodes: Iterable[Node], local: str, cpus: int, memory_bytes: int | None
) -> tuple[int, int | None]:
    """This host's guaranteed CPU (millicores) and memory (bytes): what its Node manifest
    states, else what libvirt counts (`cpus`, `memory_bytes`). What it admits VMs to,
    reports in its Node report, and lets a live migration bring in (libvirt/hook.py)."""
    for node in nodes:
        if node.name == local:
            stated = node.spec.capacity
            cpus = stated.cpu or cpus
            memory_bytes = stated.memory.bytes if stated.memory is not None else memory_bytes
    return cpus * 1000, memory_bytes


def requirement_holds(
    requirement: NodeSelectorRequirement | LabelSelectorRequirement, labels: Mapping[str, str]
) -> bool:
    """A node's or a VM's labels against one requirement (a label selector's operators
    are the first four of a node selector's)."""
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


def reports_here(placement: Placement, members: Sequence[FleetNode], local: str) -> bool:
    """Whether this host plans and reports the VM."""
    if placement.node:
        return placement.node == local
    return bool(members) and members[0].name == local
