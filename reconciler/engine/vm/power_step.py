"""A VM's power in this pass: started, stopped or restarted as its run policy, a
VirtualMachineOperation or restartApprovalMode Automatic asks, or left waiting (for an
address, for guaranteed CPU) with the phase and the Running condition that say why.

Values in, a decision out: the VM's plan (plan_vm.py) puts it in its status and actions.
"""

from __future__ import annotations

from typing import NamedTuple

from reconciler.api import RestartApprovalMode, VirtualMachine
from reconciler.engine.operations.moves import migrations_for
from reconciler.engine.operations.orders import Step
from reconciler.engine.operations.turn import operation_step
from reconciler.engine.plan_types import Outcome, PlanContext
from reconciler.engine.vm.capacity import Capacity
from reconciler.engine.vm.power import PowerDecision, power_decision
from reconciler.model.actions import Action, RestartDomain, StartDomain, StopDomain
from reconciler.model.conditions import Condition, VMCondition, VMReason, mark_false
from reconciler.model.domain import ObservedDomain
from reconciler.model.phases import VMPhase


class PowerInputs(NamedTuple):
    """What the step reads of one VM besides the pass's context."""

    vm: VirtualMachine
    domain: str
    observed: ObservedDomain | None
    requested_millicores: int
    # Changes that wait for a restart (running.py).
    restart_pending: bool
    # Why the VM has to wait for its address before it may start; None: it need not.
    address_wait: str | None


class PowerStep(NamedTuple):
    actions: tuple[Action, ...]
    outcome: Outcome
    capacity: Capacity
    phase: VMPhase | None = None
    condition: Condition | None = None
    detail: str = ""


def plan_power(
    context: PlanContext, inputs: PowerInputs, capacity: Capacity, outcome: Outcome
) -> PowerStep:
    """The power step, given the VM's `outcome` so far and the host's `capacity` (the
    step returns it with the VM's share in use when it starts the VM)."""
    vm, name, observed = inputs.vm, inputs.domain, inputs.observed
    grace = vm.spec.termination_grace_period_seconds
    active = observed is not None and observed.state.active
    decision = power_decision(vm.spec.run_policy, observed)
    # A VirtualMachineOperation's power step replaces the run policy's in this pass.
    records, order = operation_step(
        context.inventory,
        context.operation_reports,
        vm,
        name,
        observed,
        decision,
        migrations_for(context, vm),
    )
    anticipated = VMPhase.STOPPING if context.anticipate else None
    if order is not None and order.step is Step.MIGRATE:
        # Migrating from the announcement on, until the domain is gone from here.
        migrate = order.action(vm.id, name, grace)
        return PowerStep((*records, migrate), Outcome.MIGRATING, capacity, VMPhase.MIGRATING)
    if order is not None and order.step is not Step.START:
        actions = (*records, order.action(vm.id, name, grace))
        if not active:
            return PowerStep(actions, outcome, capacity)
        done = Outcome.RESTARTED if order.step is Step.RESTART else Outcome.STOPPED
        return PowerStep(actions, done, capacity, anticipated)
    if order is not None:
        decision = PowerDecision.START
    if decision is PowerDecision.START:
        if inputs.address_wait is not None:
            why = inputs.address_wait
            reason = VMReason.VIRTUAL_MACHINE_IP_ADDRESS_NOT_READY
            waiting = mark_false(VMCondition.RUNNING, reason, why)
            return PowerStep(
                tuple(records), outcome, capacity, VMPhase.PENDING, waiting, f"not started: {why}"
            )
        admitted = capacity.admit(inputs.requested_millicores)
        if isinstance(admitted, str):
            reason = VMReason.INSUFFICIENT_RESOURCES
            waiting = mark_false(VMCondition.RUNNING, reason, admitted)
            return PowerStep(
                tuple(records),
                outcome,
                capacity,
                VMPhase.PENDING,
                waiting,
                f"not started: {admitted}",
            )
        start = order.action(vm.id, name, grace) if order is not None else StartDomain(vm.id, name)
        starting = VMPhase.STARTING if context.anticipate else None
        return PowerStep((*records, start), outcome.upgraded(Outcome.STARTED), admitted, starting)
    if decision is PowerDecision.STOP:
        stop = StopDomain(vm.id, name, grace)
        return PowerStep((*records, stop), Outcome.STOPPED, capacity, anticipated)
    if (
        inputs.restart_pending
        and vm.spec.restart_approval_mode is RestartApprovalMode.AUTOMATIC
        and active
    ):
        restart = RestartDomain(vm.id, name, grace)
        return PowerStep(
            (*records, restart),
            Outcome.RESTARTED,
            capacity,
            detail="restartApprovalMode Automatic: restarting to apply the changes",
        )
    return PowerStep(tuple(records), outcome, capacity)
