"""Whole reconcile passes against libvirt's test driver: what an operator sees change."""

from __future__ import annotations

from dataclasses import replace

import libvirt

from reconciler.engine.plan import Outcome, Plan, plan
from reconciler.engine.reconcile import PassResult, observe, with_image_sources
from reconciler.libvirt.facts import parse_definition
from tests.hosts import Host, NamespaceObserver, vm_yaml


def running_vcpus(host: Host, name: str = "linux-vm.default") -> int:
    return parse_definition(host.domain(name).XMLDesc(0)).facts.vcpus


def next_boot_vcpus(host: Host, name: str = "linux-vm.default") -> int:
    xml = host.domain(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    return parse_definition(xml).facts.vcpus


def status_of(result, name: str = "linux-vm"):  # type: ignore[no-untyped-def]
    for object_id, status in result.statuses_plan.statuses.items():
        if object_id.name == name:
            return status
    raise AssertionError(f"no status for {name}")


def conditions(status) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {c.type: c.status for c in status.conditions}


def test_first_pass_creates_disk_defines_and_starts(host: Host) -> None:
    host.write("vm.yaml", vm_yaml())
    result, mutations = host.reconcile()
    assert not result.errors
    domain = host.domain()
    assert domain.isActive()
    assert domain.isPersistent()
    volume = host.connection.storagePoolLookupByName("default-pool").storageVolLookupByName(
        "vd-default-linux-vm-root.qcow2"
    )
    assert volume.info()[1] == 1024**3
    assert mutations == 3  # volume, define, start
    assert status_of(result).phase == "Running"


def test_second_pass_changes_nothing_and_rewrites_no_status(host: Host) -> None:
    host.write("vm.yaml", vm_yaml())
    first, _ = host.reconcile()
    assert host.write_statuses(first)
    second, mutations = host.reconcile()
    assert mutations == 0
    assert not second.plan.has_changes
    assert host.write_statuses(second) == []


def test_domains_we_do_not_own_are_left_alone(host: Host) -> None:
    host.write("vm.yaml", vm_yaml())
    host.reconcile()
    other = host.domain("test")
    assert other.isActive()
    host.remove("vm.yaml")
    result, _ = host.reconcile()
    assert host.domain("test").isActive()
    assert all(action.owner.name != "test" for action in result.plan.actions)


def test_core_change_waits_for_restart_with_manual_approval(host: Host) -> None:
    host.write("vm.yaml", vm_yaml(cores=1))
    host.reconcile()
    host.write("vm.yaml", vm_yaml(cores=2))
    result, _ = host.reconcile()
    status = status_of(result)
    assert status.restart_awaiting_changes == [
        {"path": "cpu.cores", "operation": "replace", "currentValue": 1, "desiredValue": 2}
    ]
    assert conditions(status)["AwaitingRestartToApplyConfiguration"] is True
    assert conditions(status)["ConfigurationApplied"] is False
    assert running_vcpus(host) == 1
    assert next_boot_vcpus(host) == 2
    # Nothing more happens until someone restarts the VM.
    again, mutations = host.reconcile()
    assert mutations == 0
    assert status_of(again).restart_awaiting_changes == status.restart_awaiting_changes


def test_core_change_restarts_the_vm_with_automatic_approval(host: Host) -> None:
    host.write("vm.yaml", vm_yaml(cores=1, approval="Automatic"))
    host.reconcile()
    host.write("vm.yaml", vm_yaml(cores=2, approval="Automatic"))
    result, _ = host.reconcile()
    assert any(o.outcome is Outcome.RESTARTED for o in result.plan.vms)
    assert running_vcpus(host) == 2
    status = status_of(result)
    assert status.restart_awaiting_changes == []
    assert "AwaitingRestartToApplyConfiguration" not in conditions(status)
    assert status.phase == "Running"


def test_immediate_changes_apply_without_restart(host: Host) -> None:
    host.write("vm.yaml", vm_yaml(run_policy="AlwaysOn"))
    host.reconcile()
    started = host.domain().ID()
    host.write("vm.yaml", vm_yaml(run_policy="AlwaysOnUnlessStoppedManually", labels="{a: b}"))
    result, mutations = host.reconcile()
    assert host.domain().ID() == started  # the same running instance
    assert status_of(result).restart_awaiting_changes == []
    assert mutations >= 1  # the live and next-boot metadata record the change
    _, mutations = host.reconcile()
    assert mutations == 0


def test_always_off_stops_the_vm_and_keeps_it_stopped(host: Host) -> None:
    host.write("vm.yaml", vm_yaml())
    host.reconcile()
    host.write("vm.yaml", vm_yaml(run_policy="AlwaysOff"))
    result, _ = host.reconcile()
    assert not host.domain().isActive()
    assert status_of(result).phase == "Stopped"
    _, mutations = host.reconcile()
    assert mutations == 0


def test_destroyed_by_hand_is_started_again(host: Host) -> None:
    host.write("vm.yaml", vm_yaml())
    host.reconcile()
    host.domain().destroy()
    result, _ = host.reconcile()
    assert host.domain().isActive()
    assert status_of(result).phase == "Running"


def test_sizing_violation_is_not_applied_and_the_vm_keeps_running(host: Host) -> None:
    host.write("vm.yaml", vm_yaml(cores=2))
    host.reconcile()
    before = host.domain().XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    # 5 cores fall in the 5..8 policy, which needs at least 5Gi.
    host.write("vm.yaml", vm_yaml(cores=5, memory="2Gi"))
    result, mutations = host.reconcile()
    assert mutations == 0
    assert host.domain().isActive()
    assert host.domain().XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before
    status = status_of(result)
    assert conditions(status)["SizingPolicyMatched"] is False
    message = next(c.message for c in status.conditions if c.type == "SizingPolicyMatched")
    assert "generic" in message


def test_deleted_vm_is_undefined_and_its_disk_kept(host: Host) -> None:
    host.write("vm.yaml", vm_yaml())
    host.reconcile()
    host.remove("vm.yaml")
    # The disk's manifest stays; only the VM goes.
    host.write("disk.yaml", vm_yaml().split("---", 1)[1])
    host.reconcile()
    names = [d.name() for d in host.connection.listAllDomains(0)]
    assert "linux-vm.default" not in names
    pool = host.connection.storagePoolLookupByName("default-pool")
    assert "vd-default-linux-vm-root.qcow2" in pool.listVolumes()


def test_missing_pool_fails_that_vm_only(host: Host) -> None:
    host.storage_pool = "no-such-pool"
    host.write("vm.yaml", vm_yaml())
    result, _ = host.reconcile()
    assert result.errors
    assert "no-such-pool" in str(result.errors[0].error)
    status = status_of(result)
    assert conditions(status)["ConfigurationApplied"] is False
    names = [d.name() for d in host.connection.listAllDomains(0)]
    assert "linux-vm.default" not in names


def test_admission_keeps_a_vm_pending_until_room_appears(host: Host) -> None:
    host.capacity_cpus = 1
    host.write("a.yaml", vm_yaml(name="a", cores=1, fraction="100%"))
    host.write("b.yaml", vm_yaml(name="b", cores=1, fraction="50%"))
    result, _ = host.reconcile()
    pending = [s for s in result.statuses_plan.statuses.values() if s.phase == "Pending"]
    assert len(pending) == 1
    assert "Running" in conditions(pending[0])
    host.remove("a.yaml")
    result, _ = host.reconcile()
    assert status_of(result, "b").phase == "Running"


def test_creation_time_survives_redefinition(host: Host) -> None:
    host.write("vm.yaml", vm_yaml(cores=1))
    first, _ = host.reconcile()
    created = status_of(first).created
    assert created.endswith("Z")
    host.write("vm.yaml", vm_yaml(cores=2))
    second, _ = host.reconcile()
    assert next_boot_vcpus(host) == 2
    assert status_of(second).created == created


def _vm_id(result, name: str):  # type: ignore[no-untyped-def]
    return next(i for i in result.plan.statuses if i.name == name)


def planned_anew(host: Host, result: PassResult) -> Plan:
    """The host after the pass, read whole and planned from scratch, as the pass's
    own second plan describes it (nothing anticipated)."""
    observer = NamespaceObserver(host.connection, host.namespaces)
    observation = with_image_sources(observer, result.context, observe(observer, host.context))
    return plan(replace(result.context, anticipate=False), observation)


def test_a_pass_reports_what_planning_the_host_anew_reports(host: Host) -> None:
    """After its actions a pass plans again for the statuses, keeping the VMs it had
    nothing to do for (plan.Settled): what it reports is what planning anew reports."""
    for index in range(8):  # most untouched: the pass reads only the touched ones again
        host.write(f"vm{index}.yaml", vm_yaml(name=f"vm{index}"))
    host.reconcile()
    host.write("vm0.yaml", vm_yaml(name="vm0", cores=2))
    host.write("vm1.yaml", vm_yaml(name="vm1", run_policy="AlwaysOff"))
    host.write("vm2.yaml", vm_yaml(name="vm2", fraction="20%"))
    result, _ = host.reconcile()
    assert result.final is not None
    untouched = _vm_id(result, "vm3")
    assert result.final.statuses[untouched] is result.plan.statuses[untouched]
    assert planned_anew(host, result).statuses == result.final.statuses
    assert status_of(result, "vm0").restart_awaiting_changes
    assert status_of(result, "vm1").phase == "Stopped"


def test_a_vm_refused_for_room_is_planned_again_after_the_pass(host: Host) -> None:
    """Its domain was not touched, but the room it waits for was."""
    host.capacity_cpus = 1
    host.write("a.yaml", vm_yaml(name="a", cores=1, fraction="100%"))
    for index in range(4):
        host.write(f"idle{index}.yaml", vm_yaml(name=f"idle{index}", run_policy="AlwaysOff"))
    host.reconcile()
    host.write("b.yaml", vm_yaml(name="b", cores=1, fraction="50%"))
    host.reconcile()  # b's disk and definition; no room to start it
    host.write("a.yaml", vm_yaml(name="a", cores=1, fraction="100%", run_policy="AlwaysOff"))
    result, _ = host.reconcile()
    refused = result.plan.statuses[_vm_id(result, "b")]
    assert "only 0m" in " ".join(c.message for c in refused.conditions)
    assert result.final is not None
    anew = planned_anew(host, result)
    assert anew.statuses == result.final.statuses
    assert any(vm.object_id.name == "b" and vm.actions for vm in anew.vms)


def test_a_pass_that_touched_the_pool_plans_every_vm_again(host: Host) -> None:
    for index in range(3):
        host.write(f"vm{index}.yaml", vm_yaml(name=f"vm{index}"))
    host.reconcile()
    host.write("vm3.yaml", vm_yaml(name="vm3"))  # a new disk volume: the pool is read again
    result, _ = host.reconcile()
    assert result.final is not None
    untouched = _vm_id(result, "vm0")
    assert result.final.statuses[untouched] is not result.plan.statuses[untouched]
    assert planned_anew(host, result).statuses == result.final.statuses
