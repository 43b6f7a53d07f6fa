"""VirtualMachineOperations for planner tests: manifests, and a host that carries out a
plan's power steps as libvirt would, written as plain values.

`carry_out` records an operation exactly as libvirt/apply.py does (through
operations.recorded) and moves the domain as the step moves it, so a pure test can run
pass after pass: plan, carry out, plan again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from reconciler.api import ObjectId
from reconciler.engine.operations.execute import Record, ReportedOperation, recorded
from reconciler.engine.operations.status import keep_refusals
from reconciler.engine.plan import Observation, Plan, PlanContext, plan
from reconciler.model.actions import (
    Action,
    CarryOutOperation,
    DefineDomain,
    EnsureDiskVolume,
    RestartDomain,
    StartDomain,
    StopDomain,
)
from reconciler.model.domain import (
    DefinitionView,
    DomainMetadata,
    ObservedDomain,
    PowerState,
    VolumeFacts,
)
from tests.engine.conftest import context_for, observed_as_defined, revision, vm_yaml

DOMAIN = "linux-vm.default"
LINUX_VM = ObjectId("VirtualMachine", "default", "linux-vm")

VMOP = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineOperation
metadata:
  name: {name}
spec:
  type: {type}
  virtualMachineName: {vm}
{force}"""


def vmop_yaml(name: str, kind: str, vm: str = "linux-vm", force: bool = False) -> str:
    return VMOP.format(name=name, type=kind, vm=vm, force="  force: true\n" if force else "")


def vmop_id(name: str) -> ObjectId:
    return ObjectId("VirtualMachineOperation", "default", name)


def context(*documents: str, run_policy: str = "Manual", **vm: Any) -> PlanContext:
    """A revision of linux-vm (Manual unless told) and the given documents."""
    return context_for(revision(vm_yaml(run_policy=run_policy, **vm), *documents))


def defined(
    ctx: PlanContext,
    state: PowerState = PowerState.RUNNING,
    reason: str = "booted",
    completed: tuple[str, ...] = (),
    stopped_manually: bool = False,
) -> Observation:
    """The host with linux-vm defined from ctx's revision, in the given state."""
    first = plan(ctx, Observation({}, {}))
    spec = next(a.spec for a in first.actions if isinstance(a, DefineDomain))
    volumes = {
        (a.pool, a.volume): VolumeFacts(a.pool, a.volume, a.capacity_bytes or 0, f"/p/{a.volume}")
        for a in first.actions
        if isinstance(a, EnsureDiskVolume)
    }
    meta = replace(spec.metadata, completed_operations=completed, stopped_manually=stopped_manually)
    spec = replace(spec, metadata=meta)
    return Observation({spec.name: observed_as_defined(spec, state, reason)}, volumes)


def carry_out(observed: ObservedDomain, action: Action) -> ObservedDomain:
    """The domain after one action, as libvirt would leave it (graceful stops end with
    libvirt's reason `shutdown`, forced ones with `destroyed`)."""
    if isinstance(action, StartDomain):
        return _started(observed, observed.config.metadata)
    if isinstance(action, StopDomain):
        return _stopped(observed, action.force)
    if isinstance(action, RestartDomain):
        return _started(_stopped(observed, False), observed.config.metadata)
    if not isinstance(action, CarryOutOperation):
        return observed
    meta = observed.config.metadata
    assert meta is not None
    flag = action.stopped_manually
    if not action.step:
        return _with_config(
            observed,
            recorded(meta, action.operation, Record(action.outcome), flag, action.target),
        )
    started = recorded(meta, action.operation, Record.STARTED, flag)
    observed = _with_config(observed, started)
    if action.step in ("stop", "restart"):
        observed = _stopped(observed, action.force)
    if action.step in ("start", "restart") and not observed.state.active:
        observed = _started(observed, started)
    return _with_config(observed, recorded(started, action.operation, Record.COMPLETED, flag))


def _with_config(observed: ObservedDomain, meta: Any) -> ObservedDomain:
    return replace(observed, config=replace(observed.config, metadata=meta))


def _stopped(observed: ObservedDomain, force: bool) -> ObservedDomain:
    if not observed.state.active:
        return observed
    reason = "destroyed" if force else "shutdown"
    return replace(observed, state=PowerState.SHUTOFF, reason=reason, live=None)


def _started(observed: ObservedDomain, meta: Any) -> ObservedDomain:
    if observed.state.active:
        return observed
    live = DefinitionView(observed.config.facts, meta)
    return replace(observed, state=PowerState.RUNNING, reason="booted", live=live)


def apply_plan(observation: Observation, result: Plan) -> Observation:
    domains = dict(observation.domains)
    for action in result.actions:
        if isinstance(action, DefineDomain):
            old = domains.get(action.spec.name)
            state = old.state if old else PowerState.SHUTOFF
            reason = old.reason if old else "unknown"
            fresh = observed_as_defined(action.spec, state, reason)
            domains[action.spec.name] = replace(fresh, live=old.live if old else None)
            continue
        name = getattr(action, "domain", None)
        if name in domains:
            domains[name] = carry_out(domains[name], action)
    return Observation(domains, observation.volumes)


def reports_of(result: Plan, ctx: PlanContext) -> dict[ObjectId, ReportedOperation]:
    """The operation reports as the next pass reads them back (status/reported_operations)."""
    found = dict(ctx.operation_reports)
    for object_id, status in result.object_reports.items():
        if object_id.kind != "VirtualMachineOperation":
            continue
        completed = next(c for c in status["conditions"] if c["type"] == "Completed")
        found[object_id] = ReportedOperation(
            status["phase"], completed["reason"], completed.get("message", "")
        )
    return found


def whole_pass(ctx: PlanContext, observation: Observation) -> tuple[Plan, Plan, Observation]:
    """Plan, carry out, plan again over the host as it is then (reconcile_once's shape);
    returns both plans and the host after. The reports written are fed to ctx's next pass
    by `next_context`."""
    first = plan(ctx, observation)
    after = apply_plan(observation, first)
    final = plan(replace(ctx, anticipate=False), after)
    keep_refusals(first.object_reports, final.object_reports)
    return first, final, after


def next_context(ctx: PlanContext, final: Plan) -> PlanContext:
    return replace(ctx, operation_reports=reports_of(final, ctx))


def operation_actions(result: Plan) -> list[CarryOutOperation]:
    return [a for a in result.actions if isinstance(a, CarryOutOperation)]


def report(result: Plan, name: str) -> dict[str, Any]:
    status = result.object_reports[vmop_id(name)]
    completed = next(c for c in status["conditions"] if c["type"] == "Completed")
    return {"phase": status["phase"], **completed}


def metadata_of(observed: ObservedDomain) -> DomainMetadata:
    """The next-boot definition's metadata, which every domain here has."""
    assert observed.config.metadata is not None
    return observed.config.metadata


def running_vcpus(observed: ObservedDomain) -> int:
    assert observed.live is not None, f"{observed.name} is not running"
    return observed.live.facts.vcpus
