"""The planner: (desired objects, observed domains, policies) -> (actions, statuses).

A pure function in the controller-runtime sense: it starts from what *is*, the
same inputs give the same plan, and it remembers nothing; run it again after
applying and it returns no actions.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

from reconciler.api import ObjectId, RestartApprovalMode, VirtualMachine
from reconciler.api.vmclass import VirtualMachineClass
from reconciler.engine.devices.block_devices import (
    PassDevices,
    block_device_refs,
    plan_disk_deletions,
    report_devices,
)
from reconciler.engine.devices.disks import DiskRecord
from reconciler.engine.devices.image_volumes import stale_image_volumes
from reconciler.engine.devices.storage import DeviceProblem, ImageSourceFacts
from reconciler.engine.fleet.placement import FleetNode, place, reports_here
from reconciler.engine.network.addressing import (
    Addressing,
    AddressInputs,
    NetworkFacts,
    reservation_name,
    reservation_owner,
    reservations_by_mac,
)
from reconciler.engine.operations.execute import ReportedOperation, Step, operation_step
from reconciler.engine.operations.status import report_operations
from reconciler.engine.vm.changes import ChangeTable, compare_specs
from reconciler.engine.vm.desired import DesiredDomain, HostContext, build_domain
from reconciler.engine.vm.lifecycle import phase_of, report_agent, terminating_status
from reconciler.engine.vm.power import PowerDecision, power_decision
from reconciler.findings import Finding, Rule
from reconciler.ipam.model import VMAddress
from reconciler.memo import IdentityMemo
from reconciler.model.actions import (
    Action,
    DefineDomain,
    DeleteSeedVolume,
    EnsureSeedVolume,
    ReleaseAddress,
    ReserveAddress,
    ResizeDisk,
    RestartDomain,
    SetLiveMetadata,
    SetSharesLive,
    SetVcpusLive,
    StartDomain,
    StopDomain,
    UndefineDomain,
)
from reconciler.model.conditions import Condition, VMCondition, VMReason, mark_false, mark_true
from reconciler.model.cpu import requested_millicores
from reconciler.model.domain import DomainMetadata, DomainSpec, ObservedDomain, VolumeFacts
from reconciler.model.errors import NotReady
from reconciler.model.names import domain_mac, domain_name, seed_volume_owner, seed_volume_prefix
from reconciler.model.phases import VMPhase
from reconciler.model.status import VMStatus
from reconciler.policies import ChangeAction, ChangeRule, TopologyPolicy
from reconciler.provisioning import NetworkConfig
from reconciler.rules.inventory import Inventory
from reconciler.rules.sizing import effective_core_fraction
from reconciler.rules.topology import TopologyError, topology_for

# Per-VM suspend: the daemon keeps reporting the VM but changes nothing of it.
SUSPEND_ANNOTATION = "reconciler.vm-gitops.io/suspend"


class Outcome(StrEnum):
    """What a pass does to one VM, in the words of `reconciler plan`."""

    CREATED = "created"
    CHANGED_LIVE = "changed live"
    AWAITING_RESTART = "awaiting restart"
    RESTARTED = "restarted"
    STARTED = "started"
    STOPPED = "stopped"
    DELETED = "deleted"
    REDEFINED = "redefined"
    BLOCKED = "blocked"
    SUSPENDED = "suspended"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Observation:
    domains: Mapping[str, ObservedDomain]
    volumes: Mapping[tuple[str, str], VolumeFacts]
    # The host's network for the VMs' NICs; None when none is configured or it is missing.
    network: NetworkFacts | None = None
    # The files of the images the revision needs that are not imported yet, by path.
    image_sources: Mapping[str, ImageSourceFacts] = field(default_factory=dict)

    @cached_property
    def seed_volumes(self) -> Mapping[str, tuple[tuple[str, str], ...]]:
        """The pools' seed volumes by the prefix of the VM they belong to: every VM looks
        its own up, so this is built once rather than scanned for each."""
        found: dict[str, list[tuple[str, str]]] = {}
        for pool, volume in sorted(self.volumes):
            owner = seed_volume_owner(volume)
            if owner is not None:
                found.setdefault(owner, []).append((pool, volume))
        return {prefix: tuple(volumes) for prefix, volumes in found.items()}


@dataclass
class VMPlan:
    object_id: ObjectId
    outcome: Outcome
    actions: list[Action] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


@dataclass
class Plan:
    vms: list[VMPlan] = field(default_factory=list)
    statuses: dict[ObjectId, VMStatus] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The deletions a whole revision would make, held back because this one has
    # unreadable files or no objects at all (SPEC §10): the daemon and `apply` say so.
    held_back: list[str] = field(default_factory=list)
    # The `status:` documents of the other objects this host reports (operations, disks,
    # attachments: those of the VMs it runs), by object; written beside the VM reports.
    object_reports: dict[ObjectId, dict[str, Any]] = field(default_factory=dict)

    @property
    def actions(self) -> list[Action]:
        return [action for vm in self.vms for action in vm.actions]

    @property
    def has_changes(self) -> bool:
        return any(vm.actions for vm in self.vms)


@dataclass(frozen=True)
class PlanContext:
    inventory: Inventory
    findings: list[Finding]
    broken: frozenset[ObjectId]
    # The findings of the files that yield no object (broken YAML, a file that cannot be
    # read): while there is any, the revision may be missing anything, so nothing is deleted.
    unreadable_files: tuple[Finding, ...]
    topology: TopologyPolicy
    change_table: ChangeTable
    host: HostContext
    revision: str
    # Whether statuses show what this plan is about to do (Starting, Stopping);
    # off when describing the host after the plan was applied.
    anticipate: bool = True
    # The fleet (placement.fleet) and where the latest status reports say each
    # VM runs; empty for a fleet of one.
    fleet: tuple[FleetNode, ...] = ()
    reported_nodes: Mapping[ObjectId, str] = field(default_factory=dict)
    # IP address management: its inputs (None: no pool configured, no addresses), and
    # the pass's allocation once reconcile.with_addressing has made it.
    addresses: AddressInputs | None = None
    addressing: Addressing | None = None
    # The disks the latest reports list, by volume name: which volumes of deleted
    # disks may go (engine/disks.py).
    disk_records: Mapping[str, DiskRecord] = field(default_factory=dict)
    # The latest reports of VirtualMachineOperations: a final one is never run again.
    operation_reports: Mapping[ObjectId, ReportedOperation] = field(default_factory=dict)


@dataclass(frozen=True)
class Settled:
    """The VMs a plan found with nothing to do, and the observation it read them from.

    The second plan of a pass (after the actions) keeps such a VM as it was planned
    wherever the pass did not read its domain again: its inputs are the very same
    objects, and the planner gives the same inputs the same plan (module docstring).
    A VM with anything to do, or anything to explain, is planned again.
    """

    observation: Observation
    vms: Mapping[ObjectId, tuple[VMPlan, VMStatus]]

    @classmethod
    def of(cls, done: Plan, observation: Observation) -> Settled:
        return cls(
            observation,
            {
                vm.object_id: (vm, done.statuses[vm.object_id])
                for vm in done.vms
                if vm.outcome in _SETTLED_OUTCOMES
                and not vm.actions
                and not vm.details
                and vm.object_id in done.statuses
            },
        )

    def applies_to(self, observation: Observation) -> bool:
        """Whether the pool, the network and the image files are the ones read before:
        every VM depends on them, so when the pass read one again, all are planned anew."""
        before = self.observation
        return (
            observation.volumes is before.volumes
            and observation.network is before.network
            and observation.image_sources is before.image_sources
        )

    def kept(
        self, vm_id: ObjectId, name: str, observation: Observation
    ) -> tuple[VMPlan, VMStatus] | None:
        entry = self.vms.get(vm_id)
        if entry is None:
            return None
        before = self.observation.domains.get(name)
        if before is None or observation.domains.get(name) is not before:
            return None
        return entry


_SETTLED_OUTCOMES = frozenset({Outcome.UNCHANGED, Outcome.AWAITING_RESTART})


def change_table_for(rules: Sequence[ChangeRule], topology: TopologyPolicy) -> ChangeTable:
    def sockets_of(cores: int) -> int | None:
        try:
            return topology_for(topology, cores).sockets
        except TopologyError:
            return None

    return ChangeTable(rules, sockets_of)


def plan(context: PlanContext, observation: Observation, settled: Settled | None = None) -> Plan:
    """The pass's plan; `settled`: an earlier plan of the same pass (Settled)."""
    result = Plan()
    if settled is not None and not settled.applies_to(observation):
        settled = None
    findings_by_object: dict[str, list[Finding]] = {}
    for finding in context.findings:
        if finding.object:
            findings_by_object.setdefault(finding.object, []).append(finding)
    vms = sorted((vm for _, vm in context.inventory.of_kind(VirtualMachine)), key=lambda v: v.id)
    desired_names = {domain_name(vm) for vm in vms} | {
        domain_name(broken) for broken in context.broken if broken.kind == "VirtualMachine"
    }
    # Deletions go first: the guaranteed CPU they free admits VMs in the same pass.
    deleted = _plan_deletions(context, observation, desired_names, result)
    devices = PassDevices.of(
        context.inventory,
        context.findings,
        context.broken,
        observation.volumes,
        observation.image_sources,
        context.host.storage_pool,
        context.host.image_directories,
    )
    capacity = _Capacity(context.host.cpu_capacity_millicores)
    for name, observed in observation.domains.items():
        if name in deleted:
            continue
        if observed.state.active and observed.live and observed.live.metadata:
            capacity.used += _millicores_of(observed.live.metadata.spec)
    local = context.host.node_name
    members = list(context.fleet) or [FleetNode(local, dict(context.host.node_labels))]
    elsewhere = 0
    for vm in vms:
        vmclass = context.inventory.get(
            ObjectId("VirtualMachineClass", "", vm.spec.virtual_machine_class_name)
        )
        placement = place(
            vm,
            vmclass.model
            if vmclass is not None and isinstance(vmclass.model, VirtualMachineClass)
            else None,
            members,
            running_here=domain_name(vm) in observation.domains,
            local=local,
            reported_node=context.reported_nodes.get(vm.id, ""),
        )
        if not reports_here(placement, members, local):
            elsewhere += 1  # another host of the fleet runs and reports it
            continue
        if not placement.node:
            result.vms.append(
                VMPlan(vm.id, Outcome.BLOCKED, details=[f"not placed: {placement.reason}"])
            )
            status = _base_status(context, vm, None)
            status.set(mark_false(VMCondition.RUNNING, VMReason.UNSCHEDULABLE, placement.reason))
            result.statuses[vm.id] = status
            continue
        kept = settled.kept(vm.id, domain_name(vm), observation) if settled else None
        if kept is not None:
            result.vms.append(kept[0])
            result.statuses[vm.id] = kept[1]
            continue
        vm_plan, status = _plan_vm(
            context, vm, findings_by_object.get(str(vm.id), []), observation, capacity, devices
        )
        if vm_plan.actions and vm.metadata.annotations.get(SUSPEND_ANNOTATION) == "true":
            # Reported as it is, changed in nothing, until the annotation goes.
            vm_plan.details.append(
                f"suspended by {SUSPEND_ANNOTATION}: not applied: "
                + "; ".join(action.describe() for action in vm_plan.actions)
            )
            vm_plan.actions = []
            vm_plan.outcome = Outcome.SUSPENDED
        if vm_plan.outcome in (Outcome.BLOCKED, Outcome.SUSPENDED):
            devices.block(vm.id, vm_plan.details[0] if vm_plan.details else str(vm_plan.outcome))
        result.vms.append(vm_plan)
        result.statuses[vm.id] = status
    for broken_id in sorted(context.broken):
        if broken_id.kind != "VirtualMachine":
            continue
        reported = context.reported_nodes.get(broken_id, "")
        here = domain_name(broken_id) in observation.domains
        if here or reported == local or (not reported and members[0].name == local):
            result.statuses[broken_id] = _broken_status(context, broken_id, observation)
    _plan_stale_reservations(context, observation, result)
    _plan_block_devices(context, observation, devices, deleted, members[0].name == local, result)
    result.object_reports.update(
        report_operations(
            context.inventory,
            context.broken,
            context.operation_reports,
            observation.domains,
            result.vms,
            result.statuses,
            members,
            local,
            context.anticipate,
        )
    )
    if elsewhere:
        result.notes.append(f"{elsewhere} VM(s) are placed on other hosts of the fleet")
    if local not in {member.name for member in members}:
        result.notes.append(f"this host ({local}) is not a Node of the repository: it starts no VM")
    return result


