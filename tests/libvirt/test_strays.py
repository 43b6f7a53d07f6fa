"""Anti-entropy on libvirt's test driver (engine/fleet/strays.py): the copy a live
migration left behind on this host, while another host of the fleet reports its VM, is
paused by a pass, never undefined, and its disks stay."""

from __future__ import annotations

import libvirt

from reconciler.engine.operations.execute import Record
from reconciler.engine.reconcile import reconcile_once
from reconciler.libvirt.apply import Applier
from reconciler.libvirt.operation_record import write_record
from reconciler.loader import load_directory
from reconciler.model.actions import PauseDomain
from reconciler.reports.pass_inputs import read_plan_context
from tests.hosts import Host, NamespaceObserver
from tests.libvirt.test_migrations import VM
from tests.libvirt.test_operations import running_vm

NODE = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
"""
REPORTED_ON_HV2 = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: linux-vm
  namespace: default
status:
  phase: Running
  nodeName: hv2
"""


def pause(host: Host) -> int:
    applier = Applier(host.connection)
    applier.run(PauseDomain(VM, host.domain().name(), "an older copy"))
    return applier.mutations


def test_pausing_a_running_guest_keeps_the_same_instance_paused(host: Host) -> None:
    started = running_vm(host)
    assert pause(host) == 1
    assert host.domain().state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert int(host.domain().ID()) == started


def test_pausing_a_guest_that_is_off_or_paused_changes_nothing(host: Host) -> None:
    running_vm(host)
    host.domain().destroy()
    assert pause(host) == 0
    assert host.domain().state()[0] == libvirt.VIR_DOMAIN_SHUTOFF


def test_a_pass_pauses_the_copy_a_migration_left_behind_and_keeps_its_disks(host: Host) -> None:
    # given hv1 runs linux-vm, recorded as sent to hv2 by an Evict, and hv2 reports it
    running_vm(host)
    write_record(host.domain(), "default/evict-linux-vm-1718000000", Record.STARTED, None, "hv2")
    host.write("nodes.yaml", NODE.format(name="hv1") + "---" + NODE.format(name="hv2"))
    report = host.write("status/virtualmachines/default/linux-vm.yaml", REPORTED_ON_HV2)
    volumes = sorted(host.connection.storagePoolLookupByName(host.storage_pool).listVolumes())
    # when hv1 runs a pass
    context = read_plan_context(
        load_directory(host.repo), host.context, "rev2", status_root=host.repo / "status"
    )
    result = reconcile_once(
        context, NamespaceObserver(host.connection, host.namespaces), Applier(host.connection)
    )
    # then the copy is paused, still defined, its volumes all there; hv1 does not report it
    assert not result.errors
    assert host.domain().state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert host.domain().isPersistent()
    pool = host.connection.storagePoolLookupByName(host.storage_pool)
    assert sorted(pool.listVolumes()) == volumes
    assert VM not in result.statuses_plan.statuses
    assert "nodeName: hv2" in report.read_text(encoding="utf-8")
