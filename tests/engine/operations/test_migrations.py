"""Evict and Migrate in the planner (issue 14): a live migration to the node the fleet's
schedule picks, followed through its record in the domain on both hosts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.engine.plan import Observation, PlanContext, plan
from reconciler.model.actions import (
    AbortMigration,
    CarryOutOperation,
    DefineDomain,
    EnsureDiskVolume,
    MigrateDomain,
)
from reconciler.model.domain import MigrationJob, PowerState
from reconciler.model.migration import StorageMode
from tests.engine.conftest import context_for, revision, vm_yaml
from tests.engine.operations.vmops import DOMAIN, LINUX_VM, defined, report, vmop_yaml

EVICT = "evict-linux-vm-1718000000"
KEY = f"default/{EVICT}"
NODE = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
spec:
  libvirtUri: qemu+tls://{name}/system
"""
FLEET = (NODE.format(name="hv1"), NODE.format(name="hv2"))
PEERS = ("qemu+tls://hv1/system", "qemu+tls://hv2/system")


def on(name: str, *documents: str, policy: str = "") -> PlanContext:
    """hv1 or hv2 of a fleet of two, with linux-vm (Manual) reported on hv1."""
    vm = vm_yaml(run_policy="Manual")
    if policy:
        vm = vm.replace("  runPolicy:", f"  liveMigrationPolicy: {policy}\n  runPolicy:", 1)
    ctx = context_for(revision(vm, *documents, *FLEET))
    host = replace(ctx.host, node_name=name, migration_peers=PEERS)
    return replace(ctx, host=host, reported_nodes={LINUX_VM: "hv1"})


def evict(force: bool | None = None) -> str:
    text = vmop_yaml(EVICT, "Evict")
    return text if force is None else text + f"  force: {str(force).lower()}\n"


def migrating(observation: Observation, progress: str) -> Observation:
    observed = observation.domains[DOMAIN]
    job = MigrationJob(40, progress)
    return replace(observation, domains={DOMAIN: replace(observed, migration=job)})


def migrations(result: object) -> list[MigrateDomain]:
    return [a for a in result.actions if isinstance(a, MigrateDomain)]  # type: ignore[attr-defined]


def test_a_migration_libvirt_runs_is_followed_not_begun_again() -> None:
    # given the evict recorded as started toward hv2 and libvirt migrating the domain
    ctx = on("hv1", vmop_yaml(EVICT, "Evict"))
    host = migrating(defined(ctx, completed=(f"{KEY}:started>hv2",)), "copying disks: 40%")
    # when hv1 plans
    result = plan(ctx, host)
    # then nothing is begun; the VM is Migrating and its operation in progress with how far
    assert migrations(result) == []
    assert result.statuses[LINUX_VM].phase == "Migrating"
    verdict = report(result, EVICT)
    assert verdict["phase"] == "InProgress" and "copying disks: 40%" in verdict["message"]


def test_nothing_is_made_for_a_vm_while_it_migrates_away_not_even_its_deleted_disk() -> None:
    # given hv1 migrating the guest to hv2, and its disk's volume already gone here (the
    # migration ended as the pass read the host: moved_volumes.py deleted the copy)
    ctx = on("hv1", vmop_yaml(EVICT, "Evict"))
    host = migrating(defined(ctx, completed=(f"{KEY}:started>hv2",)), "copying disks: 99%")
    host = replace(host, volumes={})
    # when hv1 plans
    result = plan(ctx, host)
    # then no volume is made anew, nothing is defined: the VM is hv2's once it lands
    vm_actions = [a for a in result.actions if a.owner == LINUX_VM]
    assert not any(isinstance(a, EnsureDiskVolume | DefineDomain) for a in vm_actions)
    assert result.statuses[LINUX_VM].phase == "Migrating"


