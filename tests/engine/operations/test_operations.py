"""VirtualMachineOperations in the planner: which step each asks for, once, and its report."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.engine.operations.execute import ReportedOperation, order_key
from reconciler.engine.operations.status import explain_operation_failures
from reconciler.engine.plan import Observation, Outcome, plan
from reconciler.model.actions import (
    CarryOutOperation,
    DefineDomain,
    MigrateDomain,
    SetLiveMetadata,
    StartDomain,
)
from reconciler.model.domain import PowerState
from tests.engine.conftest import context_for, revision, vm_yaml
from tests.engine.operations.vmops import (
    DOMAIN,
    LINUX_VM,
    context,
    defined,
    metadata_of,
    next_context,
    operation_actions,
    report,
    running_vcpus,
    vmop_id,
    vmop_yaml,
    whole_pass,
)

RESTART = vmop_yaml("restart-linux-vm-1718000000", "Restart")
STOP = vmop_yaml("stop-linux-vm-1718000000", "Stop")
START = vmop_yaml("start-linux-vm-1718000100", "Start")

NODE = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
spec:
  capacity:
    cpu: 64
    memory: 256Gi
"""


def _steps(result) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(a.step or a.outcome, a.operation) for a in operation_actions(result)]


# ---------------------------------------------------------------- carrying one out


def test_restart_restarts_the_running_vm_once_and_reports_completed() -> None:
    ctx = context(RESTART)
    host = defined(ctx)

    first, final, after = whole_pass(ctx, host)

    assert _steps(first) == [("restart", "default/restart-linux-vm-1718000000")]
    assert first.vms[0].outcome is Outcome.RESTARTED
    assert report(first, "restart-linux-vm-1718000000")["reason"] == "RestartInProgress"
    assert final.actions == []
    assert report(final, "restart-linux-vm-1718000000") == {
        "phase": "Completed",
        "type": "Completed",
        "status": "True",
        "reason": "OperationCompleted",
    }
    assert after.domains[DOMAIN].state is PowerState.RUNNING


def test_the_report_says_the_signal_was_sent_once_the_operation_completed() -> None:
    ctx = context(RESTART)
    _first, final, _after = whole_pass(ctx, defined(ctx))

    conditions = final.object_reports[vmop_id("restart-linux-vm-1718000000")]["conditions"]

    assert {"type": "SignalSent", "status": "True", "reason": "SignalSentSuccess"} in conditions


def test_a_completed_operation_is_not_run_again_on_later_passes() -> None:
    ctx = context(RESTART)
    _first, final, after = whole_pass(ctx, defined(ctx))

    again = plan(next_context(ctx, final), after)

    assert again.actions == []
    assert vmop_id("restart-linux-vm-1718000000") not in again.object_reports, "report stands"


def test_the_domain_record_alone_keeps_an_operation_from_running_again() -> None:
    """The status tree was lost: the domain's metadata remembers."""
    ctx = context(RESTART)
    _first, _final, after = whole_pass(ctx, defined(ctx))

    again = plan(ctx, after)  # ctx has no reports at all

    assert again.actions == []
    assert report(again, "restart-linux-vm-1718000000")["phase"] == "Completed"


def test_the_report_alone_keeps_an_operation_from_running_again() -> None:
    """A domain without any record (defined anew): the final report remembers."""
    ctx = context(RESTART)
    done = {vmop_id("restart-linux-vm-1718000000"): ReportedOperation("Completed")}

    again = plan(replace(ctx, operation_reports=done), defined(ctx))

    assert again.actions == []


def test_a_failed_report_is_as_final_as_a_completed_one() -> None:
    ctx = context(RESTART)
    failed = {vmop_id("restart-linux-vm-1718000000"): ReportedOperation("Failed")}

    assert plan(replace(ctx, operation_reports=failed), defined(ctx)).actions == []


