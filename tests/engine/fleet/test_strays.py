"""Anti-entropy (issue 14): a copy of a VM that another host of the fleet runs is never
this host's. The copy a live migration left behind is paused, one with no migration to
explain it is left as it is; neither is started, defined, migrated or undefined here,
and both hosts, planning from the same reports, agree on which copy is the VM."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.engine.fleet.strays import StrayKind
from reconciler.engine.plan import Observation, Plan, PlanContext, plan
from reconciler.model.actions import PauseDomain
from reconciler.model.domain import PowerState
from tests.engine.conftest import context_for, revision, vm_yaml
from tests.engine.operations.vmops import DOMAIN, LINUX_VM, defined, vmop_yaml

EVICT = "evict-linux-vm-1718000000"
SENT_TO_HV2 = f"default/{EVICT}:started>hv2"
NODE = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
spec:
  libvirtUri: qemu+tls://{name}/system
"""


def on(name: str, reported: str, *, migrating_to: str = "", nodes: str = "hv1 hv2") -> PlanContext:
    """Host `name` of a fleet, planning linux-vm (AlwaysOn) and its Evict, with the VM's
    latest report naming `reported` (and, if given, saying it migrates to `migrating_to`)."""
    fleet = [NODE.format(name=node) for node in nodes.split()]
    vm = vm_yaml(run_policy="AlwaysOn")
    ctx = context_for(revision(vm, vmop_yaml(EVICT, "Evict"), *fleet))
    peers = tuple(f"qemu+tls://{node}/system" for node in nodes.split())
    return replace(
        ctx,
        host=replace(ctx.host, node_name=name, migration_peers=peers),
        reported_nodes={LINUX_VM: reported},
        reported_migrations={LINUX_VM: migrating_to} if migrating_to else {},
    )


def copy(ctx: PlanContext, *records: str, state: PowerState = PowerState.RUNNING) -> Observation:
    """The host with its own copy of linux-vm, as it would have defined it."""
    reason = "booted" if state is PowerState.RUNNING else "destroyed"
    own = replace(ctx, reported_nodes={LINUX_VM: ctx.host.node_name}, reported_migrations={})
    return defined(own, state, reason, completed=records)


def reports_vm(result: Plan) -> bool:
    return LINUX_VM in result.statuses


def test_a_copy_a_migration_sent_away_is_paused_once_the_destination_reports_the_vm() -> None:
    # given hv1 crashed mid-migration: its copy still runs, recorded as sent to hv2,
    # and hv2 reports the VM running there
    ctx = on("hv1", reported="hv2")
    # when hv1 plans
    result = plan(ctx, copy(ctx, SENT_TO_HV2))
    # then its only action pauses the older copy (memory, definition and disks kept),
    # and it neither reports the VM nor migrates it again
    assert result.actions == [PauseDomain(LINUX_VM, DOMAIN, "an older copy of a VM hv2 runs")]
    assert not reports_vm(result)
    assert not [object_id for object_id in result.object_reports if object_id.name == EVICT]


def test_a_shut_off_copy_a_migration_sent_away_is_never_started_again() -> None:
    # given the source host rebooted mid-migration: its copy of an AlwaysOn VM is off
    ctx = on("hv1", reported="hv2")
    result = plan(ctx, copy(ctx, SENT_TO_HV2, state=PowerState.SHUTOFF))
    # then it stays off and defined, disks and all: hv2 runs the VM
    assert result.actions == []
    assert not reports_vm(result)


def test_the_duplicate_is_reported_for_the_operator() -> None:
    ctx = on("hv1", reported="hv2")
    result = plan(ctx, copy(ctx, SENT_TO_HV2))
    (stray,) = result.strays
    assert (stray.domain, stray.vm, stray.node, stray.kind) == (
        DOMAIN,
        LINUX_VM,
        "hv2",
        StrayKind.DUPLICATE,
    )
    assert stray.report()["reason"] == "Duplicate"
    (note,) = [note for note in result.notes if DOMAIN in note]
    assert "older copy" in note and "paused" in note and "hv2 runs the VM" in note


def test_the_copy_that_arrived_by_migration_is_kept_whichever_host_the_report_names() -> None:
    # given hv2 has the copy that arrived (its record names hv2) while the VM's latest
    # report is still the source's
    ctx = on("hv2", reported="hv1")
    # when hv2 plans
    result = plan(ctx, copy(ctx, SENT_TO_HV2))
    # then it keeps the copy running and reports the VM on hv2
    assert not [a for a in result.actions if isinstance(a, PauseDomain)]
    assert result.statuses[LINUX_VM].node_name == "hv2"
    assert result.strays == []


def test_a_copy_another_host_runs_with_no_migration_is_left_running_and_reported() -> None:
    # given hv1 finds a running copy it has no record of moving, and hv2 runs the VM
    ctx = on("hv1", reported="hv2")
    result = plan(ctx, copy(ctx))
    # then nothing is done to it (no pause, no undefine, no restart), and it is named
    assert result.actions == []
    assert not reports_vm(result)
    (stray,) = result.strays
    assert stray.kind is StrayKind.OWNED_ELSEWHERE
    assert any(DOMAIN in note and "left as it is" in note for note in result.notes)


def test_a_copy_arriving_by_a_migration_the_report_announces_is_this_hosts() -> None:
    # the report says hv1 migrates the VM here: hv2 takes it, as before
    ctx = on("hv2", reported="hv1", migrating_to="hv2")
    result = plan(ctx, copy(ctx, SENT_TO_HV2))
    assert reports_vm(result) and result.strays == []


def test_a_report_naming_a_host_that_left_the_fleet_holds_no_vm() -> None:
    # given the report names hv3, no longer a Node of the repository
    ctx = on("hv1", reported="hv3")
    result = plan(ctx, copy(ctx))
    # then the copy here is hv1's, as any domain found here is
    assert reports_vm(result) and result.strays == []


HOSTS = ("hv1", "hv2")


@pytest.mark.parametrize(
    ("reported", "records", "winner"),
    [
        # crash mid-migration, the destination reporting: its copy wins
        ("hv2", {"hv1": (SENT_TO_HV2,), "hv2": (SENT_TO_HV2,)}, "hv2"),
        # the destination already recorded the arrival completed
        ("hv2", {"hv1": (SENT_TO_HV2,), "hv2": (f"default/{EVICT}",)}, "hv2"),
        # no migration explains either copy: the host the report names keeps the VM
        ("hv1", {"hv1": (), "hv2": ()}, "hv1"),
        ("hv2", {"hv1": (), "hv2": ()}, "hv2"),
    ],
)
def test_both_hosts_agree_which_copy_is_the_vm(
    reported: str, records: dict[str, tuple[str, ...]], winner: str
) -> None:
    # given both hosts have a running copy and read the same report
    results = {}
    for host in HOSTS:
        ctx = on(host, reported=reported)
        results[host] = plan(ctx, copy(ctx, *records[host]))
    # then exactly the winner reports and runs the VM; the other only reports a stray
    assert [host for host in HOSTS if reports_vm(results[host])] == [winner]
    assert [host for host in HOSTS if results[host].strays] == [h for h in HOSTS if h != winner]
    assert not any(isinstance(action, PauseDomain) for action in results[winner].actions), (
        "the copy that is the VM is never paused"
    )