@dataclass
class _Capacity:
    total: int
    used: int = 0

    def admit(self, millicores: int) -> str | None:
        """Reserve a guaranteed share, or say how much is missing."""
        free = self.total - self.used
        if millicores <= free:
            self.used += millicores
            return None
        return (
            f"needs {millicores}m of guaranteed CPU but only {max(free, 0)}m of"
            f" {self.total}m are free on this host ({millicores - max(free, 0)}m missing)"
        )


def _millicores_of(spec: Mapping[str, object]) -> int:
    cpu = spec.get("cpu")
    if not isinstance(cpu, dict):
        return 0
    cores = cpu.get("cores", 0)
    fraction = str(cpu.get("coreFraction", "100%")).rstrip("%")
    if not isinstance(cores, int) or not fraction.isdigit():
        return 0
    return requested_millicores(cores, int(fraction))


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


def _blocking_conditions(findings: list[Finding]) -> list[Condition]:
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


def _base_status(
    context: PlanContext, vm: VirtualMachine, observed: ObservedDomain | None
) -> VMStatus:
    active = observed is not None and observed.state.active
    status = VMStatus(
        memory=vm.spec.memory.size.text,
        cores=vm.spec.cpu.cores,
        conditions=[*_READY, _RUNNING if active else _NOT_RUNNING],
    )
    # Known from the spec alone, even for a VM that is blocked before its domain is built.
    with contextlib.suppress(TopologyError):
        layout = topology_for(context.topology, vm.spec.cpu.cores)
        status.sockets, status.cores_per_socket = layout.sockets, layout.cores_per_socket
    status.phase = _phase_of(observed)
    if active:
        status.node_name = context.host.node_name
    report_agent(status, observed)
    meta = _running_metadata(observed)
    if meta is not None:
        status.revision = meta.revision
    if observed is not None and observed.config.metadata is not None:
        status.created = observed.config.metadata.created
    return status