def test_restart_applies_the_changes_awaiting_it() -> None:
    running = defined(context(cores=1))
    ctx = context(RESTART, cores=2)

    first, final, after = whole_pass(ctx, running)

    kinds = [type(a).__name__ for a in first.actions]
    assert kinds == ["DefineDomain", "CarryOutOperation"], "next boot defined, then restart"
    assert running_vcpus(after.domains[DOMAIN]) == 2
    assert final.statuses[LINUX_VM].restart_awaiting_changes == []


def test_stop_and_restart_with_force_power_off_at_once() -> None:
    stop = vmop_yaml("stop-linux-vm-1718000000", "Stop", force=True)
    restart = vmop_yaml("restart-linux-vm-1718000000", "Restart", force=True)
    ctx_stop, ctx_restart = context(stop), context(restart)

    (stopping,) = operation_actions(plan(ctx_stop, defined(ctx_stop)))
    (restarting,) = operation_actions(plan(ctx_restart, defined(ctx_restart)))

    assert stopping.force and stopping.step == "stop"
    assert restarting.force and restarting.step == "restart"
    assert "force off" in stopping.describe()


def test_graceful_stop_gives_the_guest_its_termination_grace_period() -> None:
    ctx = context(STOP)

    (stopping,) = operation_actions(plan(ctx, defined(ctx)))

    assert not stopping.force
    assert stopping.grace_seconds == 60
    assert stopping.describe() == (
        "shut down (grace 60s) linux-vm.default (vmop default/stop-linux-vm-1718000000)"
    )


# ---------------------------------------------------------------- applicability (§7.3)


@pytest.mark.parametrize(
    ("run_policy", "kind", "state", "reason", "words"),
    [
        (
            "AlwaysOff",
            "Start",
            PowerState.SHUTOFF,
            "NotApplicableForVirtualMachineRunPolicy",
            "runPolicy AlwaysOff",
        ),
        (
            "AlwaysOn",
            "Stop",
            PowerState.RUNNING,
            "NotApplicableForVirtualMachineRunPolicy",
            "runPolicy AlwaysOn",
        ),
        (
            "AlwaysOff",
            "Restart",
            PowerState.SHUTOFF,
            "NotApplicableForVirtualMachineRunPolicy",
            "runPolicy AlwaysOff",
        ),
        ("Manual", "Stop", PowerState.SHUTOFF, "NotApplicableForVirtualMachinePhase", "Stopped"),
        ("Manual", "Start", PowerState.RUNNING, "NotApplicableForVirtualMachinePhase", "Running"),
        ("Manual", "Restart", PowerState.SHUTOFF, "NotApplicableForVirtualMachinePhase", "Stopped"),
    ],
)
def test_an_operation_that_does_not_apply_fails_and_leaves_the_vm_alone(
    run_policy: str, kind: str, state: PowerState, reason: str, words: str
) -> None:
    name = f"{kind.lower()}-linux-vm-1718000000"
    ctx = context(vmop_yaml(name, kind), run_policy=run_policy)
    host = defined(ctx, state, "shutdown" if not state.active else "booted")

    first, final, _after = whole_pass(ctx, host)

    assert _steps(first) == [("failed", f"default/{name}")], "only the verdict is recorded"
    verdict = report(final, name)
    assert (verdict["phase"], verdict["status"], verdict["reason"]) == ("Failed", "False", reason)
    assert words in verdict["message"] and kind in verdict["message"]


def test_stop_while_the_vm_is_stopping_needs_force() -> None:
    ctx = context(STOP)
    stopping = defined(ctx, PowerState.SHUTDOWN, "user")

    verdict = report(plan(ctx, stopping), "stop-linux-vm-1718000000")

    assert verdict["reason"] == "NotApplicableForVirtualMachinePhase"
    assert verdict["message"].endswith("in phase Stopping without force")
    forced = context(vmop_yaml("stop-linux-vm-1718000000", "Stop", force=True))
    assert _steps(plan(forced, stopping)) == [("stop", "default/stop-linux-vm-1718000000")]


