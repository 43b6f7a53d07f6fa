"""The pass driver's reading: the files a plan depends on besides the manifests.

The engine decides from values only (engine.reconcile.plan_context); this is where
those values come from for every caller (the daemon, `reconciler plan/apply`, the
tests' hosts, the benchmarks): the policy files, the revision's findings and the
latest reports in Git.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.engine.network.addressing import AddressInputs
from reconciler.engine.plan import PlanContext
from reconciler.engine.reconcile import EarlierReports, plan_context
from reconciler.engine.vm.desired import HostContext
from reconciler.loader import LoadResult
from reconciler.model.secrets import NO_SECRETS, OpenedSecrets
from reconciler.policies import load_change_rules, load_topology_policy
from reconciler.reports.reported import reported_disks, reported_placements
from reconciler.reports.reported_capacity import reported_capacities
from reconciler.reports.reported_operations import reported_operations
from reconciler.rules import Pool, check


def earlier_reports(status_root: Path | None, disk_reports_root: Path | None) -> EarlierReports:
    """What the reports say: status_root holds the fleet's latest reports, which keep
    each VM on the host that runs it; the disk reports (under disk_reports_root, else
    status_root) tell which disks existed, and the operation reports are read from the
    same root: the reports this pass writes over. The Node reports' capacities come
    from status_root, as every host of the fleet reads them."""
    disks_root = disk_reports_root or status_root
    nodes, migrations = reported_placements(status_root) if status_root is not None else ({}, {})
    return EarlierReports(
        nodes=nodes,
        migrations=migrations,
        disks=reported_disks(disks_root) if disks_root is not None else {},
        operations=reported_operations(disks_root) if disks_root is not None else {},
        capacities=reported_capacities(status_root) if status_root is not None else {},
    )


def read_plan_context(
    result: LoadResult,
    host: HostContext,
    revision: str,
    pool: Pool = (),
    policy_dir: Path | None = None,
    status_root: Path | None = None,
    addresses: AddressInputs | None = None,
    disk_reports_root: Path | None = None,
    secrets: OpenedSecrets = NO_SECRETS,
    require_encrypted_secrets: bool = False,
) -> PlanContext:
    """The plan context of a loaded revision, its policies (under policy_dir, else the
    packaged ones) and earlier reports read (earlier_reports). `secrets`: what the host
    decrypted of the revision's encrypted Secrets (source/secrets.py)."""
    topology = load_topology_policy(policy_dir)
    return plan_context(
        result,
        host,
        revision,
        secrets=secrets,
        findings=check(
            result,
            pool,
            policy_dir,
            host.image_directories,
            require_encrypted_secrets=require_encrypted_secrets,
        ),
        topology=topology,
        change_rules=load_change_rules(host.change_profile, policy_dir),
        earlier=earlier_reports(status_root, disk_reports_root),
        addresses=addresses,
    )


__all__ = ["earlier_reports", "read_plan_context"]
