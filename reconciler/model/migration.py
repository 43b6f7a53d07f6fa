"""Whether a live migration throttles the guest's vCPUs to converge (auto-converge).

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
from typing import ClassVar

from reconciler.api.vm import LiveMigrationPolicy
from reconciler.model.conditions import OperationReason


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
