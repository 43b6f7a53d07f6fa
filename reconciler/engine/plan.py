"""The planner: (desired objects, observed domains, policies) -> (actions, statuses).

A pure function in the controller-runtime sense: it starts from what *is*, the
same inputs give the same plan, and it remembers nothing that could change a plan;
run it again after applying and it returns no actions. (What it does keep, each
settled VM's plan for the next pass with the same inputs, vm/plan_memo.py, only
saves the time of making that plan again: tests/engine/vm/test_plan_memo.py.)

This module only orders the steps; each lives with its concern and decides from
values: fleet/ (which VMs this host plans, which domains go), vm/ (one VM's plan and
the host's CPU), network/ (addresses and their reservations), devices/ (volumes and
the reports of disks and attachments), operations/ (the reports of operations). The
types it takes and gives are in plan_types.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from reconciler.api import ObjectId, RunPolicy, VirtualMachine
from reconciler.engine.devices.block_devices import PassDevices
from reconciler.engine.devices.pass_volumes import pass_volumes
from reconciler.engine.fleet.assignment import assign, reports_broken_here
from reconciler.engine.fleet.deletions import plan_deletions
from reconciler.engine.fleet.evacuation import host_moves
from reconciler.engine.fleet.strays import find_strays
from reconciler.engine.from_last import desired_names, sorted_vms
from reconciler.engine.network.releases import release_stale_reservations
from reconciler.engine.operations.generated import as_loaded, generated_operations
from reconciler.engine.operations.status import report_operations
from reconciler.engine.plan_types import (
    Observation,
    Outcome,
    Plan,
    PlanContext,
    Settled,
    Step,
    VMPlan,
    no_step,
)
from reconciler.engine.vm.capacity import capacity_in_use
from reconciler.engine.vm.changes import change_table_for
from reconciler.engine.vm.migratable import migratable_condition, why_not_migratable
from reconciler.engine.vm.plan_memo import PLANS
from reconciler.engine.vm.plan_vm import SUSPEND_ANNOTATION, plan_vm
from reconciler.engine.vm.status import broken_status, unplaced_status
from reconciler.findings import Finding
from reconciler.model.names import domain_name


def plan(
    context: PlanContext,
    observation: Observation,
    settled: Settled | None = None,
    step: Step = no_step,
) -> Plan:
    """The pass's plan; `settled`: an earlier plan of the same pass (Settled); `step`
    hears how many of this host's VMs are planned."""
    observation = observation.without_arriving()
    if settled is not None and not settled.applies_to(observation):
        settled = None
    local, domains = context.host.node_name, observation.domains
    # Made from the last pass's when a push only edited manifests (from_last.py).
    vms = sorted_vms(context.inventory)
    # Deletions go first: the guaranteed CPU they free admits VMs in the same pass.
    wanted = desired_names(context.inventory, context.broken)
    deletions = plan_deletions(context, observation, wanted)
    vm_plans = list(deletions.vms)
    # Copies of VMs another host runs are not this host's (strays.py): only reported.
    strays = find_strays(context, domains, wanted)
    owned = strays.owned(domains)
    vm_plans.extend(strays.plans)
    statuses = dict(deletions.statuses)
    devices = PassDevices.of(
        context.inventory,
        context.findings,
        context.broken,
        observation.volumes,
        observation.image_sources,
        context.host.storage_pool,
        context.host.image_directories,
    )
    capacity = capacity_in_use(context.host.cpu_capacity_millicores, domains, deletions.undefined)
    assignment = assign(
        vms,
        context.inventory,
        context.members,
        local=local,
        domains=owned,
        reported_nodes=context.reported_nodes,
        reported_migrations=context.reported_migrations,
        held_back=fleet_held_back(context.broken),
    )
    # Every later step reads the fleet's schedule: an Evict's target comes from it.
    context = replace(context, fleet_schedule=assignment.fleet_schedule)
    # A drained Node's evacuations (and hotplug's placement moves) are operations like
    # those from Git from here on: this pass announces them.
    moves = host_moves(
        context,
        domains,
        [vm for vm, placement in assignment.here if placement.node],
        lambda vm: why_not_migratable(context, vm),
    )
    if moves.created:
        inventory = context.inventory.with_objects(as_loaded(g) for g in moves.created)
        context = replace(context, inventory=inventory)
    findings = _findings_by_object(context.findings)
    # The VMs whose inputs are the last pass's keep its plan (vm/plan_memo.py).
    memo = settled is None and PLANS.begin(context, observation)
    held: dict[ObjectId, str] = {}
    # The VMs this host reports, in the revision's order (their actions run in it), each
    # admitted to the CPU the earlier ones left.
    for done, (vm, placement) in enumerate(assignment.here):
        step("VMs planned", done, len(assignment.here))
        if not placement.node:
            vm_plans.append(
                VMPlan(vm.id, Outcome.BLOCKED, details=[f"not placed: {placement.reason}"])
            )
            statuses[vm.id] = unplaced_status(
                vm, placement.reason, context.topology, local, migratable_condition(context, vm)
            )
            continue
        kept = settled.kept(vm.id, domain_name(vm), observation) if settled else None
        if kept is not None:
            vm_plans.append(kept[0])
            statuses[vm.id] = kept[1]
            continue
        found = findings.get(str(vm.id), ())
        inputs = PLANS.inputs(context, vm, found, observation, capacity, devices) if memo else None
        planned = PLANS.get(inputs) if inputs is not None else None
        if planned is None:
            planned = plan_vm(context, vm, found, observation, capacity, devices)
            if inputs is not None:
                PLANS.put(context, inputs, planned)
        capacity = planned.capacity
        if planned.held:
            held[vm.id] = planned.held
        vm_plans.append(planned.plan)
        statuses[vm.id] = planned.status
    # A VM whose manifest is invalid is reported, never changed.
    for broken_id in sorted(context.broken):
        if broken_id.kind == VirtualMachine.KIND and reports_broken_here(
            broken_id,
            context.members,
            local=local,
            domains=owned,
            reported_nodes=context.reported_nodes,
        ):
            observed = domains.get(domain_name(broken_id))
            found = findings.get(str(broken_id), ())
            statuses[broken_id] = broken_status(broken_id, observed, found, local)
    vm_plans = release_stale_reservations(context, observation.network, vm_plans)
    # After the VMs: their plans say which volumes are made and which domains let go.
    volumes = pass_volumes(
        context,
        observation,
        devices,
        planned=vm_plans,
        reported_vms=list(statuses),
        undefined=deletions.undefined,
        held=held,
    )
    vm_plans.extend(volumes.vms)
    operations = report_operations(context, domains, vm_plans, statuses)
    notes = [*deletions.notes, *volumes.notes, *moves.notes, *strays.notes]
    if assignment.elsewhere:
        notes.append(f"{assignment.elsewhere} VM(s) are placed on other hosts of the fleet")
    if local not in {member.name for member in context.members}:
        notes.append(f"this host ({local}) is not a Node of the repository: it starts no VM")
    return Plan(
        vms=vm_plans,
        statuses=statuses,
        notes=notes,
        held_back=[*deletions.held_back, *volumes.held_back],
        object_reports={**volumes.object_reports, **operations},
        generated_operations=generated_operations(context.inventory),
        retired_operations=moves.retired,
        drain=moves.drain.as_dict() if moves.drain is not None else None,
        strays=list(strays.by_domain.values()),
    )


def fleet_held_back(broken: Iterable[ObjectId]) -> str:
    """Why no VM is placed anew: an invalid Node manifest leaves each host unsure which
    hosts the fleet has (with every Node invalid each would be a fleet of one and start
    every VM itself), so placement waits until it is fixed; "" when all are valid."""
    nodes = sorted(object_id.name for object_id in broken if object_id.kind == "Node")
    if not nodes:
        return ""
    return (
        f"placement is held back: the manifest of Node {', '.join(nodes)} is invalid,"
        " so the hosts may not agree on the fleet"
    )


def _findings_by_object(findings: list[Finding]) -> dict[str, list[Finding]]:
    by_object: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.object:
            by_object.setdefault(finding.object, []).append(finding)
    return by_object


__all__ = [
    "SUSPEND_ANNOTATION",
    "Observation",
    "Outcome",
    "Plan",
    "PlanContext",
    "RunPolicy",
    "Settled",
    "VMPlan",
    "change_table_for",
    "plan",
]