def test_start_while_the_guest_is_still_shutting_down_waits_for_it() -> None:
    ctx = context(START)
    stopping = defined(ctx, PowerState.SHUTDOWN, "user")

    result = plan(ctx, stopping)

    assert result.actions == []
    verdict = report(result, "start-linux-vm-1718000100")
    assert (verdict["phase"], verdict["reason"]) == ("Pending", "NotReadyToBeExecuted")
    assert "still stopping" in verdict["message"]


def test_an_operation_on_a_vm_that_does_not_exist_fails() -> None:
    ctx = context(vmop_yaml("start-db-1718000000", "Start", vm="db"))

    verdict = report(plan(ctx, defined(ctx)), "start-db-1718000000")

    assert (verdict["phase"], verdict["reason"]) == ("Failed", "VirtualMachineNotFound")
    assert "VirtualMachine db does not exist" in verdict["message"]


def test_start_with_the_vm_in_the_same_revision_defines_then_starts_it() -> None:
    ctx = context(START)

    first = plan(ctx, Observation({}, {}))

    kinds = [type(a).__name__ for a in first.actions]
    assert kinds[-2:] == ["DefineDomain", "CarryOutOperation"]
    assert _steps(first) == [("start", "default/start-linux-vm-1718000100")]


# ---------------------------------------------------------------- run policy bookkeeping


def test_stop_keeps_an_always_on_unless_stopped_manually_vm_off_until_a_start() -> None:
    policy = "AlwaysOnUnlessStoppedManually"
    ctx = context(STOP, run_policy=policy)
    _first, final, host = whole_pass(ctx, defined(ctx))
    ctx = next_context(ctx, final)
    assert host.domains[DOMAIN].state is PowerState.SHUTOFF
    assert metadata_of(host.domains[DOMAIN]).stopped_manually

    for reason in ("shutdown", "destroyed", "crashed"):
        found = Observation({DOMAIN: replace(host.domains[DOMAIN], reason=reason)}, host.volumes)
        later = plan(ctx, found)
        assert later.actions == [], f"shut off ({reason}) after a Stop stays off"
        assert later.statuses[LINUX_VM].phase == "Stopped"

    ctx = next_context(context(STOP, START, run_policy=policy), final)
    first, final, host = whole_pass(ctx, host)
    assert _steps(first) == [("start", "default/start-linux-vm-1718000100")]
    assert host.domains[DOMAIN].state is PowerState.RUNNING
    assert not metadata_of(host.domains[DOMAIN]).stopped_manually
    crashed = replace(host.domains[DOMAIN], state=PowerState.SHUTOFF, reason="crashed", live=None)
    after_crash = plan(next_context(ctx, final), Observation({DOMAIN: crashed}, host.volumes))
    assert [type(a) for a in after_crash.actions] == [StartDomain], "the policy is back"


def test_a_vm_killed_on_the_host_and_stopped_by_an_operation_is_not_started() -> None:
    ctx = context(STOP, run_policy="AlwaysOnUnlessStoppedManually")
    killed = defined(ctx, PowerState.SHUTOFF, "destroyed")

    first = plan(ctx, killed)

    assert not any(isinstance(a, StartDomain) for a in first.actions)
    assert _steps(first) == [("stop", "default/stop-linux-vm-1718000000")]
    assert operation_actions(first)[0].stopped_manually is True


# ---------------------------------------------------------------- order, one at a time


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("stop-vm-1718000000", "start-vm-1718000001"),
        ("start-vm-1718000000", "stop-vm-1718000000-2"),
        ("stop-vm-1718000000-2", "stop-vm-1718000000-10"),
        ("zzz-1718000000", "aaa-1718000001"),
        ("start-vm-9999999999", "restart-vm"),
        ("a-vm", "b-vm"),
    ],
)
def test_operations_run_in_the_order_of_the_unix_time_in_their_names(
    earlier: str, later: str
) -> None:
    assert order_key(earlier) < order_key(later)


