"""One VM's plan: its steps in order, each a decision from values (status.py, the
address steps of network/, devices/, seeds.py, definition.py, running.py,
power_step.py), put together here into the VM's actions, outcome and status.

The status is built in this one place: a step returns the conditions and phase it
decides, and they are set in the order the steps run (a later one replaces an
earlier one of its type). The steps' values are NamedTuples: one of each is made for
every VM on every pass, and a tuple is made several times faster than a frozen
dataclass (the plan is on the hot path of a daemon pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from reconciler.api import ObjectId, VirtualMachine
from reconciler.api.vmclass import VirtualMachineClass
from reconciler.engine.devices.block_devices import PassDevices, block_device_refs
from reconciler.engine.devices.vm_devices import DeviceProblem, ResolvedDevice
from reconciler.engine.network.vm_address import address_report, reserve_address, seed_network
from reconciler.engine.operations.execute import migration_targets
from reconciler.engine.plan_types import Observation, Outcome, PlanContext, VMPlan
from reconciler.engine.vm.capacity import Capacity
from reconciler.engine.vm.definition import definition
from reconciler.engine.vm.desired import DesiredDomain, build_domain
from reconciler.engine.vm.migratable import migratable_condition
from reconciler.engine.vm.power import PowerDecision, power_decision
from reconciler.engine.vm.power_step import PowerInputs, plan_power
from reconciler.engine.vm.running import running_changes
from reconciler.engine.vm.seeds import seed_actions
from reconciler.engine.vm.status import base_status, blocking_conditions, resources_of
from reconciler.findings import Finding
from reconciler.model.actions import Action, MigrateDomain, ResizeDisk
from reconciler.model.conditions import Condition, VMCondition, VMReason, mark_false
from reconciler.model.domain import ObservedDomain
from reconciler.model.errors import NotReady
from reconciler.model.names import domain_name, seed_volume_prefix
from reconciler.model.phases import VMPhase
from reconciler.model.status import VMStatus
from reconciler.provisioning import NetworkConfig
from reconciler.rules.inventory import Inventory
from reconciler.rules.sizing import effective_core_fraction

# Per-VM suspend: the daemon keeps reporting the VM but changes nothing of it.
SUSPEND_ANNOTATION = "reconciler.vm-gitops.io/suspend"


class PlannedVM(NamedTuple):
    plan: VMPlan
    status: VMStatus
    # The host's capacity after the VM: with its share in use when the plan starts it.
    capacity: Capacity
    # Why the VM's devices are not changed (blocked, suspended); "" when they are.
    held: str = ""


def plan_vm(
    context: PlanContext,
    vm: VirtualMachine,
    findings: Sequence[Finding],
    observation: Observation,
    capacity: Capacity,
    devices: PassDevices,
) -> PlannedVM:
    """The VM's plan, then suspended if its annotation says so."""
    planned = _plan_vm(context, vm, findings, observation, capacity, devices)
    vm_plan = planned.plan
    if vm_plan.actions and vm.metadata.annotations.get(SUSPEND_ANNOTATION) == "true":
        # Reported as it is, changed in nothing, until the annotation goes.
        suspended = VMPlan(
            vm.id,
            Outcome.SUSPENDED,
            details=[
                *vm_plan.details,
                f"suspended by {SUSPEND_ANNOTATION}: not applied: "
                + "; ".join(action.describe() for action in vm_plan.actions),
            ],
        )
        # Its admission to the host's capacity stands, as it did before the split.
        return PlannedVM(suspended, planned.status, planned.capacity, suspended.details[0])
    return planned


