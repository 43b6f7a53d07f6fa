"""liveMigrationPolicy and `force` onto auto-converge (reconciler/model/migration.py).

The platform's table (dvp-api.md §10), row by row: the policy alone decides for the
migrations the hosts start themselves and for operations without `force`; `force`
overrides PreferSafe and PreferForced; a `force` that contradicts AlwaysSafe or
AlwaysForced fails the operation with the platform's reason and message.
"""

from __future__ import annotations

import pytest

from reconciler.api.vm import LiveMigrationPolicy, VirtualMachineSpec
from reconciler.model.migration import NotApplicableForPolicy, auto_converge

SAFE = LiveMigrationPolicy.ALWAYS_SAFE
PREFER_SAFE = LiveMigrationPolicy.PREFER_SAFE
FORCED = LiveMigrationPolicy.ALWAYS_FORCED
PREFER_FORCED = LiveMigrationPolicy.PREFER_FORCED


@pytest.mark.parametrize(
    ("policy", "expected"),
    [(SAFE, False), (PREFER_SAFE, False), (FORCED, True), (PREFER_FORCED, True)],
)
def test_without_force_the_policy_alone_decides(
    policy: LiveMigrationPolicy, expected: bool
) -> None:
    assert auto_converge(policy) is expected
    assert auto_converge(policy, None) is expected


@pytest.mark.parametrize(
    ("policy", "force", "expected"),
    [
        (PREFER_SAFE, True, True),
        (PREFER_SAFE, False, False),
        (PREFER_FORCED, False, False),
        (PREFER_FORCED, True, True),
    ],
)
def test_force_overrides_the_prefer_policies(
    policy: LiveMigrationPolicy, force: bool, expected: bool
) -> None:
    assert auto_converge(policy, force) is expected


@pytest.mark.parametrize(
    ("policy", "force", "expected"), [(SAFE, False, False), (FORCED, True, True)]
)
def test_force_agreeing_with_an_always_policy_is_accepted(
    policy: LiveMigrationPolicy, force: bool, expected: bool
) -> None:
    assert auto_converge(policy, force) is expected


@pytest.mark.parametrize(("policy", "force"), [(SAFE, True), (FORCED, False)])
def test_force_contradicting_an_always_policy_refuses_the_operation(
    policy: LiveMigrationPolicy, force: bool
) -> None:
    refusal = auto_converge(policy, force)

    assert isinstance(refusal, NotApplicableForPolicy)
    assert refusal.reason == "NotApplicableForLiveMigrationPolicy"
    assert refusal.message == (
        f"Operation is invalid: force={str(force).lower()} is not applicable"
        f" for VM liveMigrationPolicy {policy.value}"
    )


def test_a_vm_without_a_policy_migrates_without_auto_converge() -> None:
    # spec.liveMigrationPolicy defaults to PreferSafe, as in the platform's CRD.
    default = VirtualMachineSpec.model_fields["live_migration_policy"].default

    assert auto_converge(default) is False
