"""A VM's status before its plan adds what it decides: what its spec and the observed
domain say, the conditions its findings give it, the resources it runs with, and the
report of a VM whose manifest is broken."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import NamedTuple

from reconciler.api import ObjectId, VirtualMachine
from reconciler.engine.vm.desired import DesiredDomain
from reconciler.engine.vm.lifecycle import phase_of, report_agent, running_metadata
from reconciler.findings import Finding, Rule
from reconciler.model.conditions import Condition, VMCondition, VMReason, mark_false, mark_true
from reconciler.model.cpu import millicores_of
from reconciler.model.domain import ObservedDomain
from reconciler.model.status import VMStatus
from reconciler.policies import TopologyPolicy
from reconciler.rules.topology import TopologyError, topology_for

# The conditions every VM starts from (Condition is frozen: shared by all statuses).
_READY = (
    mark_true(VMCondition.VIRTUAL_MACHINE_CLASS_READY, VMReason.VIRTUAL_MACHINE_CLASS_READY),
    mark_true(VMCondition.BLOCK_DEVICES_READY, VMReason.BLOCK_DEVICES_READY),
    mark_true(VMCondition.PROVISIONING_READY, VMReason.PROVISIONING_READY),
)
_RUNNING = mark_true(VMCondition.RUNNING, VMReason.RUNNING)
_NOT_RUNNING = mark_false(VMCondition.RUNNING, VMReason.NOT_RUNNING)


def base_status(
    vm: VirtualMachine, observed: ObservedDomain | None, topology: TopologyPolicy, node_name: str
) -> VMStatus:
    """What the spec and the observed domain say, before any step of the plan."""
    active = observed is not None and observed.state.active
    status = VMStatus(
        memory=vm.spec.memory.size.text,
        cores=vm.spec.cpu.cores,
        conditions=[*_READY, _RUNNING if active else _NOT_RUNNING],
    )
    # Known from the spec alone, even for a VM that is blocked before its domain is built.
    with contextlib.suppress(TopologyError):
        layout = topology_for(topology, vm.spec.cpu.cores)
        status.sockets, status.cores_per_socket = layout.sockets, layout.cores_per_socket
    status.phase = phase_of(observed)
    if active:
        status.node_name = node_name
    report_agent(status, observed)
    meta = running_metadata(observed)
    if meta is not None:
        status.revision = meta.revision
    if observed is not None and observed.config.metadata is not None:
        status.created = observed.config.metadata.created
    return status


def unplaced_status(
    vm: VirtualMachine, why: str, topology: TopologyPolicy, node_name: str, migratable: Condition
) -> VMStatus:
    """A VM no node of the fleet can take: reported Pending, with why, by the fleet's
    first node."""
    status = base_status(vm, None, topology, node_name)
    status.set(migratable)
    status.set(mark_false(VMCondition.RUNNING, VMReason.UNSCHEDULABLE, why))
    return status


def broken_status(
    object_id: ObjectId,
    observed: ObservedDomain | None,
    findings: Sequence[Finding],
    node_name: str,
) -> VMStatus:
    """The report of a VM whose manifest is invalid: its domain as it is, and why
    nothing is changed (its first finding)."""
    status = VMStatus(phase=phase_of(observed))
    if observed is not None and observed.state.active:
        status.node_name = node_name
    report_agent(status, observed)
    message = findings[0].message if findings else "manifest is invalid"
    # What it would take along is unknown: the platform, too, says False without a VM
    # to look at (no KVVM).
    status.set(
        mark_false(
            VMCondition.MIGRATABLE,
            VMReason.VIRTUAL_MACHINE_NON_MIGRATABLE,
            "the manifest is invalid, so what the VirtualMachine would migrate is unknown",
        )
    )
    status.set(
        mark_false(
            VMCondition.CONFIGURATION_APPLIED,
            VMReason.CONFIGURATION_NOT_APPLIED,
            f"the manifest is invalid, nothing is changed: {message}",
        )
    )
    return status


_CONDITION_OF_REFERENCE = (
    (
        "VirtualMachineClass",
        VMCondition.VIRTUAL_MACHINE_CLASS_READY,
        VMReason.VIRTUAL_MACHINE_CLASS_NOT_READY,
    ),
    ("Secret", VMCondition.PROVISIONING_READY, VMReason.PROVISIONING_NOT_READY),
    (
        "VirtualMachineIPAddress",
        VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY,
        VMReason.VIRTUAL_MACHINE_IP_ADDRESS_NOT_READY,
    ),
)


def blocking_conditions(findings: Sequence[Finding]) -> list[Condition]:
    """The conditions a VM's own findings put False: each keeps it from being applied."""
    conditions: list[Condition] = []
    for finding in findings:
        if finding.rule is Rule.SIZING_POLICY:
            conditions.append(
                mark_false(
                    VMCondition.SIZING_POLICY_MATCHED,
                    VMReason.SIZING_POLICY_NOT_MATCHED,
                    finding.message,
                )
            )
        elif finding.rule in (Rule.REFERENCE, Rule.CONFLICT):
            for prefix, kind, reason in _CONDITION_OF_REFERENCE:
                if finding.message.startswith(prefix):
                    conditions.append(mark_false(kind, reason, finding.message))
                    break
            else:
                conditions.append(
                    mark_false(
                        VMCondition.BLOCK_DEVICES_READY,
                        VMReason.BLOCK_DEVICES_NOT_READY,
                        finding.message,
                    )
                )
        else:
            conditions.append(
                mark_false(
                    VMCondition.CONFIGURATION_APPLIED,
                    VMReason.CONFIGURATION_NOT_APPLIED,
                    finding.message,
                )
            )
    return conditions


class Resources(NamedTuple):
    """status.resources: of the running instance when there is one, else of the spec."""

    cores: int
    core_fraction: str
    memory: str
    sockets: int
    cores_per_socket: int
    requested_millicores: int | None


def resources_of(
    desired: DesiredDomain,
    observed: ObservedDomain | None,
    topology: TopologyPolicy,
    memory: str,
) -> Resources:
    """The VM's resources (dvp-api.md §2.4); `memory`: the spec's, for a spec that
    does not say."""
    spec = desired.spec_json
    active = observed is not None and observed.state.active
    meta = running_metadata(observed) if active else None
    if meta is not None and meta.spec:
        spec = meta.spec
    cpu = spec.get("cpu", {})
    cores = int(cpu.get("cores", desired.spec.vcpus))
    try:
        layout = topology_for(topology, cores)
        sockets, cores_per_socket = layout.sockets, layout.cores_per_socket
    except TopologyError:
        sockets, cores_per_socket = desired.topology_sockets, desired.topology_cores_per_socket
    return Resources(
        cores=cores,
        core_fraction=str(cpu.get("coreFraction", "100%")),
        memory=str(spec.get("memory", {}).get("size", memory)),
        sockets=sockets,
        cores_per_socket=cores_per_socket,
        requested_millicores=millicores_of(spec) if active else None,
    )