# The conditions every VM starts from (Condition is frozen: shared by all statuses).
_READY = (
    mark_true(VMCondition.VIRTUAL_MACHINE_CLASS_READY, VMReason.VIRTUAL_MACHINE_CLASS_READY),
    mark_true(VMCondition.BLOCK_DEVICES_READY, VMReason.BLOCK_DEVICES_READY),
    mark_true(VMCondition.PROVISIONING_READY, VMReason.PROVISIONING_READY),
)
_RUNNING = mark_true(VMCondition.RUNNING, VMReason.RUNNING)
_NOT_RUNNING = mark_false(VMCondition.RUNNING, VMReason.NOT_RUNNING)


def _running_metadata(observed: ObservedDomain | None) -> DomainMetadata | None:
    if observed is None:
        return None
    if observed.state.active and observed.live is not None and observed.live.metadata is not None:
        return observed.live.metadata
    return observed.config.metadata


def _phase_of(observed: ObservedDomain | None) -> VMPhase:
    return phase_of(observed)  # lifecycle.py: the state and its reason


def _fill_resources(
    status: VMStatus,
    desired: DesiredDomain,
    observed: ObservedDomain | None,
    topology: TopologyPolicy,
) -> None:
    """Resources of the running instance when there is one, else of the spec (§2.4)."""
    spec = desired.spec_json
    active = observed is not None and observed.state.active
    meta = _running_metadata(observed) if active else None
    if meta is not None and meta.spec:
        spec = meta.spec
    cpu = spec.get("cpu", {})
    status.cores = int(cpu.get("cores", desired.spec.vcpus))
    status.core_fraction = str(cpu.get("coreFraction", "100%"))
    status.memory = str(spec.get("memory", {}).get("size", status.memory))
    try:
        layout = topology_for(topology, status.cores)
        status.sockets, status.cores_per_socket = layout.sockets, layout.cores_per_socket
    except TopologyError:
        status.sockets = desired.topology_sockets
        status.cores_per_socket = desired.topology_cores_per_socket
    status.requested_millicores = _millicores_of(spec) if active else None


