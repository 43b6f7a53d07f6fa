"""The planner as a pure function: revisions and observed hosts in, actions and statuses out."""

from __future__ import annotations

from dataclasses import replace

from reconciler.api import ObjectId
from reconciler.engine.plan import Observation, Outcome, plan
from reconciler.engine.vm.desired import HostContext
from reconciler.loader import LoadResult, load_text
from reconciler.model.actions import (
    DefineDomain,
    EnsureDiskVolume,
    RestartDomain,
    SetLiveMetadata,
    SetVcpusLive,
    StartDomain,
    StopDomain,
    UndefineDomain,
)
from reconciler.model.domain import DomainSpec, PowerState, VolumeFacts
from tests.engine.conftest import (
    HOST,
    context_for,
    empty,
    observed_as_defined,
    revision,
    vm_yaml,
)

LINUX_VM = ObjectId("VirtualMachine", "default", "linux-vm")


def _kinds(actions: list) -> list[str]:  # type: ignore[type-arg]
    return [type(action).__name__ for action in actions]


def _host_after(first_plan_context, state=PowerState.RUNNING) -> Observation:  # type: ignore[no-untyped-def]
    """The host once the first plan of a context was carried out."""
    first = plan(first_plan_context, empty())
    domains, volumes = {}, {}
    for action in first.actions:
        if isinstance(action, DefineDomain):
            domains[action.spec.name] = observed_as_defined(action.spec, state)
        if isinstance(action, EnsureDiskVolume):
            volumes[(action.pool, action.volume)] = VolumeFacts(
                action.pool, action.volume, action.capacity_bytes or 0, f"/p/{action.volume}"
            )
    return Observation(domains, volumes)


def _defined_spec(result_plan) -> DomainSpec:  # type: ignore[no-untyped-def]
    return next(a.spec for a in result_plan.actions if isinstance(a, DefineDomain))


def test_new_vm_gets_its_disk_defined_and_started() -> None:
    context = context_for(revision(vm_yaml()))

    result = plan(context, empty())

    assert _kinds(result.actions) == ["EnsureDiskVolume", "DefineDomain", "StartDomain"]
    assert result.vms[0].outcome is Outcome.CREATED
    assert result.statuses[LINUX_VM].phase == "Starting"
    volume = result.actions[0]
    assert isinstance(volume, EnsureDiskVolume) and volume.capacity_bytes == 10 * 2**30


def test_second_pass_over_the_same_revision_does_nothing() -> None:
    context = context_for(revision(vm_yaml()))
    host = _host_after(context)

    result = plan(context, host)

    assert result.actions == []
    assert not result.has_changes
    status = result.statuses[LINUX_VM]
    assert status.phase == "Running"
    assert status.restart_awaiting_changes == []


def test_cores_change_waits_for_restart_in_manual_mode() -> None:
    host = _host_after(context_for(revision(vm_yaml(cores=1))))
    changed = context_for(revision(vm_yaml(cores=2)))

    result = plan(changed, host)

    assert _kinds(result.actions) == ["DefineDomain"]
    assert _defined_spec(result).vcpus == 2
    status = result.statuses[LINUX_VM]
    assert status.restart_awaiting_changes == [
        {"currentValue": 1, "desiredValue": 2, "operation": "replace", "path": "cpu.cores"}
    ]
    assert status.need_restart
    assert status.get("AwaitingRestartToApplyConfiguration").status is True
    assert status.get("ConfigurationApplied").status is False
    assert status.cores == 1, "status.resources describes the running instance"
    assert result.vms[0].outcome is Outcome.AWAITING_RESTART


def test_pending_restart_persists_once_next_boot_definition_is_updated() -> None:
    first = context_for(revision(vm_yaml(cores=1)))
    host = _host_after(first)
    changed = context_for(revision(vm_yaml(cores=2)))
    new_spec = _defined_spec(plan(changed, host))
    running = host.domains["linux-vm.default"]
    host = Observation(
        {"linux-vm.default": replace(observed_as_defined(new_spec), live=running.live)},
        host.volumes,
    )

    result = plan(changed, host)

    assert result.actions == [], "converged but awaiting restart is not in progress"
    assert result.statuses[LINUX_VM].restart_awaiting_changes[0]["path"] == "cpu.cores"


def test_automatic_approval_restarts_to_apply_changes() -> None:
    host = _host_after(context_for(revision(vm_yaml(cores=1))))
    changed = context_for(revision(vm_yaml(cores=2, approval="Automatic")))

    result = plan(changed, host)

    assert _kinds(result.actions) == ["DefineDomain", "RestartDomain"]
    assert result.vms[0].outcome is Outcome.RESTARTED