def test_operations_of_a_vm_run_one_at_a_time_oldest_first() -> None:
    ctx = context(START, STOP)  # START's name has the later time

    first, final, host = whole_pass(ctx, defined(ctx))

    assert _steps(first) == [("stop", "default/stop-linux-vm-1718000000")]
    waiting = report(first, "start-linux-vm-1718000100")
    assert (waiting["phase"], waiting["reason"]) == ("Pending", "NotReadyToBeExecuted")
    assert "stop-linux-vm-1718000000" in waiting["message"]
    assert report(final, "stop-linux-vm-1718000000")["phase"] == "Completed"
    assert report(final, "start-linux-vm-1718000100")["phase"] == "Pending"

    second, final, host = whole_pass(next_context(ctx, final), host)
    assert _steps(second) == [("start", "default/start-linux-vm-1718000100")]
    assert report(final, "start-linux-vm-1718000100")["phase"] == "Completed"
    assert host.domains[DOMAIN].state is PowerState.RUNNING


def test_a_refused_operation_does_not_hold_up_the_next() -> None:
    early_start = vmop_yaml("start-linux-vm-1717000000", "Start")  # the VM already runs
    ctx = context(early_start, STOP)

    first = plan(ctx, defined(ctx))

    assert _steps(first) == [
        ("failed", "default/start-linux-vm-1717000000"),
        ("stop", "default/stop-linux-vm-1718000000"),
    ]


# ---------------------------------------------------------------- a daemon killed mid-way


def _started(ctx, state: PowerState, reason: str, live_knows: bool):  # type: ignore[no-untyped-def]
    """The host as a daemon killed right after recording the restart as started left it:
    `live_knows` when the running instance was started after that record."""
    key = "default/restart-linux-vm-1718000000:started"
    host = defined(ctx, state, reason, completed=(key,))
    observed = host.domains[DOMAIN]
    if live_knows and observed.live is not None:
        live = replace(observed.live, metadata=metadata_of(observed))
        observed = replace(observed, live=live)
    elif observed.live is not None:
        older = replace(metadata_of(observed), completed_operations=())
        observed = replace(observed, live=replace(observed.live, metadata=older))
    return Observation({DOMAIN: observed}, host.volumes)


def test_a_restart_recorded_but_not_begun_is_carried_out() -> None:
    ctx = context(RESTART)

    result = plan(ctx, _started(ctx, PowerState.RUNNING, "booted", live_knows=False))

    assert _steps(result) == [("restart", "default/restart-linux-vm-1718000000")]
    verdict = report(result, "restart-linux-vm-1718000000")
    assert verdict["phase"] == "InProgress" and "earlier pass" in verdict["message"]


def test_a_restart_whose_new_instance_runs_is_only_recorded() -> None:
    ctx = context(RESTART)

    result = plan(ctx, _started(ctx, PowerState.RUNNING, "booted", live_knows=True))

    assert _steps(result) == [("completed", "default/restart-linux-vm-1718000000")]
    assert report(result, "restart-linux-vm-1718000000")["phase"] == "Completed"


def test_a_restart_cut_between_its_stop_and_its_start_is_started() -> None:
    ctx = context(RESTART, run_policy="AlwaysOnUnlessStoppedManually")

    result = plan(ctx, _started(ctx, PowerState.SHUTOFF, "shutdown", live_knows=False))

    assert _steps(result) == [("start", "default/restart-linux-vm-1718000000")]
    assert not any(isinstance(a, StartDomain) for a in result.actions), "one start, not two"