def _plan_vm(
    context: PlanContext,
    vm: VirtualMachine,
    findings: list[Finding],
    observation: Observation,
    capacity: _Capacity,
    devices: PassDevices,
) -> tuple[VMPlan, VMStatus]:
    name = domain_name(vm)
    observed = observation.domains.get(name)
    status = _base_status(context, vm, observed)
    vm_plan = VMPlan(vm.id, Outcome.UNCHANGED)
    decided = _report_address(context, vm, status)
    blocking = _blocking_conditions(findings)
    vmclass = context.inventory.get(
        ObjectId("VirtualMachineClass", "", vm.spec.virtual_machine_class_name)
    )
    class_model = vmclass.model if vmclass is not None else None
    # What the spec asks for, until the running instance's own figures replace it.
    status.core_fraction = str(
        effective_core_fraction(
            vm.spec, class_model if isinstance(class_model, VirtualMachineClass) else None
        )
    )
    if blocking or vmclass is None or not isinstance(vmclass.model, VirtualMachineClass):
        for condition in blocking:
            status.set(condition)
        if vmclass is None:
            status.set(
                mark_false(
                    VMCondition.VIRTUAL_MACHINE_CLASS_READY,
                    VMReason.VIRTUAL_MACHINE_CLASS_NOT_READY,
                    f"VirtualMachineClass {vm.spec.virtual_machine_class_name}"
                    " is missing or invalid",
                )
            )
        return _blocked(vm, vm_plan, status, observed, "its manifest breaks a rule")
    try:
        block_devices = devices.devices(vm_plan.object_id)
        desired = build_domain(
            vm,
            vmclass.model,
            context.inventory,
            context.topology,
            context.host,
            context.revision,
            _seed_network(vm, decided, observation),
            block_devices,
        )
    except DeviceProblem as problem:
        status.set(
            mark_false(
                VMCondition.BLOCK_DEVICES_READY, VMReason.BLOCK_DEVICES_NOT_READY, str(problem)
            )
        )
        return _blocked(vm, vm_plan, status, observed, str(problem))
    except NotReady as error:
        status.set(mark_false(error.condition, error.reason, str(error)))
        return _blocked(vm, vm_plan, status, observed, str(error))
    _fill_resources(status, desired, observed, context.topology)
    status.block_device_refs = block_device_refs(
        block_devices, desired.spec.disks, observed, observation.volumes, context.host.storage_pool
    )
    address_ready = _plan_address(decided, vm, desired, observation, vm_plan, status)
    storage, notices = devices.storage_steps(vm_plan.object_id, block_devices)
    vm_plan.actions.extend(storage)
    vm_plan.details.extend(notices)
    _plan_seeds(vm, desired, observed, observation, vm_plan)
    spec = desired.spec
    config_meta = observed.config.metadata if observed else None
    if config_meta is not None:
        spec = _with_bookkeeping(spec, config_meta)
    if observed is None:
        vm_plan.actions.append(DefineDomain(vm.id, spec, "new"))
        vm_plan.outcome = Outcome.CREATED
    elif (
        not observed.persistent
        or config_meta is None
        or config_meta.digest != spec.metadata.digest
        or observed.config.facts != spec.facts()
    ):
        drifted = config_meta is not None and config_meta.digest == spec.metadata.digest
        vm_plan.actions.append(
            DefineDomain(vm.id, spec, "definition edited by hand" if drifted else "spec changed")
        )
        vm_plan.outcome = Outcome.REDEFINED
        if drifted:
            vm_plan.details.append("the next-boot definition was edited outside Git; put back")
    restart_pending = False
    if observed is not None and observed.state.active:
        restart_pending = _plan_running_changes(context, vm, desired, observed, vm_plan, status)
    hotplug = devices.hotplug_steps(vm.id, spec, observed)
    vm_plan.actions.extend(hotplug)
    grown = any(isinstance(action, ResizeDisk) for action in storage)
    if (hotplug or grown) and vm_plan.outcome in (Outcome.UNCHANGED, Outcome.REDEFINED):
        vm_plan.outcome = Outcome.CHANGED_LIVE
    _plan_power(
        context, vm, desired, observed, restart_pending, capacity, vm_plan, status, address_ready
    )
    return vm_plan, status


