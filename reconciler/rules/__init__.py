"""The platform's rules as pure checks: loaded objects in, findings out."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from pathlib import Path

from reconciler.findings import Finding
from reconciler.loader import LoadResult
from reconciler.model.volumes import DEFAULT_IMAGE_DIRECTORIES
from reconciler.policies import load_topology_policy
from reconciler.rules.conflicts import Pool, claim_findings, duplicate_findings, ip_range_findings
from reconciler.rules.disks import volume_name_findings
from reconciler.rules.images import image_source_findings
from reconciler.rules.inventory import Inventory
from reconciler.rules.recheck import Settings, from_last, remember
from reconciler.rules.references import reference_findings
from reconciler.rules.secrets import clear_secret_findings
from reconciler.rules.vm_rules import vm_findings


def check(
    result: LoadResult,
    pool: Pool | None = None,
    policy_dir: Path | None = None,
    image_directories: Sequence[str] = DEFAULT_IMAGE_DIRECTORIES,
    *,
    require_encrypted_secrets: bool = False,
) -> list[Finding]:
    """Every finding of a loaded revision, sorted by place.

    Without a pool (no CIDRs configured) the checks that need one are skipped.
    `image_directories`: where the host allows image files to come from.
    `require_encrypted_secrets`: a Secret whose data is in the clear is a finding.
    """
    # As in the loaders: the first check of a revision keeps what it reads off each of
    # thousands of objects (rules/derived.py) and makes no cycles; with the collector
    # running, those survivors set off full collections of everything loaded.
    collecting = gc.isenabled()
    gc.disable()
    try:
        inventory = Inventory.of(result)
        settings = Settings(
            tuple(pool or ()),
            policy_dir,
            tuple(image_directories),
            require_encrypted_secrets,
            load_topology_policy(policy_dir),
        )
        # After a push that edited a few manifests: from the last check's (recheck.py).
        found = from_last(inventory, settings, pool or ())
        if found is None:
            found = list(_every_finding(inventory, settings, pool))
        remember(inventory, settings, found)
    finally:
        if collecting:
            gc.enable()
    findings = [*result.findings, *found]
    return sorted(set(findings))


def _every_finding(
    inventory: Inventory, settings: Settings, pool: Pool | None
) -> Iterator[Finding]:
    """The rules' findings of every object."""
    yield from duplicate_findings(inventory)
    yield from reference_findings(inventory)
    yield from vm_findings(inventory, settings.topology)
    yield from claim_findings(inventory)
    yield from volume_name_findings(inventory)
    yield from image_source_findings(inventory, settings.image_directories)
    if pool:
        yield from ip_range_findings(inventory, pool)
    if settings.require_encrypted_secrets:
        yield from clear_secret_findings(inventory)


__all__ = ["Inventory", "Pool", "check"]
