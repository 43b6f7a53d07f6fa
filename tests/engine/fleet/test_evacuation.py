"""Maintenance mode and placement moves in the planner (issue 14): a drained Node's host
makes `evacuation-…` Evicts itself, two at a time, and reports the drain's progress; in
the `hotplug` profile a VM whose rules no longer hold here gets a `nodeplacement-update-…`
Evict."""

from __future__ import annotations

from dataclasses import replace

from reconciler.api import ObjectId
from reconciler.engine.operations.execute import ReportedOperation
from reconciler.engine.operations.generated import (
    CAUSE_LABEL,
    ORIGIN_LABEL,
    Cause,
    GeneratedOperation,
    read_generated,
)
from reconciler.engine.plan import Observation, Plan, PlanContext, plan
from reconciler.model.actions import CarryOutOperation, DefineDomain, EnsureDiskVolume
from reconciler.model.domain import PowerState, VolumeFacts
from tests.engine.conftest import context_for, observed_as_defined, revision, vm_yaml
from tests.engine.operations.vmops import apply_plan

NODE = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
  labels:
    group: {group}
spec:
  libvirtUri: qemu+tls://{name}/system
  unschedulable: {unschedulable}
"""
PEERS = ("qemu+tls://hv1/system", "qemu+tls://hv2/system")
VMS = ("vm-a", "vm-b", "vm-c")


def node(name: str, drained: bool = False, group: str = "blue") -> str:
    return NODE.format(name=name, unschedulable=str(drained).lower(), group=group)


def vm_id(name: str) -> ObjectId:
    return ObjectId("VirtualMachine", "default", name)


def fleet(
    *,
    drained: bool,
    hv2_drained: bool = False,
    vms: tuple[str, ...] = VMS,
    profile: str = "default",
    extra: tuple[str, ...] = (),
    hv1_group: str = "blue",
) -> PlanContext:
    """hv1's view of a fleet of hv1 and hv2 where hv1 runs `vms` (AlwaysOn)."""
    documents = [vm_yaml(name=name, run_policy="AlwaysOn") for name in vms]
    ctx = context_for(
        revision(
            *documents,
            *extra,
            node("hv1", drained, hv1_group),
            node("hv2", hv2_drained),
        )
    )
    host = replace(ctx.host, node_name="hv1", migration_peers=PEERS, change_profile=profile)
    return replace(ctx, host=host, reported_nodes={vm_id(name): "hv1" for name in vms})


def running_here(ctx: PlanContext) -> Observation:
    """hv1 with every VM of ctx defined and running, as a host in service defines them."""
    in_service = fleet(drained=False, vms=())
    in_service = replace(in_service, inventory=ctx.inventory, reported_nodes=ctx.reported_nodes)
    first = plan(in_service, Observation({}, {}))
    domains = {}
    for action in first.actions:
        if isinstance(action, DefineDomain):
            domains[action.spec.name] = observed_as_defined(action.spec, PowerState.RUNNING)
    volumes = {
        (a.pool, a.volume): VolumeFacts(a.pool, a.volume, a.capacity_bytes or 0, f"/p/{a.volume}")
        for a in first.actions
        if isinstance(a, EnsureDiskVolume)
    }
    return Observation(domains, volumes)


def made(result: Plan) -> dict[ObjectId, GeneratedOperation]:
    return dict(result.generated_operations)


def announced(result: Plan) -> list[tuple[str, str]]:
    """(operation, target) of every migration the plan announces by its record."""
    return [
        (a.operation, a.target)
        for a in result.actions
        if isinstance(a, CarryOutOperation) and a.target
    ]


def read_back(ctx: PlanContext, result: Plan) -> PlanContext:
    """The next pass's context: the reports this plan wrote, read back as Git holds them."""
    reports = dict(ctx.operation_reports)
    for object_id, status in result.object_reports.items():
        if object_id.kind != "VirtualMachineOperation":
            continue
        completed = next(c for c in status["conditions"] if c["type"] == "Completed")
        reports[object_id] = ReportedOperation(
            status["phase"],
            completed["reason"],
            completed.get("message", ""),
            result.generated_operations.get(object_id),
        )
    for object_id in result.retired_operations:
        reports.pop(object_id, None)
    fresh = fleet(drained=False, vms=())
    rebuilt = replace(fresh, inventory=ctx.inventory, operation_reports=reports)
    return rebuilt