def _with_bookkeeping(spec: DomainSpec, config_meta: DomainMetadata) -> DomainSpec:
    """The spec carrying the run-policy bookkeeping of the definition it replaces: it
    lives on across redefinitions."""
    meta = spec.metadata
    if (
        meta.stopped_manually == config_meta.stopped_manually
        and meta.completed_operations == config_meta.completed_operations
        and meta.created == config_meta.created
    ):
        return spec
    # The desired spec is the same object pass after pass (desired.py's memo), and so is
    # the definition read back: the spec they make is kept, so no pass makes it again.
    kept = _BOOKKEPT.get(spec, config_meta)
    if kept is not None:
        return kept
    made = replace(
        spec,
        metadata=replace(
            meta,
            stopped_manually=config_meta.stopped_manually,
            completed_operations=config_meta.completed_operations,
            created=config_meta.created,
        ),
    )
    return _BOOKKEPT.put((spec, config_meta), made)


_BOOKKEPT: IdentityMemo[DomainSpec] = IdentityMemo()


def _seed_network(
    vm: VirtualMachine, decided: VMAddress | None, observation: Observation
) -> NetworkConfig | None:
    """The static address a cloud-init seed gives the guest: the VM's leased address on
    the network's subnet, the network's own address as gateway and DNS server."""
    network = observation.network
    if decided is None or decided.address is None or network is None:
        return None
    address = ipaddress.IPv4Address(decided.address)
    for subnet, gateway in zip(network.subnets, network.gateways, strict=False):
        if address in subnet:
            return NetworkConfig(
                mac=domain_mac(vm.id),
                address=decided.address,
                prefix=subnet.prefixlen,
                gateway=str(gateway),
                dns=(str(gateway),),
            )
    return None


def _plan_seeds(
    vm: VirtualMachine,
    desired: DesiredDomain,
    observed: ObservedDomain | None,
    observation: Observation,
    vm_plan: VMPlan,
) -> None:
    """Upload the VM's seed when it is new; remove its old seeds once no definition
    (next boot or running) uses them."""
    current = {(seed.pool, seed.volume) for seed in desired.seeds}
    for seed in desired.seeds:
        if (seed.pool, seed.volume) not in observation.volumes:
            vm_plan.actions.append(
                EnsureSeedVolume(
                    vm.id, seed.pool, seed.volume, seed.kind, seed.digest, seed.content
                )
            )
    # Disk sources read back from libvirt are "pool/volume" for pool volumes.
    in_use = {f"{pool}/{volume}" for pool, volume in current}
    if observed is not None:
        for view in (observed.config, observed.live):
            if view is not None:
                in_use |= {source for _target, source, _device in view.facts.disks}
    for pool, volume in observation.seed_volumes.get(seed_volume_prefix(vm.namespace, vm.name), ()):
        if f"{pool}/{volume}" not in in_use:
            vm_plan.actions.append(DeleteSeedVolume(vm.id, pool, volume))


