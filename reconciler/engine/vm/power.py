"""Run policies: whether a VM should be started or stopped now (reference/dvp-api.md §9)."""

from __future__ import annotations

from enum import StrEnum

from reconciler.api import RunPolicy
from reconciler.model.domain import ObservedDomain

# libvirt's shut-off reason when the guest powered itself off.
GUEST_SHUTDOWN = "shutdown"


class PowerDecision(StrEnum):
    START = "start"
    STOP = "stop"
    NOTHING = "nothing"


def power_decision(policy: RunPolicy, observed: ObservedDomain | None) -> PowerDecision:
    """What the run policy asks of the VM's current state.

    A domain that does not exist yet counts as never started: the planner
    defines it first, in the same pass.
    """
    active = observed is not None and observed.state.active
    if policy is RunPolicy.ALWAYS_OFF:
        return PowerDecision.STOP if active else PowerDecision.NOTHING
    if active:
        return PowerDecision.NOTHING
    if policy is RunPolicy.ALWAYS_ON:
        return PowerDecision.START
    if policy is RunPolicy.MANUAL:
        # A Manual VM is started by an operation only (dvp-api.md §9).
        return PowerDecision.NOTHING
    # AlwaysOnUnlessStoppedManually.
    if observed is None:
        return PowerDecision.START
    meta = observed.config.metadata
    if meta is not None and meta.last_run_policy == RunPolicy.ALWAYS_OFF.value:
        # Switching away from AlwaysOff boots the VM.
        return PowerDecision.START
    if meta is not None and meta.stopped_manually:
        return PowerDecision.NOTHING
    if observed.reason == GUEST_SHUTDOWN:
        # The guest powered itself off: it stays Stopped.
        return PowerDecision.NOTHING
    # Never started, crashed, or killed on the host: started again.
    return PowerDecision.START
