"""The platform's rules as pure checks: loaded objects in, findings out."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path

from reconciler.findings import Finding
from reconciler.loader import LoadResult
from reconciler.model.volumes import DEFAULT_IMAGE_DIRECTORIES
from reconciler.policies import load_topology_policy
from reconciler.rules.conflicts import Pool, claim_findings, duplicate_findings, ip_range_findings
from reconciler.rules.disks import volume_name_findings
from reconciler.rules.images import image_source_findings
from reconciler.rules.inventory import Inventory
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
        findings = list(result.findings)
        findings.extend(duplicate_findings(inventory))
        findings.extend(reference_findings(inventory))
        findings.extend(vm_findings(inventory, load_topology_policy(policy_dir)))
        findings.extend(claim_findings(inventory))
        findings.extend(volume_name_findings(inventory))
        findings.extend(image_source_findings(inventory, image_directories))
        if pool:
            findings.extend(ip_range_findings(inventory, pool))
        if require_encrypted_secrets:
            findings.extend(clear_secret_findings(inventory))
    finally:
        if collecting:
            gc.enable()
    return sorted(set(findings))


__all__ = ["Inventory", "Pool", "check"]
