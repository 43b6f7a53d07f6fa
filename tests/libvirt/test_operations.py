"""VirtualMachineOperations carried out on libvirt's test driver: once, whatever happens.

Every start of a domain gives it a new libvirt domain ID, so the ID tells how many
times an operation's power step really ran.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import libvirt
from ruamel.yaml import YAML

from reconciler.cli.vm import parse_report
from reconciler.engine.operations.execute import Record, records
from reconciler.engine.reconcile import reconcile_once
from reconciler.libvirt.apply import Applier
from reconciler.libvirt.facts import parse_definition
from reconciler.libvirt.observe import Observer
from reconciler.libvirt.operation_record import write_record
from reconciler.loader import load_directory
from reconciler.reports.pass_inputs import read_plan_context
from tests.hosts import Host, vm_yaml

VMOP = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineOperation
metadata:
  name: {name}
spec:
  type: {type}
  virtualMachineName: linux-vm
"""
RESTART = "restart-linux-vm-1718000000"
STOP = "stop-linux-vm-1718000100"
START = "start-linux-vm-1718000200"


def request(host: Host, name: str, kind: str) -> None:
    host.write(f"operations/{name}.yaml", VMOP.format(name=name, type=kind))


def apply(host: Host) -> int:
    """One pass and its reports; the number of libvirt changes."""
    result, mutations = host.reconcile()
    assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]
    host.write_statuses(result)
    return mutations


def report_path(host: Host, name: str) -> Path:
    return host.repo / "status" / "virtualmachineoperations" / "default" / f"{name}.yaml"


def report(host: Host, name: str) -> dict[str, Any]:
    document = YAML(typ="safe").load(report_path(host, name).read_text(encoding="utf-8"))
    return dict(document["status"])


def recorded(host: Host) -> list[str]:
    xml = host.domain().XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    meta = parse_definition(xml).metadata
    assert meta is not None
    return list(meta.completed_operations)


def running_vm(host: Host, run_policy: str = "Manual", cores: int = 1) -> int:
    host.write("vm.yaml", vm_yaml(run_policy=run_policy, cores=cores))
    if not host.repo.joinpath("status").exists():
        apply(host)
    if not host.domain().isActive():
        host.domain().create()
    return int(host.domain().ID())


def test_restart_runs_once_and_its_report_says_completed(host: Host) -> None:
    started = running_vm(host)
    request(host, RESTART, "Restart")

    apply(host)

    restarted = host.domain().ID()
    assert restarted != started
    assert host.domain().isActive()
    status = report(host, RESTART)
    assert status["phase"] == "Completed"
    assert recorded(host) == [f"default/{RESTART}"]
    assert apply(host) == 0
    assert host.domain().ID() == restarted


def test_the_report_reads_as_reconciler_vm_wait_expects(host: Host) -> None:
    running_vm(host)
    request(host, RESTART, "Restart")
    request(host, "start-linux-vm-1718000001", "Start")

    apply(host)

    text = report_path(host, RESTART).read_text(encoding="utf-8")
    done = parse_report(text)
    assert done is not None and (done.phase, done.reason) == ("Completed", "OperationCompleted")
    refused = parse_report(report_path(host, "start-linux-vm-1718000001").read_text())
    assert refused is not None and refused.phase == "Failed"
    assert refused.reason == "NotApplicableForVirtualMachinePhase"
    assert "phase Running" in refused.message


def test_a_restart_committed_with_its_new_vm_fails_for_the_phase_the_vm_had(host: Host) -> None:
    """The VM was Pending when the operation was checked, even if the pass started it."""
    host.write("vm.yaml", vm_yaml())
    request(host, RESTART, "Restart")

    apply(host)

    assert host.domain().isActive()
    status = report(host, RESTART)
    completed = next(c for c in status["conditions"] if c["type"] == "Completed")
    assert (status["phase"], completed["reason"]) == (
        "Failed",
        "NotApplicableForVirtualMachinePhase",
    )
    assert completed["message"] == "Restart is not applicable for a VirtualMachine in phase Pending"


def test_a_lost_status_tree_does_not_run_an_operation_again(host: Host) -> None:
    running_vm(host)
    request(host, RESTART, "Restart")
    apply(host)
    restarted = host.domain().ID()
    shutil.rmtree(host.repo / "status")

    assert apply(host) == 0

    assert host.domain().ID() == restarted
    assert report(host, RESTART)["phase"] == "Completed", "the report is written again"


def test_a_domain_without_the_record_does_not_run_a_reported_operation_again(
    host: Host,
) -> None:
    running_vm(host)
    request(host, RESTART, "Restart")
    apply(host)
    domain = host.domain()
    xml = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    domain.destroy()
    domain.undefine()
    host.connection.defineXML(xml.replace(f"<vmr:operation>default/{RESTART}</vmr:operation>", ""))
    assert recorded(host) == []

    host.domain().create()
    started = host.domain().ID()

    assert apply(host) == 0, "the final report alone keeps it from running again"
    assert host.domain().ID() == started