def test_run_policy_change_needs_no_restart() -> None:
    host = _host_after(context_for(revision(vm_yaml(run_policy="AlwaysOnUnlessStoppedManually"))))
    changed = context_for(revision(vm_yaml(run_policy="Manual")))

    result = plan(changed, host)

    assert _kinds(result.actions) == ["DefineDomain", "SetLiveMetadata"]
    assert result.statuses[LINUX_VM].restart_awaiting_changes == []


def test_always_off_stops_a_running_vm_and_keeps_a_stopped_one_off() -> None:
    host = _host_after(context_for(revision(vm_yaml())))
    off = context_for(revision(vm_yaml(run_policy="AlwaysOff")))

    running = plan(off, host)
    assert any(isinstance(a, StopDomain) for a in running.actions)

    stopped_host = _host_after(off, PowerState.SHUTOFF)
    stopped = plan(off, stopped_host)
    assert stopped.actions == []
    assert stopped.statuses[LINUX_VM].phase == "Stopped"


def test_new_always_off_vm_is_defined_but_not_started() -> None:
    result = plan(context_for(revision(vm_yaml(run_policy="AlwaysOff"))), empty())

    assert _kinds(result.actions) == ["EnsureDiskVolume", "DefineDomain"]
    assert result.statuses[LINUX_VM].phase == "Pending"


def test_stopped_vm_takes_every_change_at_once() -> None:
    host = _host_after(context_for(revision(vm_yaml(run_policy="Manual"))), PowerState.SHUTOFF)
    changed = context_for(revision(vm_yaml(cores=2, run_policy="Manual")))

    result = plan(changed, host)

    assert _kinds(result.actions) == ["DefineDomain"]
    assert result.statuses[LINUX_VM].restart_awaiting_changes == []


def test_sizing_violation_leaves_the_running_vm_untouched() -> None:
    host = _host_after(context_for(revision(vm_yaml(memory="1Gi"))))
    violating = context_for(revision(vm_yaml(memory="10Gi")))

    result = plan(violating, host)

    assert result.actions == []
    status = result.statuses[LINUX_VM]
    assert status.phase == "Running"
    sizing = status.get("SizingPolicyMatched")
    assert sizing is not None and sizing.status is False
    assert "generic" in sizing.message and "8Gi" in sizing.message
    assert status.get("ConfigurationApplied").status is False


def test_hand_made_destroy_is_undone_under_the_default_policy() -> None:
    context = context_for(revision(vm_yaml()))
    host = _host_after(context, PowerState.SHUTOFF)
    host = Observation(
        {n: replace(d, reason="destroyed") for n, d in host.domains.items()}, host.volumes
    )

    result = plan(context, host)

    assert _kinds(result.actions) == ["StartDomain"]


def test_guest_poweroff_keeps_an_always_on_unless_stopped_manually_vm_stopped() -> None:
    context = context_for(revision(vm_yaml()))
    host = _host_after(context, PowerState.SHUTOFF)
    host = Observation(
        {n: replace(d, reason="shutdown") for n, d in host.domains.items()}, host.volumes
    )

    result = plan(context, host)

    assert result.actions == []
    assert result.statuses[LINUX_VM].phase == "Stopped"


def test_hand_edited_definition_is_put_back() -> None:
    context = context_for(revision(vm_yaml(cores=2)))
    host = _host_after(context, PowerState.SHUTOFF)
    domain = host.domains["linux-vm.default"]
    edited = replace(domain.config, facts=replace(domain.config.facts, vcpus=4))
    host = Observation(
        {"linux-vm.default": replace(domain, config=edited, reason="shutdown")}, host.volumes
    )

    result = plan(context, host)

    assert _kinds(result.actions) == ["DefineDomain"]
    assert "edited" in result.vms[0].details[0]


def test_hand_made_live_vcpu_change_is_put_back() -> None:
    context = context_for(revision(vm_yaml(cores=2)))
    host = _host_after(context)
    domain = host.domains["linux-vm.default"]
    assert domain.live is not None
    live = replace(domain.live, facts=replace(domain.live.facts, vcpus=3))
    host = Observation({"linux-vm.default": replace(domain, live=live)}, host.volumes)

    result = plan(context, host)

    assert result.actions == [SetVcpusLive(LINUX_VM, "linux-vm.default", 2)]


