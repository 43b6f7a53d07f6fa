"""VM affinity and anti-affinity, and node terms, as the fleet's schedule weighs them
(schedule.py): which VMs a term selects, and whether they share a topology domain.

Topology domains: `kubernetes.io/hostname` is the host's name; any other key is the
host's label of that name (a host without the label is in no domain). Namespaces
carry no labels here, so an empty namespaceSelector means every namespace and any
other one matches none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from reconciler.api import VirtualMachine
from reconciler.api.scheduling import (
    LabelSelector,
    LabelSelectorRequirement,
    NodeSelectorTerm,
    VirtualMachineAndPodAffinityTerm,
)
from reconciler.engine.fleet.placement import requirement_holds

if TYPE_CHECKING:
    # Types only: schedule.py, which imports this module, defines them.
    from reconciler.engine.fleet.schedule import Demand, FleetHost

HOSTNAME_KEY = "kubernetes.io/hostname"
# The VMs placed so far, each with its host.
Others = Sequence[tuple["Demand", "FleetHost"]]


def anti_affinity_terms(vm: VirtualMachine) -> list[VirtualMachineAndPodAffinityTerm]:
    affinity = vm.spec.affinity
    apart = affinity.virtual_machine_and_pod_anti_affinity if affinity else None
    return list(apart.required_during_scheduling_ignored_during_execution) if apart else []


def preference(demand: Demand, host: FleetHost, others: Callable[[], Others]) -> int:
    """Soft rules' score of `host` for the VM: preferred node affinity, and preferred VM
    affinity and anti-affinity against the VMs `others` gives, by weight."""
    affinity = demand.vm.spec.affinity
    if affinity is None:
        return 0
    total = 0
    if affinity.node_affinity is not None:
        for (
            preferred
        ) in affinity.node_affinity.preferred_during_scheduling_ignored_during_execution:
            if term_holds(preferred.preference, host.node.labels):
                total += preferred.weight
    together = affinity.virtual_machine_and_pod_affinity
    apart = affinity.virtual_machine_and_pod_anti_affinity
    if together is None and apart is None:
        return total
    placed = others()
    for weighted in (
        together.preferred_during_scheduling_ignored_during_execution if together else []
    ):
        if neighbours(demand.vm, weighted.virtual_machine_and_pod_affinity_term, host, placed):
            total += weighted.weight
    for weighted in apart.preferred_during_scheduling_ignored_during_execution if apart else []:
        if neighbours(demand.vm, weighted.virtual_machine_and_pod_affinity_term, host, placed):
            total -= weighted.weight
    return total


def affinity_holds(
    vm: VirtualMachine,
    term: VirtualMachineAndPodAffinityTerm,
    host: FleetHost,
    others: Others,
) -> bool:
    if neighbours(vm, term, host, others):
        return True
    # The first VM of a group that must stay together may go anywhere.
    anywhere = any(selects(term, vm, other.vm) for other, _ in others)
    return not anywhere and selects(term, vm, vm) and domain(term.topology_key, host) is not None


def neighbours(
    vm: VirtualMachine,
    term: VirtualMachineAndPodAffinityTerm,
    host: FleetHost,
    others: Others,
) -> bool:
    """Whether a VM the term selects is in the topology domain of `host`."""
    return any(
        same_domain(term.topology_key, host, other_host) and selects(term, vm, other.vm)
        for other, other_host in others
    )


def selects(
    term: VirtualMachineAndPodAffinityTerm, owner: VirtualMachine, other: VirtualMachine
) -> bool:
    """Whether `owner`'s term selects the VM `other`."""
    if not namespace_selected(term, owner, other.id.namespace):
        return False
    selector = term.label_selector
    if selector is None:
        return False  # Kubernetes: a term without a selector selects nothing
    requirements = list(selector.match_expressions)
    for key in term.match_label_keys:
        if key in owner.metadata.labels:
            requirements.append(
                LabelSelectorRequirement(
                    key=key, operator="In", values=[owner.metadata.labels[key]]
                )
            )
    for key in term.mismatch_label_keys:
        if key in owner.metadata.labels:
            requirements.append(
                LabelSelectorRequirement(
                    key=key, operator="NotIn", values=[owner.metadata.labels[key]]
                )
            )
    return labels_match(
        LabelSelector(match_labels=selector.match_labels, match_expressions=requirements),
        other.metadata.labels,
    )


def namespace_selected(
    term: VirtualMachineAndPodAffinityTerm, owner: VirtualMachine, namespace: str
) -> bool:
    if namespace in term.namespaces:
        return True
    selector = term.namespace_selector
    if selector is not None:
        return not selector.match_labels and not selector.match_expressions
    return not term.namespaces and namespace == owner.id.namespace


def labels_match(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    return all(requirement_holds(r, labels) for r in selector.match_expressions)


def term_holds(term: NodeSelectorTerm, labels: Mapping[str, str]) -> bool:
    return all(requirement_holds(r, labels) for r in term.match_expressions)


def domain(key: str, host: FleetHost | None) -> str | None:
    if host is None:
        return None
    if key == HOSTNAME_KEY:
        return host.name
    return host.node.labels.get(key)


def same_domain(key: str, one: FleetHost, other: FleetHost) -> bool:
    mine = domain(key, one)
    return mine is not None and mine == domain(key, other)