def _report_address(context: PlanContext, vm: VirtualMachine, status: VMStatus) -> VMAddress | None:
    """The VM's vmip and address in its status, whatever else keeps it from running."""
    addressing = context.addressing
    decided = addressing.vm(vm) if addressing is not None else None
    if decided is None:
        # No pool configured, or a VM without the Main network: nothing to wait for.
        status.set(
            mark_true(
                VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY,
                VMReason.VIRTUAL_MACHINE_IP_ADDRESS_READY,
            )
        )
        return None
    status.vmip_name = decided.vmip_name
    if decided.address is None:
        status.set(
            mark_false(
                VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY,
                VMReason.VIRTUAL_MACHINE_IP_ADDRESS_NOT_READY,
                decided.message,
            )
        )
        return decided
    status.ip_address = decided.address
    status.set(
        mark_true(
            VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY, VMReason.VIRTUAL_MACHINE_IP_ADDRESS_READY
        )
    )
    return decided


def _plan_address(
    decided: VMAddress | None,
    vm: VirtualMachine,
    desired: DesiredDomain,
    observation: Observation,
    vm_plan: VMPlan,
    status: VMStatus,
) -> bool:
    """The VM's DHCP reservation on the host's network; False when the VM has to wait for
    an address before it may start."""
    if decided is None:
        return True
    if decided.address is None:
        return False
    nic = desired.spec.nic
    if nic is None:
        return True
    network = observation.network
    if network is None:
        status.set(
            mark_false(
                VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY,
                VMReason.VIRTUAL_MACHINE_IP_ADDRESS_NOT_READY,
                f"network {nic.network} does not exist on this host;"
                " the address cannot be reserved",
            )
        )
        return False
    if not network.serves(decided.address):
        # A pool that does not match the network: the guest would get some other address
        # from DHCP. Said plainly, and (as the platform's NotAssigned) not blocking.
        subnets = ", ".join(str(s) for s in network.subnets) or "none"
        status.set(
            mark_false(
                VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY,
                VMReason.VIRTUAL_MACHINE_IP_ADDRESS_NOT_ASSIGNED,
                f"{decided.address} is outside network {network.name}'s subnets ({subnets});"
                " its DHCP cannot hand it out: make virtualMachineCIDRs match the network",
            )
        )
        return True
    name = reservation_name(vm.id)
    found = reservations_by_mac(network).get(nic.mac.lower())
    if found is None or found.ip != decided.address or found.name != name:
        vm_plan.actions.append(ReserveAddress(vm.id, network.name, nic.mac, decided.address, name))
        vm_plan.details.append(f"address {decided.address} (vmip {decided.vmip_name})")
        if vm_plan.outcome is Outcome.UNCHANGED:
            vm_plan.outcome = Outcome.CHANGED_LIVE
    return True


def _plan_block_devices(
    context: PlanContext,
    observation: Observation,
    devices: PassDevices,
    undefined: set[str],
    first_member: bool,
    result: Plan,
) -> None:
    """The volumes of deleted disks (after the domains undefined in this pass), and the
    reports of the disks and attachments this host reports (block_devices.py)."""
    whole = not context.unreadable_files and bool(context.inventory.objects)
    deletions, kept, notes = plan_disk_deletions(
        devices,
        context.broken,
        whole,
        context.disk_records,
        observation.volumes,
        observation.domains,
        undefined,
    )
    for action in deletions:
        result.vms.append(
            VMPlan(action.owner, Outcome.DELETED, [action], ["manifest deleted: volume deleted"])
        )
    for stale in stale_image_volumes(devices.view, context.broken, whole, observation.domains):
        result.vms.append(
            VMPlan(stale.owner, Outcome.DELETED, [stale], ["no image of the revision uses it"])
        )
    if not whole:
        # What a whole revision would delete, only counted: the operator learns how much
        # waits for the revision to be readable again.
        would_delete, _kept, _notes = plan_disk_deletions(
            devices,
            context.broken,
            True,
            context.disk_records,
            observation.volumes,
            observation.domains,
            undefined,
        )
        would_delete += stale_image_volumes(devices.view, context.broken, True, observation.domains)
        result.held_back.extend(action.describe() for action in would_delete)
    result.notes.extend(notes)
    result.object_reports.update(kept)
    result.object_reports.update(
        report_devices(
            devices,
            context.inventory,
            list(result.statuses),
            observation.domains,
            result.actions,
            first_member=first_member,
            anticipate=context.anticipate,
        )
    )


