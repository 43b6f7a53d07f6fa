"""The reports of VirtualMachineOperations: `status.phase` and the `Completed` condition
(reference/dvp-api.md §7.2) of every operation this host reports, from its turn
(operations.py) and what the VM's plan does with it."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from reconciler.api import ObjectId, VirtualMachine
from reconciler.engine.operations.execute import (
    FINAL_PHASES,
    KIND,
    ReportedOperation,
    operation_key,
    operations_by_vm,
)
from reconciler.engine.operations.moves import migrations_for
from reconciler.engine.operations.orders import DONE, Order, Step, Verdict
from reconciler.engine.operations.turn import operation_turn
from reconciler.engine.plan_types import PlanContext, VMPlan
from reconciler.engine.vm.power import power_decision
from reconciler.model.actions import Action, CarryOutOperation, MigrateDomain
from reconciler.model.conditions import OperationCondition, OperationReason
from reconciler.model.domain import ObservedDomain
from reconciler.model.names import domain_name
from reconciler.model.phases import OperationPhase


def acting_verdict(order: Order, issued: bool, anticipate: bool, why: str) -> Verdict:
    """The report of the operation that acts this pass. `issued`: its action is in the
    plan; `anticipate`: the plan is about to run (else it describes the host after it);
    `why`: what keeps the VM from being changed when it is not issued."""
    progress = OperationReason.in_progress(order.type)
    if order.step is None:
        if issued and anticipate:
            return DONE
        return Verdict(
            OperationPhase.IN_PROGRESS, progress, "done; being recorded", signal_sent=True
        )
    what = {
        Step.START: "starting the VM",
        Step.STOP: "powering the VM off" if order.force else "shutting the VM down",
        Step.RESTART: "restarting the VM",
        Step.MIGRATE: f"migrating the VM to {order.target}",
    }[order.step]
    if order.step is Step.MIGRATE and order.waiting:
        # A migration libvirt runs: in progress, and how far it is.
        return Verdict(OperationPhase.IN_PROGRESS, progress, order.waiting, signal_sent=True)
    if order.step is Step.MIGRATE:
        return Verdict(OperationPhase.IN_PROGRESS, progress, what, signal_sent=order.continuing)
    if order.continuing:
        message = f"{what}: finishing what an earlier pass began"
        if not issued:
            message = f"{message}; waits: {order.waiting or why}"
        return Verdict(OperationPhase.IN_PROGRESS, progress, message, signal_sent=True)
    if issued and anticipate:
        return Verdict(OperationPhase.IN_PROGRESS, progress, what)
    if issued:
        return Verdict(
            OperationPhase.PENDING, OperationReason.NOT_READY_TO_BE_EXECUTED, "not carried out yet"
        )
    return Verdict(
        OperationPhase.PENDING, OperationReason.NOT_READY_TO_BE_EXECUTED, order.waiting or why
    )


def report_operations(
    context: PlanContext,
    domains: Mapping[str, ObservedDomain],
    vm_plans: Sequence[VMPlan],
    reported_vms: Collection[ObjectId],
) -> dict[ObjectId, dict[str, Any]]:
    """The `status:` of every operation this host reports: those of the VMs it reports
    (`reported_vms`), and (on the fleet's first node) those whose VM does not exist."""
    inventory, broken, reported = context.inventory, context.broken, context.operation_reports
    anticipate = context.anticipate
    reports: dict[ObjectId, dict[str, Any]] = {}
    # A VM's own plan comes first; later entries of the same VM (a released address) do not
    # carry its power steps.
    plans = {vm_plan.object_id: vm_plan for vm_plan in reversed(vm_plans)}
    first_node = context.first_member
    for vm_id, operations in operations_by_vm(inventory).items():
        pending = [op for op in operations if not _final_report(reported.get(op.id))]
        if not pending:
            continue
        loaded = inventory.get(vm_id)
        if loaded is None and vm_id not in broken:
            if first_node:
                message = (
                    f"VirtualMachine {vm_id.name} does not exist in namespace {vm_id.namespace}"
                )
                for op in pending:
                    reports[op.id] = Verdict(
                        OperationPhase.FAILED, OperationReason.VIRTUAL_MACHINE_NOT_FOUND, message
                    ).status()
            continue
        if vm_id not in reported_vms:
            continue  # another host reports the VM and its operations
        vm_plan = plans.get(vm_id)
        if loaded is None or vm_plan is None or not isinstance(loaded.model, VirtualMachine):
            why = f"the manifest of VirtualMachine {vm_id.name} is invalid"
            for op in pending:
                reports[op.id] = Verdict(
                    OperationPhase.PENDING, OperationReason.NOT_READY_TO_BE_EXECUTED, why
                ).status()
            continue
        vm = loaded.model
        observed = domains.get(domain_name(vm))
        decision = power_decision(vm.spec.run_policy, observed)
        moves = migrations_for(context, vm)
        turn = operation_turn(pending, observed, vm.spec.run_policy, decision, reported, moves)
        reports.update({op_id: v.status() for op_id, v in turn.verdicts.items()})
        if turn.acting is not None:
            key = operation_key(turn.acting.operation)
            issued = any(
                isinstance(a, CarryOutOperation | MigrateDomain) and a.operation == key
                for a in vm_plan.actions
            )
            why = vm_plan.details[-1] if vm_plan.details else "the VM is not changed this pass"
            why = why.removeprefix("not started: ").removeprefix("not applied: ")
            verdict = acting_verdict(turn.acting, issued, anticipate, why)
            reports[turn.acting.operation] = verdict.status()
    return reports


def _final_report(previous: ReportedOperation | None) -> bool:
    return previous is not None and previous.phase in FINAL_PHASES


def explain_operation_failures(
    reports: dict[ObjectId, dict[str, Any]], failures: Iterable[tuple[Action, str]]
) -> None:
    """Put a failed power step into its operation's report: it stays in progress, and the
    next pass tries it again."""
    for action, error in failures:
        if not isinstance(action, CarryOutOperation | MigrateDomain):
            continue
        namespace, _, name = action.operation.partition("/")
        report = reports.get(ObjectId(KIND, namespace, name))
        if report is None or report.get("phase") in FINAL_PHASES:
            continue
        for condition in report.get("conditions", []):
            if condition.get("type") == OperationCondition.COMPLETED:
                condition["message"] = (
                    f"{action.describe()} failed: {error}; the next pass tries again"
                )


def keep_refusals(
    first: Mapping[ObjectId, dict[str, Any]], final: dict[ObjectId, dict[str, Any]]
) -> None:
    """A refusal is decided once, by the pass's first plan, from the VM as it was then;
    the final plan sees the VM after the pass (just started, say) and could no longer
    say why. The reports keep the first plan's verdicts."""
    for object_id, status in first.items():
        if object_id.kind == KIND and status.get("phase") == OperationPhase.FAILED:
            final[object_id] = status