@pytest.mark.parametrize(
    ("kind", "state", "step"),
    [
        ("Start", PowerState.RUNNING, "completed"),
        ("Start", PowerState.SHUTOFF, "start"),
        ("Stop", PowerState.SHUTOFF, "completed"),
        ("Stop", PowerState.RUNNING, "stop"),
    ],
)
def test_an_operation_recorded_as_started_is_finished_from_what_the_domain_shows(
    kind: str, state: PowerState, step: str
) -> None:
    name = f"{kind.lower()}-linux-vm-1718000000"
    ctx = context(vmop_yaml(name, kind))
    host = defined(ctx, state, "booted", completed=(f"default/{name}:started",))
    observed = host.domains[DOMAIN]
    if observed.live is not None:  # an instance older than the record
        older = replace(metadata_of(observed), completed_operations=())
        observed = replace(observed, live=replace(observed.live, metadata=older))

    result = plan(ctx, Observation({DOMAIN: observed}, host.volumes))

    assert _steps(result) == [(step, f"default/{name}")]


def test_a_failed_step_stays_in_progress_with_libvirt_s_message() -> None:
    ctx = context(RESTART)
    first = plan(ctx, defined(ctx))
    (action,) = operation_actions(first)
    reports = dict(plan(replace(ctx, anticipate=False), defined(ctx)).object_reports)

    explain_operation_failures(reports, [(action, "internal error: qemu unexpectedly closed")])

    status = reports[vmop_id("restart-linux-vm-1718000000")]
    completed = next(c for c in status["conditions"] if c["type"] == "Completed")
    assert "qemu unexpectedly closed" in completed["message"]
    assert "next pass tries again" in completed["message"]


def test_a_change_made_live_keeps_the_instance_s_list_of_operations() -> None:
    """The list tells a restart that happened from one that did not (see above)."""
    done = ("default/restart-linux-vm-1718000000",)
    host = defined(context(run_policy="Manual"), completed=done)
    changed = context(RESTART, run_policy="AlwaysOnUnlessStoppedManually")

    result = plan(changed, host)

    (live,) = (a for a in result.actions if isinstance(a, SetLiveMetadata))
    assert live.metadata.completed_operations == done
    assert live.metadata.spec["runPolicy"] == "AlwaysOnUnlessStoppedManually"


# ---------------------------------------------------------------- waiting


def test_a_start_the_host_has_no_room_for_waits_pending_and_says_why() -> None:
    ctx = context(START, cores=4, fraction="100%")
    ctx = replace(ctx, host=replace(ctx.host, cpu_capacity_millicores=2000))

    result = plan(ctx, defined(ctx, PowerState.SHUTOFF, "shutdown"))

    assert operation_actions(result) == []
    verdict = report(result, "start-linux-vm-1718000100")
    assert (verdict["phase"], verdict["reason"]) == ("Pending", "NotReadyToBeExecuted")
    assert "guaranteed CPU" in verdict["message"]


def test_a_suspended_vm_runs_no_operation() -> None:
    vm = vm_yaml(run_policy="Manual").replace(
        "  name: linux-vm\nspec:",
        "  name: linux-vm\n  annotations:\n    reconciler.vm-gitops.io/suspend: 'true'\nspec:",
    )
    ctx = context_for(revision(vm, RESTART))

    result = plan(ctx, defined(context(RESTART)))

    assert result.actions == []
    verdict = report(result, "restart-linux-vm-1718000000")
    assert verdict["phase"] == "Pending" and "suspend" in verdict["message"]


# ---------------------------------------------------------------- Evict and Migrate


def test_evict_on_a_fleet_of_one_fails_saying_there_is_nowhere_to_go() -> None:
    ctx = context(vmop_yaml("evict-linux-vm-1718000000", "Evict"))

    _first, final, after = whole_pass(ctx, defined(ctx))

    verdict = report(final, "evict-linux-vm-1718000000")
    assert (verdict["phase"], verdict["reason"]) == ("Failed", "TargetUnschedulable")
    assert "nowhere to move" in verdict["message"]
    assert after.domains[DOMAIN].state is PowerState.RUNNING


NODE_WITH_URI = NODE + "  libvirtUri: qemu+tls://{name}/system\n"