def _plan_stale_reservations(context: PlanContext, observation: Observation, result: Plan) -> None:
    """Release the reservations this project made for VMs that are gone from the revision.

    Only when the revision is whole, as with deletions: a VM that is merely unreadable
    keeps its reservation, and so its running guest its address.
    """
    network = observation.network
    if context.addressing is None or network is None:
        return
    if context.unreadable_files or not context.inventory.objects:
        return
    present = {loaded.id for loaded in context.inventory.objects} | set(context.broken)
    plans = {vm_plan.object_id: vm_plan for vm_plan in result.vms}
    for reservation in network.reservations:
        owner = reservation_owner(reservation)
        if owner is None or owner in present:
            continue
        action = ReleaseAddress(owner, network.name, reservation.mac, reservation.ip)
        vm_plan = plans.get(owner)
        if vm_plan is None:
            vm_plan = VMPlan(owner, Outcome.DELETED)
            plans[owner] = vm_plan
            result.vms.append(vm_plan)
        vm_plan.actions.append(action)
        vm_plan.details.append(f"address {reservation.ip} released (the VM is gone)")


def _blocked(
    vm: VirtualMachine,
    vm_plan: VMPlan,
    status: VMStatus,
    observed: ObservedDomain | None,
    why: str,
) -> tuple[VMPlan, VMStatus]:
    vm_plan.outcome = Outcome.BLOCKED
    vm_plan.details.append(f"not applied: {why}")
    if observed is not None and power_decision(vm.spec.run_policy, observed) is PowerDecision.START:
        # A stopped VM its run policy would start waits for what blocks it: Pending,
        # not Stopped (dvp-api.md §2.2, "deps not ready and a start was requested").
        status.phase = VMPhase.PENDING
    if observed is not None and observed.state.active:
        status.set(
            mark_false(
                VMCondition.CONFIGURATION_APPLIED,
                VMReason.CONFIGURATION_NOT_APPLIED,
                f"the VM keeps running as it was: {why}",
            )
        )
    return vm_plan, status


def _plan_running_changes(
    context: PlanContext,
    vm: VirtualMachine,
    desired: DesiredDomain,
    observed: ObservedDomain,
    vm_plan: VMPlan,
    status: VMStatus,
) -> bool:
    """Changes between the running instance and the spec; True when a restart is pending."""
    live_meta = observed.live.metadata if observed.live else None
    baseline = live_meta.spec if live_meta else {}
    changes = compare_specs(baseline, desired.spec_json, context.change_table)
    restart = [c for c in changes if c.action is ChangeAction.RESTART]
    if restart:
        status.restart_awaiting_changes = [c.as_status() for c in restart]
        message = "Waiting for the user to restart the VM to apply: " + ", ".join(
            c.path for c in restart
        )
        status.set(
            mark_true(
                VMCondition.AWAITING_RESTART_TO_APPLY_CONFIGURATION,
                VMReason.CHANGES_PENDING_RESTART,
                message,
            )
        )
        status.set(
            mark_false(
                VMCondition.CONFIGURATION_APPLIED, VMReason.CONFIGURATION_NOT_APPLIED, message
            )
        )
        if vm_plan.outcome is Outcome.UNCHANGED or vm_plan.outcome is Outcome.REDEFINED:
            vm_plan.outcome = Outcome.AWAITING_RESTART
        return True
    live_actions: list[Action] = []
    if changes:
        if any(c.path.startswith("cpu") for c in changes):
            live_actions.append(SetVcpusLive(vm.id, desired.spec.name, desired.spec.vcpus))
            live_actions.append(SetSharesLive(vm.id, desired.spec.name, desired.spec.shares))
        # The operations the instance was started after stay listed (operations.py).
        ran = live_meta.completed_operations if live_meta else ()
        live_meta_now = replace(desired.spec.metadata, completed_operations=ran)
        live_actions.append(SetLiveMetadata(vm.id, desired.spec.name, live_meta_now))
        vm_plan.details.extend(f"{c.path}: {c.current} -> {c.desired}" for c in changes)
    elif observed.live is not None and observed.live.facts.vcpus != desired.spec.vcpus:
        # Hand-made `virsh setvcpus --live`: put the running instance back.
        live_actions.append(SetVcpusLive(vm.id, desired.spec.name, desired.spec.vcpus))
        vm_plan.details.append(
            f"running vCPUs {observed.live.facts.vcpus} differ from the spec; put back"
        )
    if live_actions:
        vm_plan.actions.extend(live_actions)
        if vm_plan.outcome in (Outcome.UNCHANGED, Outcome.REDEFINED):
            vm_plan.outcome = Outcome.CHANGED_LIVE
    return False