def test_a_drained_node_evacuates_two_vms_at_a_time_to_the_other_host() -> None:
    # given hv1 drained, running three VMs, and hv2 in service
    ctx = fleet(drained=True)
    # when hv1 plans
    result = plan(ctx, running_here(ctx))
    # then it makes two evacuation Evicts, each announced toward hv2, and the third waits
    operations = made(result)
    assert len(operations) == 2
    assert all(op.id.name.startswith("evacuation-") for op in operations.values())
    assert {op.vm_name for op in operations.values()} == {"vm-a", "vm-b"}
    assert sorted(target for _, target in announced(result)) == ["hv2", "hv2"]
    for op in operations.values():
        assert result.object_reports[op.id]["phase"] == "InProgress"
        assert result.statuses[op.vm_id].phase == "Migrating"
    assert result.drain == {
        "phase": "Draining",
        "message": "3 virtual machine(s) still run on this node",
        "running": 3,
        "migrating": ["default/vm-a", "default/vm-b"],
        "waiting": ["default/vm-c"],
    }


def test_the_pass_second_plan_keeps_the_operations_it_announced_and_makes_no_more() -> None:
    # given the first plan of a drained host's pass carried out (the records written)
    ctx = fleet(drained=True)
    host = running_here(ctx)
    first = plan(ctx, host)
    after = apply_plan(host, first)
    # when the same pass plans again, before any report is read back
    final = plan(replace(ctx, anticipate=False), after)
    # then the same two operations are reported, and no new one is made
    assert set(made(final)) == set(made(first))
    assert set(made(first)) <= set(final.object_reports)


def test_the_next_vm_goes_when_one_of_the_first_two_has_left() -> None:
    # given the first two announced, then vm-a gone to hv2 (the domain left hv1)
    ctx = fleet(drained=True)
    host = running_here(ctx)
    first = plan(ctx, host)
    after = apply_plan(host, first)
    domains = {name: d for name, d in after.domains.items() if not name.startswith("vm-a")}
    later = read_back(replace(ctx, reported_nodes=ctx.reported_nodes), first)
    later = replace(
        later,
        host=ctx.host,
        fleet=ctx.fleet,
        reported_nodes={**ctx.reported_nodes, vm_id("vm-a"): "hv2"},
    )
    # when hv1 plans again
    result = plan(later, Observation(domains, after.volumes))
    # then vm-c gets its evacuation; vm-b's is still under way
    vms = {op.vm_name for op in made(result).values() if op.id not in made(first)}
    assert vms == {"vm-c"}
    assert result.drain is not None and result.drain["running"] == 2


def test_a_drained_node_without_running_vms_says_drained() -> None:
    ctx = fleet(drained=True, vms=())
    result = plan(ctx, Observation({}, {}))
    assert result.drain is not None and result.drain["phase"] == "Drained"
    assert made(result) == {}


def test_a_node_in_service_makes_no_operation_and_reports_no_drain() -> None:
    ctx = fleet(drained=False)
    result = plan(ctx, running_here(ctx))
    assert made(result) == {} and result.drain is None


def test_a_vm_no_other_host_can_take_stays_running_and_is_named_in_the_drain() -> None:
    # given both Nodes drained: there is nowhere to go
    ctx = fleet(drained=True, hv2_drained=True, vms=("vm-a",))
    result = plan(ctx, running_here(ctx))
    # then no operation is made, the VM is not stopped, and the Node report says why
    assert made(result) == {}
    assert result.statuses[vm_id("vm-a")].phase == "Running"
    assert result.drain is not None
    assert result.drain["phase"] == "Blocked"
    ((name, why),) = [(e["name"], e["reason"]) for e in result.drain["cannotMigrate"]]
    assert name == "default/vm-a" and "no other host can take it" in why


def test_a_failed_evacuation_is_not_made_again_during_the_same_drain() -> None:
    # given vm-a's evacuation reported Failed by hv1
    ctx = fleet(drained=True, vms=("vm-a",))
    first = plan(ctx, running_here(ctx))
    (operation,) = made(first).values()
    failed = ReportedOperation("Failed", "OperationFailed", "the live migration failed", operation)
    later = replace(
        context_with_reports(ctx, {operation.id: failed}),
        reported_nodes=ctx.reported_nodes,
    )
    # when hv1 plans again, the VM still running here
    result = plan(later, running_here(ctx))
    # then no new operation; the drain names the failure
    assert set(made(result)) == {operation.id}
    assert result.drain is not None and result.drain["phase"] == "Blocked"
    assert "failed" in result.drain["cannotMigrate"][0]["reason"]