def test_stop_keeps_the_vm_off_across_passes_until_a_start(host: Host) -> None:
    running_vm(host, run_policy="AlwaysOnUnlessStoppedManually")
    request(host, STOP, "Stop")

    apply(host)
    assert not host.domain().isActive()
    assert report(host, STOP)["phase"] == "Completed"
    for _ in range(2):
        assert apply(host) == 0
    assert not host.domain().isActive()

    request(host, START, "Start")
    apply(host)

    assert host.domain().isActive()
    assert report(host, START)["phase"] == "Completed"
    assert recorded(host) == [f"default/{STOP}", f"default/{START}"]


def test_restart_applies_the_changes_awaiting_it(host: Host) -> None:
    running_vm(host, cores=1)
    host.write("vm.yaml", vm_yaml(run_policy="Manual", cores=2))
    apply(host)
    assert parse_definition(host.domain().XMLDesc(0)).facts.vcpus == 1

    request(host, RESTART, "Restart")
    result, _ = host.reconcile()

    assert parse_definition(host.domain().XMLDesc(0)).facts.vcpus == 2
    status = next(s for i, s in result.statuses_plan.statuses.items() if i.name == "linux-vm")
    assert status.restart_awaiting_changes == []


# ---------------------------------------------------------------- a daemon killed mid-way


class WatchingApplier(Applier):
    """The applier, noting the domain's record of operations whenever it stops one."""

    def __init__(self, connection: libvirt.virConnect) -> None:
        super().__init__(connection, poll_seconds=0.05)
        self.records_at_stop: list[dict[str, Record]] = []

    def _stop(self, domain: libvirt.virDomain, grace_seconds: int) -> None:
        xml = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        self.records_at_stop.append(records(parse_definition(xml).metadata))
        super()._stop(domain, grace_seconds)


def test_the_record_is_written_before_the_power_step_and_the_new_instance_carries_it(
    host: Host,
) -> None:
    running_vm(host)
    request(host, RESTART, "Restart")
    applier = WatchingApplier(host.connection)
    context = read_plan_context(
        load_directory(host.repo), host.context, "rev1", disk_reports_root=host.repo / "status"
    )

    reconcile_once(context, Observer(host.connection), applier)

    assert applier.records_at_stop == [{f"default/{RESTART}": Record.STARTED}]
    live = parse_definition(host.domain().XMLDesc(0)).metadata
    assert live is not None and records(live) == {f"default/{RESTART}": Record.STARTED}
    assert recorded(host) == [f"default/{RESTART}"]


def test_a_restart_recorded_but_cut_short_before_its_stop_is_carried_out_once(
    host: Host,
) -> None:
    started = running_vm(host)
    request(host, RESTART, "Restart")
    # What a daemon killed right after the first step of the operation leaves behind.
    write_record(host.domain(), f"default/{RESTART}", Record.STARTED, False)

    apply(host)
    restarted = host.domain().ID()
    assert apply(host) == 0

    assert restarted != started
    assert host.domain().ID() == restarted
    assert report(host, RESTART)["phase"] == "Completed"


def test_a_restart_killed_after_its_start_is_only_recorded(host: Host) -> None:
    running_vm(host)
    request(host, RESTART, "Restart")
    domain = host.domain()
    write_record(domain, f"default/{RESTART}", Record.STARTED, False)
    domain.destroy()
    domain.create()  # the restart itself; the daemon dies before recording it done
    restarted = domain.ID()

    apply(host)

    assert host.domain().ID() == restarted
    assert recorded(host) == [f"default/{RESTART}"]
    assert report(host, RESTART)["phase"] == "Completed"


def test_a_restart_killed_between_its_stop_and_its_start_is_started_once(host: Host) -> None:
    running_vm(host, run_policy="AlwaysOnUnlessStoppedManually")
    request(host, RESTART, "Restart")
    domain = host.domain()
    write_record(domain, f"default/{RESTART}", Record.STARTED, False)
    domain.shutdown()  # a graceful stop: the policy alone would leave it off

    apply(host)
    restarted = host.domain().ID()
    assert apply(host) == 0

    assert host.domain().isActive()
    assert host.domain().ID() == restarted


def test_evict_on_a_host_alone_fails_and_the_vm_keeps_running(host: Host) -> None:
    started = running_vm(host)
    request(host, "evict-linux-vm-1718000000", "Evict")

    apply(host)

    status = report(host, "evict-linux-vm-1718000000")
    assert status["phase"] == "Failed"
    completed = next(c for c in status["conditions"] if c["type"] == "Completed")
    assert "nowhere to move" in completed["message"]
    assert host.domain().ID() == started
    assert recorded(host) == ["default/evict-linux-vm-1718000000:failed"]