def _plan_power(
    context: PlanContext,
    vm: VirtualMachine,
    desired: DesiredDomain,
    observed: ObservedDomain | None,
    restart_pending: bool,
    capacity: _Capacity,
    vm_plan: VMPlan,
    status: VMStatus,
    address_ready: bool = True,
) -> None:
    name = desired.spec.name
    grace = vm.spec.termination_grace_period_seconds
    decision = power_decision(vm.spec.run_policy, observed)
    # A VirtualMachineOperation's power step replaces the run policy's in this pass.
    records, order = operation_step(
        context.inventory, context.operation_reports, vm, name, observed, decision
    )
    vm_plan.actions.extend(records)
    if order is not None and order.step is not Step.START:
        vm_plan.actions.append(order.action(vm.id, name, grace))
        if observed is not None and observed.state.active:
            if context.anticipate:
                status.phase = VMPhase.STOPPING
            vm_plan.outcome = Outcome.RESTARTED if order.step is Step.RESTART else Outcome.STOPPED
        return
    if order is not None:
        decision = PowerDecision.START
    if decision is PowerDecision.START and not address_ready:
        ip_condition = status.get(VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY)
        why = ip_condition.message if ip_condition else "no address yet"
        status.phase = VMPhase.PENDING
        status.set(
            mark_false(VMCondition.RUNNING, VMReason.VIRTUAL_MACHINE_IP_ADDRESS_NOT_READY, why)
        )
        vm_plan.details.append(f"not started: {why}")
        return
    if decision is PowerDecision.START:
        refusal = capacity.admit(desired.requested_millicores)
        if refusal is not None:
            status.phase = VMPhase.PENDING
            status.set(mark_false(VMCondition.RUNNING, VMReason.INSUFFICIENT_RESOURCES, refusal))
            vm_plan.details.append(f"not started: {refusal}")
            return
        vm_plan.actions.append(
            order.action(vm.id, name, grace) if order is not None else StartDomain(vm.id, name)
        )
        if context.anticipate:
            status.phase = VMPhase.STARTING
        if vm_plan.outcome in (Outcome.UNCHANGED, Outcome.REDEFINED):
            vm_plan.outcome = Outcome.STARTED
    elif decision is PowerDecision.STOP:
        vm_plan.actions.append(StopDomain(vm.id, name, grace))
        if context.anticipate:
            status.phase = VMPhase.STOPPING
        vm_plan.outcome = Outcome.STOPPED
    elif (
        restart_pending
        and vm.spec.restart_approval_mode is RestartApprovalMode.AUTOMATIC
        and observed is not None
        and observed.state.active
    ):
        vm_plan.actions.append(RestartDomain(vm.id, name, grace))
        vm_plan.outcome = Outcome.RESTARTED
        vm_plan.details.append("restartApprovalMode Automatic: restarting to apply the changes")


def _broken_status(context: PlanContext, object_id: ObjectId, observation: Observation) -> VMStatus:
    observed = observation.domains.get(domain_name(object_id))
    status = VMStatus(phase=_phase_of(observed))
    if observed is not None and observed.state.active:
        status.node_name = context.host.node_name
    report_agent(status, observed)
    message = next(
        (f.message for f in context.findings if f.object == str(object_id)), "manifest is invalid"
    )
    status.set(
        mark_false(
            VMCondition.CONFIGURATION_APPLIED,
            VMReason.CONFIGURATION_NOT_APPLIED,
            f"the manifest is invalid, nothing is changed: {message}",
        )
    )
    return status


def _plan_deletions(
    context: PlanContext, observation: Observation, desired_names: set[str], result: Plan
) -> set[str]:
    """Plan the undefinition of VMs whose manifest is gone; their domain names."""
    orphans = [
        observed
        for name, observed in sorted(observation.domains.items())
        if name not in desired_names and observed.owner and observed.owner[0] == "VirtualMachine"
    ]
    if not orphans:
        return set()
    if context.unreadable_files or not context.inventory.objects:
        result.notes.append(
            f"{len(orphans)} domain(s) have no manifest, but this revision has unreadable files"
            " or no objects at all: nothing is deleted"
        )
        result.held_back.extend(f"undefine domain {observed.name}" for observed in orphans)
        return set()
    for observed in orphans:
        kind, namespace, name = observed.owner  # type: ignore[misc]
        owner = ObjectId(kind, namespace, name)
        grace = 60
        meta = _running_metadata(observed)
        if meta is not None:
            grace = int(meta.spec.get("terminationGracePeriodSeconds", 60))
        # Reported until the domain is gone: the platform's Terminating (lifecycle.py).
        result.statuses[owner] = terminating_status(
            context.host.node_name,
            observed,
            context.topology,
            _millicores_of(meta.spec) if meta is not None else 0,
        )
        result.vms.append(
            VMPlan(
                owner,
                Outcome.DELETED,
                [
                    UndefineDomain(owner, observed.name, grace),
                    *(
                        DeleteSeedVolume(owner, pool, volume)
                        for pool, volume in observation.seed_volumes.get(
                            seed_volume_prefix(namespace, name), ()
                        )
                    ),
                ],
                ["manifest deleted: shut down and undefined; its disks are kept"],
            )
        )
    return {observed.name for observed in orphans}


__all__ = ["Observation", "Outcome", "Plan", "PlanContext", "Settled", "plan"]
