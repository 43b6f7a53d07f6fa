"""What changes on a running VM: the changes between the spec its instance runs with
and the spec it should have, applied live or waiting for a restart, as the
change-application table (changes.py) says."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

from reconciler.api import ObjectId
from reconciler.engine.vm.changes import ChangeTable, compare_specs
from reconciler.engine.vm.desired import DesiredDomain
from reconciler.model.actions import Action, SetLiveMetadata, SetSharesLive, SetVcpusLive
from reconciler.model.conditions import Condition, VMCondition, VMReason, mark_false, mark_true
from reconciler.model.domain import ObservedDomain
from reconciler.policies import ChangeAction


class RunningChanges(NamedTuple):
    """Either the changes that wait for a restart (`restart_awaiting`, with the
    conditions that say so) or the live actions that apply the others."""

    restart_awaiting: tuple[dict[str, Any], ...] = ()
    conditions: tuple[Condition, ...] = ()
    actions: tuple[Action, ...] = ()
    details: tuple[str, ...] = ()

    @property
    def restart_pending(self) -> bool:
        return bool(self.restart_awaiting)


_NONE = RunningChanges()


def running_changes(
    vm_id: ObjectId, desired: DesiredDomain, observed: ObservedDomain, table: ChangeTable
) -> RunningChanges:
    """The changes to the running instance of `observed` (an active domain)."""
    live_meta = observed.live.metadata if observed.live else None
    baseline = live_meta.spec if live_meta else {}
    changes = compare_specs(baseline, desired.spec_json, table)
    restart = [c for c in changes if c.action is ChangeAction.RESTART]
    name, spec = desired.spec.name, desired.spec
    if restart:
        message = "Waiting for the user to restart the VM to apply: " + ", ".join(
            c.path for c in restart
        )
        return RunningChanges(
            restart_awaiting=tuple(c.as_status() for c in restart),
            conditions=(
                mark_true(
                    VMCondition.AWAITING_RESTART_TO_APPLY_CONFIGURATION,
                    VMReason.CHANGES_PENDING_RESTART,
                    message,
                ),
                mark_false(
                    VMCondition.CONFIGURATION_APPLIED, VMReason.CONFIGURATION_NOT_APPLIED, message
                ),
            ),
        )
    if changes:
        actions: list[Action] = []
        if any(c.path.startswith("cpu") for c in changes):
            actions.append(SetVcpusLive(vm_id, name, spec.vcpus))
            actions.append(SetSharesLive(vm_id, name, spec.shares))
        # The operations the instance was started after stay listed (operations/).
        ran = live_meta.completed_operations if live_meta else ()
        live_meta_now = replace(spec.metadata, completed_operations=ran)
        actions.append(SetLiveMetadata(vm_id, name, live_meta_now))
        return RunningChanges(
            actions=tuple(actions),
            details=tuple(f"{c.path}: {c.current} -> {c.desired}" for c in changes),
        )
    if observed.live is not None and observed.live.facts.vcpus != spec.vcpus:
        # Hand-made `virsh setvcpus --live`: put the running instance back.
        return RunningChanges(
            actions=(SetVcpusLive(vm_id, name, spec.vcpus),),
            details=(f"running vCPUs {observed.live.facts.vcpus} differ from the spec; put back",),
        )
    return _NONE