def test_a_migration_cut_off_with_its_daemon_is_begun_again_once() -> None:
    # given the record says started toward hv2, the guest still runs here, no job runs
    ctx = on("hv1", vmop_yaml(EVICT, "Evict"))
    result = plan(ctx, defined(ctx, completed=(f"{KEY}:started>hv2",)))
    # then the migration is begun again, to the same node
    (again,) = migrations(result)
    assert again.target_node == "hv2"


def test_the_host_the_vm_arrived_on_reports_the_operation_completed() -> None:
    # given the domain arrived on hv2 with its record of the evict toward hv2
    ctx = on("hv2", vmop_yaml(EVICT, "Evict"))
    source = on("hv1", vmop_yaml(EVICT, "Evict"))
    arrived = defined(source, completed=(f"{KEY}:started>hv2",))
    # when hv2 plans
    result = plan(ctx, arrived)
    # then it reports the VM and the operation Completed, and records it completed here
    assert LINUX_VM in result.statuses
    assert report(result, EVICT)["phase"] == "Completed"
    recorded = [a for a in result.actions if isinstance(a, CarryOutOperation)]
    assert [(a.operation, a.step, a.outcome) for a in recorded] == [(KEY, "", "completed")]
    assert migrations(result) == []


def test_deleting_the_operation_while_it_migrates_cancels_the_migration() -> None:
    # given a migration running for an operation no longer in the revision
    ctx = on("hv1")
    host = migrating(defined(ctx, completed=(f"{KEY}:started>hv2",)), "memory pass 1: 80%")
    # then the plan cancels it
    (abort,) = [a for a in plan(ctx, host).actions if isinstance(a, AbortMigration)]
    assert abort.operation == KEY


def test_a_vm_that_stopped_before_it_moved_fails_its_operation() -> None:
    ctx = on("hv1", vmop_yaml(EVICT, "Evict"))
    host = defined(ctx, PowerState.SHUTOFF, "shutdown", completed=(f"{KEY}:started>hv2",))
    verdict = report(plan(ctx, host), EVICT)
    assert verdict["phase"] == "Failed" and "stopped before it moved" in verdict["message"]


@pytest.mark.parametrize(
    ("policy", "force", "converges"),
    [("AlwaysForced", None, True), ("PreferSafe", True, True), ("PreferForced", False, False)],
)
def test_the_migration_policy_and_force_decide_auto_converge(
    policy: str, force: bool | None, converges: bool
) -> None:
    ctx = on("hv1", evict(force), policy=policy)
    (migrate,) = migrations(plan(ctx, defined(ctx, completed=(f"{KEY}:started>hv2",))))
    assert migrate.auto_converge is converges


def test_force_against_an_always_policy_is_refused_as_the_platform_refuses_it() -> None:
    ctx = on("hv1", evict(True), policy="AlwaysSafe")
    verdict = report(plan(ctx, defined(ctx)), EVICT)
    assert (verdict["phase"], verdict["reason"]) == (
        "Failed",
        "NotApplicableForLiveMigrationPolicy",
    )


def test_the_host_a_vm_left_never_defines_it_again_while_its_report_says_migrating() -> None:
    # given hv1's last report of linux-vm says Migrating to hv2, and hv1 has no domain now
    ctx = replace(on("hv1", vmop_yaml(EVICT, "Evict")), reported_migrations={LINUX_VM: "hv2"})
    # when hv1 plans
    result = plan(ctx, Observation({}, {}))
    # then it neither defines nor reports the VM: hv2 does
    assert not any(isinstance(a, DefineDomain) for a in result.actions)
    assert LINUX_VM not in result.statuses


def test_without_a_migration_report_the_same_host_would_define_it() -> None:
    # the guard above is what keeps hv1 off: without the report, hv1 recreates the VM
    result = plan(on("hv1", vmop_yaml(EVICT, "Evict")), Observation({}, {}))
    assert any(isinstance(a, DefineDomain) for a in result.actions)


