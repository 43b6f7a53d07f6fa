"""A VM's next-boot definition: defined when new, defined again when its spec changed
or the definition was edited by hand, and left alone when it is what the spec says."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from reconciler.api import ObjectId
from reconciler.engine.plan_types import Outcome
from reconciler.memo import IdentityMemo
from reconciler.model.actions import DefineDomain
from reconciler.model.domain import DomainMetadata, DomainSpec, ObservedDomain


class Definition(NamedTuple):
    """The spec the domain is to have (with the bookkeeping its definition carries),
    and the definition this pass makes, if any."""

    spec: DomainSpec
    action: DefineDomain | None = None
    outcome: Outcome = Outcome.UNCHANGED
    detail: str = ""


def definition(vm_id: ObjectId, desired: DomainSpec, observed: ObservedDomain | None) -> Definition:
    config_meta = observed.config.metadata if observed else None
    spec = desired if config_meta is None else _with_bookkeeping(desired, config_meta)
    if observed is None:
        return Definition(spec, DefineDomain(vm_id, spec, "new"), Outcome.CREATED)
    if (
        observed.persistent
        and config_meta is not None
        and config_meta.digest == spec.metadata.digest
        and observed.config.facts == spec.facts()
    ):
        return Definition(spec)
    drifted = config_meta is not None and config_meta.digest == spec.metadata.digest
    if drifted:
        return Definition(
            spec,
            DefineDomain(vm_id, spec, "definition edited by hand"),
            Outcome.REDEFINED,
            "the next-boot definition was edited outside Git; put back",
        )
    return Definition(spec, DefineDomain(vm_id, spec, "spec changed"), Outcome.REDEFINED)


def _with_bookkeeping(spec: DomainSpec, config_meta: DomainMetadata) -> DomainSpec:
    """The spec carrying the run-policy bookkeeping of the definition it replaces: it
    lives on across redefinitions."""
    meta = spec.metadata
    if (
        meta.stopped_manually == config_meta.stopped_manually
        and meta.completed_operations == config_meta.completed_operations
        and meta.created == config_meta.created
    ):
        return spec
    # The desired spec is the same object pass after pass (desired.py's memo), and so is
    # the definition read back: the spec they make is kept, so no pass makes it again.
    kept = _BOOKKEPT.get(spec, config_meta)
    if kept is not None:
        return kept
    made = replace(
        spec,
        metadata=replace(
            meta,
            stopped_manually=config_meta.stopped_manually,
            completed_operations=config_meta.completed_operations,
            created=config_meta.created,
        ),
    )
    return _BOOKKEPT.put((spec, config_meta), made)


_BOOKKEPT: IdentityMemo[DomainSpec] = IdentityMemo()
