"""An operation's state written into a domain's next-boot metadata (engine/operations.py)."""

from __future__ import annotations

import libvirt

from reconciler.engine.operations.execute import Record, recorded
from reconciler.libvirt.facts import parse_definition
from reconciler.libvirt.metadata import metadata_xml
from reconciler.model.domain import METADATA_NAMESPACE, METADATA_PREFIX


class NotOurDomain(Exception):
    """The domain carries no metadata of this project: nothing to record into."""


def write_record(
    domain: libvirt.virDomain,
    key: str,
    record: Record,
    stopped_manually: bool | None,
    target: str = "",
) -> int:
    """Record the operation's state; the number of libvirt changes made (0 or 1).

    Read, changed and written back whole: the element is the daemon's only memory, and
    only the bookkeeping of this one operation (and the flag it sets) may change in it.
    The persistent definition alone is written (AFFECT_CONFIG): the running instance's
    copy keeps saying which operations were recorded before it started.
    """
    meta = parse_definition(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).metadata
    if meta is None:
        raise NotOurDomain(f"{domain.name()} has no reconciler metadata to record {key} in")
    wanted = recorded(meta, key, record, stopped_manually, target)
    if wanted == meta:
        return 0
    domain.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        metadata_xml(wanted),
        METADATA_PREFIX,
        METADATA_NAMESPACE,
        libvirt.VIR_DOMAIN_AFFECT_CONFIG,
    )
    return 1