def _plan_vm(
    context: PlanContext,
    vm: VirtualMachine,
    findings: Sequence[Finding],
    observation: Observation,
    capacity: Capacity,
    devices: PassDevices,
) -> PlannedVM:
    observed = observation.domains.get(domain_name(vm))
    status = base_status(vm, observed, context.topology, context.host.node_name)
    status.set(migratable_condition(context, vm))
    address = address_report(context.addressing, vm)
    status.set(address.condition)
    status.vmip_name, status.ip_address = address.vmip_name, address.ip_address
    class_model, class_missing = _vm_class(context.inventory, vm)
    blocking = blocking_conditions(findings)
    if class_missing is not None:
        blocking.append(class_missing)
    # What the spec asks for, until the running instance's own figures replace it.
    status.core_fraction = str(effective_core_fraction(vm.spec, class_model))
    if blocking or class_model is None:
        for condition in blocking:
            status.set(condition)
        return _blocked(vm, status, observed, capacity, "its manifest breaks a rule")
    built = _desired(
        context, vm, class_model, seed_network(vm.id, address.decided, observation.network), devices
    )
    if isinstance(built, Condition):
        status.set(built)
        return _blocked(vm, status, observed, capacity, built.message)
    block_devices, desired = built
    resources = resources_of(desired, observed, context.topology, status.memory)
    status.cores, status.core_fraction = resources.cores, resources.core_fraction
    status.memory, status.requested_millicores = resources.memory, resources.requested_millicores
    status.sockets, status.cores_per_socket = resources.sockets, resources.cores_per_socket
    status.block_device_refs = block_device_refs(
        block_devices, desired.spec.disks, observed, observation.volumes, context.host.storage_pool
    )
    outcome = Outcome.UNCHANGED
    actions: list[Action] = []
    details: list[str] = []
    reservation = reserve_address(address.decided, vm.id, desired.spec.nic, observation.network)
    if reservation.condition is not None:
        status.set(reservation.condition)
    if reservation.action is not None:
        actions.append(reservation.action)
        details.append(reservation.detail)
        outcome = outcome.upgraded(Outcome.CHANGED_LIVE)
    storage, notices = devices.storage_steps(vm.id, block_devices)
    actions.extend(storage)
    details.extend(notices)
    seeds_there = observation.seed_volumes.get(seed_volume_prefix(vm.namespace, vm.name), ())
    actions.extend(seed_actions(vm.id, desired.seeds, observed, observation.volumes, seeds_there))
    defined = definition(vm.id, desired.spec, observed)
    if defined.action is not None:
        actions.append(defined.action)
        outcome = defined.outcome
        if defined.detail:
            details.append(defined.detail)
    restart_pending = False
    if observed is not None and observed.state.active:
        changes = running_changes(vm.id, desired, observed, context.change_table)
        restart_pending = changes.restart_pending
        if restart_pending:
            status.restart_awaiting_changes = list(changes.restart_awaiting)
            for condition in changes.conditions:
                status.set(condition)
            outcome = outcome.upgraded(Outcome.AWAITING_RESTART)
        elif changes.actions:
            actions.extend(changes.actions)
            details.extend(changes.details)
            outcome = outcome.upgraded(Outcome.CHANGED_LIVE)
    hotplug = devices.hotplug_steps(vm.id, defined.spec, observed)
    actions.extend(hotplug)
    if hotplug or any(isinstance(action, ResizeDisk) for action in storage):
        outcome = outcome.upgraded(Outcome.CHANGED_LIVE)
    address_wait = None
    if not reservation.ready:
        ip_condition = status.get(VMCondition.VIRTUAL_MACHINE_IP_ADDRESS_READY)
        address_wait = ip_condition.message if ip_condition else "no address yet"
    inputs = PowerInputs(
        vm,
        desired.spec.name,
        observed,
        requested_millicores=desired.requested_millicores,
        restart_pending=restart_pending,
        address_wait=address_wait,
    )
    power = plan_power(context, inputs, capacity, outcome)
    actions.extend(power.actions)
    if power.phase is not None:
        status.phase = power.phase
    if power.condition is not None:
        status.set(power.condition)
    if power.detail:
        details.append(power.detail)
    if status.phase is VMPhase.MIGRATING:
        status.migration_target = _migration_target(power.actions, observed)
    if observed is not None and observed.migration is not None:
        # Leaving this host: only what follows or stops the migration is done. Anything
        # else races it, and a volume made now would be one the migration's end has just
        # deleted here (moved_volumes.py): the destination has the VM from then on.
        actions = list(power.actions)
    return PlannedVM(VMPlan(vm.id, power.outcome, actions, details), status, power.capacity)


def _migration_target(actions: Sequence[Action], observed: ObservedDomain | None) -> str:
    """The node a migrating VM goes to: this pass's migration, or the one its record names."""
    for action in actions:
        if isinstance(action, MigrateDomain):
            return action.target_node
    going = migration_targets(observed.config.metadata if observed is not None else None)
    return next(iter(going.values()), "")


def _vm_class(
    inventory: Inventory, vm: VirtualMachine
) -> tuple[VirtualMachineClass | None, Condition | None]:
    """The VM's class, if valid; the condition that says so when it is missing."""
    loaded = inventory.get(ObjectId("VirtualMachineClass", "", vm.spec.virtual_machine_class_name))
    if loaded is None:
        return None, mark_false(
            VMCondition.VIRTUAL_MACHINE_CLASS_READY,
            VMReason.VIRTUAL_MACHINE_CLASS_NOT_READY,
            f"VirtualMachineClass {vm.spec.virtual_machine_class_name} is missing or invalid",
        )
    model = loaded.model
    return (model if isinstance(model, VirtualMachineClass) else None), None


def _desired(
    context: PlanContext,
    vm: VirtualMachine,
    vmclass: VirtualMachineClass,
    network_config: NetworkConfig | None,
    devices: PassDevices,
) -> tuple[tuple[ResolvedDevice, ...], DesiredDomain] | Condition:
    """The VM's devices and the domain it should be; or the condition that says which
    dependency it waits for (its message is why the VM is not applied)."""
    try:
        block_devices = devices.devices(vm.id)
        desired = build_domain(
            vm,
            vmclass,
            context.inventory,
            context.topology,
            context.host,
            context.revision,
            network_config,
            block_devices,
        )
    except DeviceProblem as problem:
        reason = VMReason.BLOCK_DEVICES_NOT_READY
        return mark_false(VMCondition.BLOCK_DEVICES_READY, reason, str(problem))
    except NotReady as error:
        return mark_false(error.condition, error.reason, str(error))
    return block_devices, desired


def _blocked(
    vm: VirtualMachine,
    status: VMStatus,
    observed: ObservedDomain | None,
    capacity: Capacity,
    why: str,
) -> PlannedVM:
    """A VM whose plan stops before its domain: nothing of it changes, and its status
    says why."""
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
    blocked = VMPlan(vm.id, Outcome.BLOCKED, details=[f"not applied: {why}"])
    return PlannedVM(blocked, status, capacity, blocked.details[0])