def test_uncordon_removes_the_reports_of_the_finished_evacuations_this_host_made() -> None:
    # given a completed evacuation made by hv1 and one made by hv2, hv1 back in service
    mine = GeneratedOperation(
        ObjectId("VirtualMachineOperation", "default", "evacuation-bbbbb"),
        "vm-a",
        "hv1",
        Cause.EVACUATION,
    )
    theirs = replace(mine, id=mine.id._replace(name="evacuation-ccccc"), origin="hv2")
    reports = {
        op.id: ReportedOperation("Completed", "OperationCompleted", "", op) for op in (mine, theirs)
    }
    ctx = context_with_reports(fleet(drained=False, vms=()), reports)
    # when hv1 plans
    result = plan(ctx, Observation({}, {}))
    # then only its own goes
    assert result.retired_operations == frozenset({mine.id})


def test_while_drained_the_finished_evacuations_stay_as_its_history() -> None:
    mine = GeneratedOperation(
        ObjectId("VirtualMachineOperation", "default", "evacuation-bbbbb"),
        "vm-a",
        "hv1",
        Cause.EVACUATION,
    )
    reports = {mine.id: ReportedOperation("Completed", "OperationCompleted", "", mine)}
    ctx = context_with_reports(fleet(drained=True, vms=()), reports)
    assert plan(ctx, Observation({}, {})).retired_operations == frozenset()


def test_the_hotplug_profile_moves_a_vm_whose_node_selector_no_longer_holds() -> None:
    # given vm-a asks for group green and hv1 is blue, hv2 green
    vm = vm_yaml(name="vm-a", run_policy="AlwaysOn").replace(
        "  runPolicy:", "  nodeSelector:\n    group: green\n  runPolicy:", 1
    )
    for profile, moves in (("hotplug", True), ("default", False)):
        ctx = fleet(drained=False, vms=(), extra=(vm,), profile=profile)
        ctx = replace(ctx, reported_nodes={vm_id("vm-a"): "hv1"})
        ctx2 = replace(
            ctx,
            fleet=tuple(
                replace(m, labels={"group": "green"}) if m.name == "hv2" else m for m in ctx.fleet
            ),
        )
        result = plan(ctx2, running_here(ctx2))
        operations = list(made(result).values())
        if moves:
            (operation,) = operations
            assert operation.id.name.startswith("nodeplacement-update-")
            assert announced(result) == [(f"default/{operation.id.name}", "hv2")]
        else:
            assert operations == []


def test_a_forged_operation_report_makes_no_operation() -> None:
    op = ObjectId("VirtualMachineOperation", "default", "evacuation-bbbbb")
    good = {
        "metadata": {"labels": {ORIGIN_LABEL: "hv1", CAUSE_LABEL: "evacuation"}},
        "spec": {"type": "Evict", "virtualMachineName": "vm-a"},
    }
    assert read_generated(good, op) is not None
    stop = {**good, "spec": {"type": "Stop", "virtualMachineName": "vm-a"}}
    extra = {**good, "spec": {**good["spec"], "force": True}}
    odd_origin = {**good, "metadata": {"labels": {ORIGIN_LABEL: "../x", CAUSE_LABEL: "evacuation"}}}
    for forged in (stop, extra, odd_origin, {"spec": "x"}, {}):
        assert read_generated(forged, op) is None
    assert read_generated(good, op._replace(name="restart-vm-a")) is None


def context_with_reports(
    ctx: PlanContext, reports: dict[ObjectId, ReportedOperation]
) -> PlanContext:
    """ctx with these operation reports read back, their operations in the revision as
    plan_context puts them."""
    from reconciler.engine.operations.generated import as_loaded

    made_ops = [r.generated for r in reports.values() if r.generated is not None]
    inventory = ctx.inventory.with_objects(as_loaded(g) for g in made_ops)
    return replace(ctx, inventory=inventory, operation_reports=reports)


def test_a_vm_that_cannot_migrate_is_reported_and_left_running() -> None:
    # given hv1 drained, a KVM host, running a VM whose class gives it the host's own CPU
    ctx = fleet(drained=True, vms=("vm-a",))
    ctx = replace(ctx, host=replace(ctx.host, domain_type="kvm"))
    # when hv1 plans
    result = plan(ctx, running_here(ctx))
    # then it makes no operation, keeps the VM running, and says why in the drain
    assert made(result) == {}
    assert result.statuses[vm_id("vm-a")].phase == "Running"
    assert result.drain is not None and result.drain["phase"] == "Blocked"
    (entry,) = result.drain["cannotMigrate"]
    assert entry["name"] == "default/vm-a"
    assert entry["reason"].startswith("not migratable: VirtualMachineClass generic")