def test_deleted_manifest_undefines_the_domain_but_not_its_disk() -> None:
    host = _host_after(context_for(revision(vm_yaml(), vm_yaml(name="other"))))
    without = context_for(revision(vm_yaml()))

    result = plan(without, host)

    assert _kinds(result.actions) == ["UndefineDomain"]
    action = result.actions[0]
    assert isinstance(action, UndefineDomain) and action.domain == "other.default"


def test_revision_with_an_unreadable_file_deletes_nothing() -> None:
    host = _host_after(context_for(revision(vm_yaml(), vm_yaml(name="other"))))
    broken = revision(vm_yaml())
    broken.extend(load_text("kind: [unclosed\n", "broken.yaml"))

    result = plan(context_for(broken), host)

    assert result.actions == []
    assert result.notes and "nothing is deleted" in result.notes[0]


def test_empty_revision_deletes_nothing() -> None:
    host = _host_after(context_for(revision(vm_yaml())))

    result = plan(context_for(LoadResult()), host)

    assert result.actions == []


def test_invalid_manifest_of_a_running_vm_keeps_it_and_reports_why() -> None:
    host = _host_after(context_for(revision(vm_yaml())))
    broken = revision(vm_yaml().replace("cores: 1", "cores: one"))

    result = plan(context_for(broken), host)

    assert result.actions == []
    status = result.statuses[LINUX_VM]
    assert status.phase == "Running"
    assert "invalid" in status.get("ConfigurationApplied").message


def test_vm_that_does_not_fit_the_host_stays_pending_with_what_is_missing() -> None:
    small = HostContext(node_name="hv1", domain_type="qemu", cpu_capacity_millicores=1000)
    context = context_for(
        revision(
            vm_yaml(name="a", cores=1, fraction="100%"), vm_yaml(name="b", cores=1, fraction="50%")
        ),
        small,
    )

    result = plan(context, empty())

    starts = [a for a in result.actions if isinstance(a, StartDomain)]
    assert [a.domain for a in starts] == ["a.default"]
    status = result.statuses[ObjectId("VirtualMachine", "default", "b")]
    assert status.phase == "Pending"
    running = status.get("Running")
    assert running is not None and "500m missing" in running.message


def test_missing_class_keeps_vm_pending() -> None:
    result_in = LoadResult()
    result_in.extend(load_text(vm_yaml(), "vm.yaml"))

    result = plan(context_for(result_in), empty())

    assert result.actions == []
    status = result.statuses[LINUX_VM]
    assert status.phase == "Pending"
    assert status.get("VirtualMachineClassReady").status is False


def test_resources_report_topology_and_requested_cores() -> None:
    context = context_for(revision(vm_yaml(name="big", cores=6, fraction="50%", memory="6Gi")))
    host = _host_after(context)

    status = plan(context, host).statuses[ObjectId("VirtualMachine", "default", "big")]
    document = status.as_dict("2026-01-01T00:00:00Z")

    assert document["resources"]["cpu"] == {
        "cores": 6,
        "coreFraction": "50%",
        "requestedCores": "3",
        "topology": {"sockets": 1, "coresPerSocket": 6},
    }
    assert document["resources"]["memory"] == {"size": "6Gi"}
    assert document["nodeName"] == HOST.node_name


def test_hotplug_profile_applies_cores_within_the_socket_live() -> None:
    hotplug = replace(HOST, change_profile="hotplug")
    host = _host_after(context_for(revision(vm_yaml(cores=1)), hotplug))

    result = plan(context_for(revision(vm_yaml(cores=2)), hotplug), host)

    assert SetVcpusLive(LINUX_VM, "linux-vm.default", 2) in result.actions
    assert any(isinstance(a, SetLiveMetadata) for a in result.actions)
    assert result.statuses[LINUX_VM].restart_awaiting_changes == []


def test_hotplug_change_waits_while_a_restart_change_is_pending() -> None:
    hotplug = replace(HOST, change_profile="hotplug")
    host = _host_after(context_for(revision(vm_yaml(cores=1)), hotplug))

    result = plan(context_for(revision(vm_yaml(cores=2, memory="2Gi")), hotplug), host)

    assert not any(isinstance(a, SetVcpusLive | RestartDomain) for a in result.actions)
    assert [c["path"] for c in result.statuses[LINUX_VM].restart_awaiting_changes] == [
        "memory.size"
    ]


def test_condition_time_moves_only_when_status_flips() -> None:
    context = context_for(revision(vm_yaml()))
    status = plan(context, _host_after(context)).statuses[LINUX_VM]
    first = status.as_dict("2026-01-01T00:00:00Z")

    again = status.as_dict("2026-01-02T00:00:00Z", previous=first)

    assert again == first
