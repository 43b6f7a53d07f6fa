"""The findings of a revision that edited objects of the last one checked, made from the
last findings instead of from every object again.

A daemon's pass after a push that edited one manifest checks a revision whose other
objects are the very ones checked last time (the manifest cache keeps them). When
each edited object refers to the same objects and claims the same ones as before (a
VM's cores, memory, run policy; a file read again), or is an equal object, nothing
another object is found to be wrong about can have changed: its references resolve
to the same identities (the same ones exist: Inventory.replaced_since), the Secrets
and classes it is checked against are equal ones, and who claims a disk or an
address first is who claimed it before. So the findings of the other objects are
the last ones, and the edited objects' own are made again, one by one. A conflict
found in an edited object, or anything replaced_since cannot pair, is checked whole.
The image-source rule reads the host's files, so it is always made again (there are
few images).

Equal to a full check: tests/rules/test_recheck.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.api import Secret, VirtualMachine, VirtualMachineIPAddress
from reconciler.findings import Finding, Rule
from reconciler.policies import TopologyPolicy
from reconciler.rules.conflicts import Pool, address_range_findings, vm_claims
from reconciler.rules.images import image_source_findings
from reconciler.rules.inventory import Inventory
from reconciler.rules.references import object_reference_findings, references_of
from reconciler.rules.secrets import secrets_in_the_clear
from reconciler.rules.vm_rules import one_vm_findings


@dataclass(frozen=True)
class Settings:
    """What a check is made with besides the revision."""

    pool: tuple[object, ...]
    policy_dir: object
    image_directories: tuple[str, ...]
    require_encrypted_secrets: bool
    topology: TopologyPolicy


@dataclass(frozen=True)
class _Checked:
    inventory: Inventory
    settings: Settings
    # The rules' findings, without the files' own (LoadResult.findings).
    findings: tuple[Finding, ...]


_LAST: list[_Checked] = []


def remember(inventory: Inventory, settings: Settings, findings: Sequence[Finding]) -> None:
    _LAST[:] = [_Checked(inventory, settings, tuple(findings))]


def forget() -> None:
    """The next check is a full one (the tests' reference)."""
    _LAST.clear()


def from_last(inventory: Inventory, settings: Settings, pool: Pool) -> list[Finding] | None:
    """The rules' findings of `inventory` from the last check's; None when they must be
    made whole (see the module's docstring)."""
    last = _LAST[0] if _LAST else None
    if last is None or last.settings != settings:
        return None
    replaced = inventory.replaced_since(last.inventory)
    if replaced is None:
        return None
    if not replaced:
        return list(last.findings)
    edited: set[str] = set()
    for old, new in replaced:
        before, after = old.model, new.model
        if isinstance(before, VirtualMachine) and isinstance(after, VirtualMachine):
            if references_of(old) != references_of(new) or vm_claims(old) != vm_claims(new):
                return None
        elif before != after:
            return None
        edited.add(str(new.id))
    findings: list[Finding] = []
    for finding in last.findings:
        if finding.object in edited:
            if finding.rule is Rule.CONFLICT or finding.rule is Rule.DUPLICATE:
                return None
            continue
        if finding.rule is not Rule.IMAGE_SOURCE:
            findings.append(finding)
    for _old, new in replaced:
        findings.extend(object_reference_findings(inventory, new))
        model = new.model
        if isinstance(model, VirtualMachine):
            findings.extend(one_vm_findings(inventory, new, model, settings.topology))
        elif isinstance(model, VirtualMachineIPAddress) and pool:
            findings.extend(address_range_findings([(new, model)], pool))
        elif isinstance(model, Secret) and settings.require_encrypted_secrets:
            findings.extend(secrets_in_the_clear([(new, model)]))
    findings.extend(image_source_findings(inventory, settings.image_directories))
    return findings