def test_a_target_the_hosts_configuration_does_not_list_is_refused() -> None:
    # given hv2's URI is not among hv1's migrationPeers (a commit pointed it elsewhere)
    ctx = on("hv1", vmop_yaml(EVICT, "Evict"))
    ctx = replace(ctx, host=replace(ctx.host, migration_peers=("qemu+tls://hv1/system",)))
    # then the Evict fails saying so, and nothing is recorded as started
    result = plan(ctx, defined(ctx))
    verdict = report(result, EVICT)
    assert verdict["phase"] == "Failed" and "migrationPeers" in verdict["message"]
    assert migrations(result) == []
    assert [a.outcome for a in result.actions if isinstance(a, CarryOutOperation)] == ["failed"]


def test_a_failed_migration_is_reported_with_the_reason_its_host_kept() -> None:
    # given the migration failed here (its record says failed) and the host kept why
    ctx = replace(
        on("hv1", vmop_yaml(EVICT, "Evict")),
        migration_failures={KEY: "Unable to connect to hv2: No route to host"},
    )
    verdict = report(plan(ctx, defined(ctx, completed=(f"{KEY}:failed",))), EVICT)
    # then the operation is Failed with that reason, and the VM keeps running where it was
    assert verdict["phase"] == "Failed"
    assert "No route to host" in verdict["message"] and "keeps running" in verdict["message"]


def test_a_domain_the_migration_shut_off_here_is_never_started_again_nor_failed() -> None:
    # given the guest left for hv2: libvirt shut the source off ("migrated") and has not
    # undefined it yet; the VM is AlwaysOn and its report says Migrating to hv2
    before = on("hv1", vmop_yaml(EVICT, "Evict"))
    ctx = replace(before, reported_migrations={LINUX_VM: "hv2"})
    left = defined(before, PowerState.SHUTOFF, "migrated", completed=(f"{KEY}:started>hv2",))
    # when hv1 plans
    result = plan(ctx, left)
    # then it neither starts the guest again nor fails the operation: hv2 has it
    assert result.actions == []
    assert LINUX_VM not in result.statuses
    assert EVICT not in {object_id.name for object_id in result.object_reports}


@pytest.mark.parametrize("kind", ["Evict", "Migrate"])
def test_a_vm_that_cannot_migrate_fails_its_operation_as_the_platform_does(kind: str) -> None:
    # given hv1 runs KVM, and linux-vm's class gives it the host's own CPU (cpu.type Host)
    ctx = on("hv1", vmop_yaml(EVICT, kind))
    ctx = replace(ctx, host=replace(ctx.host, domain_type="kvm"))
    # when hv1 plans the operation
    result = plan(ctx, defined(ctx))
    # then it fails with the platform's words and why, and nothing moves
    verdict = report(result, EVICT)
    assert verdict["phase"] == "Failed"
    assert verdict["message"] == (
        "VirtualMachine is not migratable: VirtualMachineClass generic gives it this host's"
        " own CPU (cpu.type Host), and the fleet's hosts may have different ones"
    )
    assert migrations(result) == []
    assert [a.outcome for a in result.actions if isinstance(a, CarryOutOperation)] == ["failed"]


def test_a_migration_from_a_pool_the_hosts_share_moves_memory_only() -> None:
    # given hv1's configuration marks its pool shared by the fleet's hosts
    ctx = on("hv1", vmop_yaml(EVICT, "Evict"))
    ctx = replace(ctx, host=replace(ctx.host, migration_storage=StorageMode.SHARED))
    # when the announced Evict is carried out
    (migrate,) = migrations(plan(ctx, defined(ctx, completed=(f"{KEY}:started>hv2",))))
    # then the migration copies no disk
    assert migrate.storage is StorageMode.SHARED


def test_a_migration_from_an_unshared_pool_copies_the_disks() -> None:
    ctx = on("hv1", vmop_yaml(EVICT, "Evict"))
    (migrate,) = migrations(plan(ctx, defined(ctx, completed=(f"{KEY}:started>hv2",))))
    assert migrate.storage is StorageMode.COPY