@pytest.mark.parametrize("kind", ["Evict", "Migrate"])
def test_evict_with_another_node_migrates_live_to_the_node_the_schedule_picks(kind: str) -> None:
    # given linux-vm running here on hv1, and hv2 reachable at its libvirtUri
    nodes = [NODE_WITH_URI.format(name="hv1"), NODE_WITH_URI.format(name="hv2")]
    ctx = context(vmop_yaml("move-linux-vm-1718000000", kind), *nodes)
    peers = ("qemu+tls://hv1/system", "qemu+tls://hv2/system")
    ctx = replace(
        ctx, reported_nodes={LINUX_VM: "hv1"}, host=replace(ctx.host, migration_peers=peers)
    )
    # when planned, the migration is announced: recorded toward hv2, reported Migrating
    first = plan(ctx, defined(ctx))
    assert [(a.operation, a.step, a.outcome, a.target) for a in operation_actions(first)] == [
        ("default/move-linux-vm-1718000000", "", "started", "hv2")
    ]
    assert not [a for a in first.actions if isinstance(a, MigrateDomain)]
    assert first.statuses[LINUX_VM].phase == "Migrating"
    assert report(first, "move-linux-vm-1718000000")["phase"] == "InProgress"
    # and the pass after begins one live migration to hv2 at its URI, no auto-converge
    announced = defined(ctx, completed=("default/move-linux-vm-1718000000:started>hv2",))
    second = plan(ctx, announced)
    (migrate,) = [a for a in second.actions if isinstance(a, MigrateDomain)]
    assert (migrate.target_node, migrate.target_uri) == ("hv2", "qemu+tls://hv2/system")
    assert migrate.operation == "default/move-linux-vm-1718000000"
    assert not migrate.auto_converge
    assert second.statuses[LINUX_VM].phase == "Migrating"


def test_evict_to_a_node_that_states_no_libvirt_uri_fails_saying_so() -> None:
    nodes = [NODE.format(name="hv1"), NODE.format(name="hv2")]
    ctx = context(vmop_yaml("evict-linux-vm-1718000000", "Evict"), *nodes)
    ctx = replace(ctx, reported_nodes={LINUX_VM: "hv1"})  # it runs here, on hv1

    result = plan(ctx, defined(ctx))

    verdict = report(result, "evict-linux-vm-1718000000")
    assert (verdict["phase"], verdict["reason"]) == ("Failed", "OperationFailed")
    assert "hv2" in verdict["message"] and "libvirtUri" in verdict["message"]
    assert [a.step for a in operation_actions(result)] == [""]


def test_evict_of_a_stopped_vm_fails_for_its_phase() -> None:
    ctx = context(vmop_yaml("evict-linux-vm-1718000000", "Evict"))

    result = plan(ctx, defined(ctx, PowerState.SHUTOFF, "shutdown"))

    assert report(result, "evict-linux-vm-1718000000")["reason"] == (
        "NotApplicableForVirtualMachinePhase"
    )


def test_operations_of_a_vm_placed_on_another_host_are_left_to_that_host() -> None:
    nodes = [NODE.format(name="hv1"), NODE.format(name="hv2")]
    ctx = context(RESTART, *nodes)
    ctx = replace(ctx, reported_nodes={LINUX_VM: "hv2"})

    result = plan(ctx, Observation({}, {}))

    assert result.object_reports.get(vmop_id("restart-linux-vm-1718000000")) is None
    assert not any(isinstance(a, DefineDomain | CarryOutOperation) for a in result.actions)


def test_queued_operations_run_one_per_pass_in_order_then_nothing_is_left() -> None:
    ctx = context(START, STOP, RESTART)  # restart and stop share a second: name order
    host = defined(ctx)
    steps = []
    for _ in range(3):
        first, final, host = whole_pass(ctx, host)
        steps += _steps(first)
        ctx = next_context(ctx, final)

    assert steps == [
        ("restart", "default/restart-linux-vm-1718000000"),
        ("stop", "default/stop-linux-vm-1718000000"),
        ("start", "default/start-linux-vm-1718000100"),
    ]
    assert {r.phase for r in ctx.operation_reports.values()} == {"Completed"}
    assert plan(ctx, host).actions == []
