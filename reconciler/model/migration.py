"""How a live migration moves a guest: its disks (StorageMode, from the host's
`storagePoolShared`) and whether it throttles the guest's vCPUs to converge
(auto-converge).

The platform's rule (dvp-api.md §10; `pkg/livemigration/policy.go`,
`CalculateEffectivePolicy`): the VM's `liveMigrationPolicy` (default PreferSafe) says
whether QEMU's auto-converge is on, and an Evict or Migrate operation's `force`
overrides the two Prefer* policies:

| policy        | no force (drain, placement, plain vmop) | force: true | force: false |
| ------------- | --------------------------------------- | ----------- | ------------ |
| AlwaysSafe    | off                                     | refused     | off          |
| PreferSafe    | off                                     | on          | off          |
| AlwaysForced  | on                                      | on          | refused      |
| PreferForced  | on                                      | on          | off          |

Where the user guide and the platform's code differ, this follows the code: the guide
("Configuring Migration Policy") only says `force` changes the Prefer* policies; the
code also refuses the operation (phase Failed, reason NotApplicableForLiveMigrationPolicy)
when `force` contradicts an Always* policy: `force: true` on AlwaysSafe and
`force: false` on AlwaysForced. The platform's system-wide override (a ModuleConfig
annotation that makes `force` ignored) has no counterpart here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from reconciler.api.vm import LiveMigrationPolicy
from reconciler.model.conditions import OperationReason


class StorageMode(StrEnum):
    """How the domain's disks get to the destination (libvirt/migrate.py's flags)."""

    # Each disk is copied (`NON_SHARED_DISK`) before memory: libvirt creates its volume
    # in the destination's pool whose target holds the same path (it refuses when there
    # is none), then mirrors the data over NBD. Read-only disks are not copied: libvirt
    # expects them on the destination already (engine/vm/migratable.py).
    COPY = "copy"
    # Memory only: the disks are on storage both hosts see. libvirt checks that it is
    # storage it knows to be shared (NFS, GFS2, Ceph, ...) and refuses otherwise.
    SHARED = "shared"
    # Memory only, from a plain directory both hosts mount at the same path, which
    # libvirt 9.0 does not count as shared ("Migration without shared storage is
    # unsafe", even with cache='none'). `VIR_MIGRATE_UNSAFE` skips that check: the
    # configuration vouches that the directory is coherent between the hosts.
    SHARED_DIRECTORY = "shared-directory"


@dataclass(frozen=True)
class NotApplicableForPolicy:
    """An operation whose `force` contradicts the VM's Always* policy: it fails."""

    policy: LiveMigrationPolicy
    force: bool

    reason: ClassVar[OperationReason] = OperationReason.NOT_APPLICABLE_FOR_LIVE_MIGRATION_POLICY

    @property
    def message(self) -> str:
        # The platform's own words (vmop lifecycle handler, isApplicableForLiveMigrationPolicy).
        force = "true" if self.force else "false"
        return (
            f"Operation is invalid: force={force} is not applicable"
            f" for VM liveMigrationPolicy {self.policy}"
        )


_FORCED_BY_POLICY = {
    LiveMigrationPolicy.ALWAYS_SAFE: False,
    LiveMigrationPolicy.PREFER_SAFE: False,
    LiveMigrationPolicy.ALWAYS_FORCED: True,
    LiveMigrationPolicy.PREFER_FORCED: True,
}


def auto_converge(
    policy: LiveMigrationPolicy, force: bool | None = None
) -> bool | NotApplicableForPolicy:
    """Whether the migration uses auto-converge, or why the operation is refused.

    `force` is the operation's `spec.force`; None for an operation without it and for
    the migrations the hosts start themselves (drain, placement changes).
    """
    by_policy = _FORCED_BY_POLICY[policy]
    if force is None or force == by_policy:
        return by_policy
    if policy in (LiveMigrationPolicy.PREFER_SAFE, LiveMigrationPolicy.PREFER_FORCED):
        return force
    return NotApplicableForPolicy(policy, force)
