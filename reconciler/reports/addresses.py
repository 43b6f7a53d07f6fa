"""Reports of VirtualMachineIPAddresses and their leases, and the leases read back.

The leases under status/ are the fleet's memory of which address is whose: every host
reads them before allocating and writes the allocation's result back. Every host
computes the same allocation from the same revision and reports, so every host writes
the same bytes; a lease's retention clock is the lastTransitionTime of its `Bound`
condition, which moves only when the lease flips between Bound and Released.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.api import ObjectId
from reconciler.engine.network.addressing import Addressing
from reconciler.ipam.model import Allocation, Lease, PreviousLease
from reconciler.ipam.naming import lease_address
from reconciler.model.conditions import AddressCondition, AddressReason, mark_false, mark_true
from reconciler.model.phases import LeasePhase
from reconciler.reports.conditions import carry_condition_times
from reconciler.reports.documents import (
    read_document,
    read_previous,
    remove_report,
    status_document,
    status_path,
    write_report,
)
from reconciler.reports.status_index import FileSignature, index_of
from reconciler.reports.status_index import changed as tell_index

VMIP_KIND = "VirtualMachineIPAddress"
LEASE_KIND = "VirtualMachineIPAddressLease"
VMIP_FOLDER = "virtualmachineipaddresses"
LEASE_FOLDER = "virtualmachineipaddressleases"
# A Released lease keeps only the namespace in its reference, as the platform's does; the
# vmip it served is kept beside it, so that a vmip of that name can take it back.
RELEASED_FROM = "releasedFromVirtualMachineIPAddress"


def lease_path(root: Path, name: str) -> Path:
    # Cluster-wide, and not a manifest kind of its own: status/PLURAL/NAME.yaml by hand.
    return root / LEASE_FOLDER / f"{name}.yaml"


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    with contextlib.suppress(ValueError):
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


_Signature = tuple[tuple[str, FileSignature], ...]

# The report files of each kind here: its folder, and whether it holds namespace folders.
_FOLDERS = ((VMIP_FOLDER, True), (LEASE_FOLDER, False))


def _listed(root: Path, folders: Iterable[tuple[str, bool]]) -> _Signature:
    """The files under the folders, with what the file system says of each (lstat, from
    the pass's index of the tree, status_index.py): a pass over a thousand unchanged
    reports compares this instead of reading them all."""
    index = index_of(root)
    return tuple(
        (name, entry.signature)
        for folder, nested in folders
        for name, entry in index.listing(os.path.join(root, folder), nested)
    )


# The leases last read under a root, and the report files last left under a root with the
# allocation they were written from; both keyed by the root, valid while the signature holds.
_READ: dict[Path, tuple[_Signature, tuple[PreviousLease, ...]]] = {}
_WRITTEN: dict[Path, tuple[_Signature, Allocation]] = {}


def read_leases(root: Path) -> tuple[PreviousLease, ...]:
    """Every lease the reports under root hold; a damaged file is skipped (it loses its
    lease, exactly as if the report were gone)."""
    signature = _listed(root, [(LEASE_FOLDER, False)])
    known = _READ.get(root)
    if known is not None and known[0] == signature:
        return known[1]
    leases = _read_leases(Path(name) for name, _signature in signature)
    _READ[root] = (signature, leases)
    return leases


def _read_leases(paths: Iterable[Path]) -> tuple[PreviousLease, ...]:
    found: list[PreviousLease] = []
    for path in paths:
        address = lease_address(path.stem)
        document = read_document(path)
        status = document.get("status") if isinstance(document, dict) else None
        if address is None or not isinstance(status, dict):
            continue
        ref = status.get("virtualMachineIPAddressRef")
        namespace = ref.get("namespace") if isinstance(ref, dict) else None
        if not isinstance(namespace, str) or not namespace:
            continue
        try:
            phase = LeasePhase(status.get("phase", LeasePhase.BOUND))
        except ValueError:
            continue
        if phase is LeasePhase.BOUND:
            name = ref.get("name") if isinstance(ref, dict) else None
            found.append(PreviousLease(address, namespace, str(name or "") or None, phase))
            continue
        bound = next(
            (
                c
                for c in status.get("conditions", [])
                if isinstance(c, dict) and c.get("type") == AddressCondition.BOUND
            ),
            {},
        )
        found.append(
            PreviousLease(
                address,
                namespace,
                str(status.get(RELEASED_FROM) or "") or None,
                phase,
                _parse_time(bound.get("lastTransitionTime")),
            )
        )
    return tuple(found)


def _lease_status(lease: Lease, now: str) -> dict[str, Any]:
    ref: dict[str, Any] = {"namespace": lease.namespace}
    if lease.phase is LeasePhase.BOUND:
        if lease.vmip_name:
            ref["name"] = lease.vmip_name
        condition = mark_true(AddressCondition.BOUND, AddressReason.BOUND)
    else:
        condition = mark_false(
            AddressCondition.BOUND,
            AddressReason.RELEASED,
            "its vmip is gone; the namespace keeps the address until retention ends",
        )
    status: dict[str, Any] = {"phase": str(lease.phase), "address": lease.address}
    status["virtualMachineIPAddressRef"] = ref
    if lease.phase is LeasePhase.RELEASED and lease.vmip_name:
        status[RELEASED_FROM] = lease.vmip_name
    since = now
    if lease.phase is LeasePhase.RELEASED and lease.released_at is not None:
        since = timestamp(lease.released_at)
    status["conditions"] = [condition.as_dict(since)]
    return status


def write_address_reports(root: Path, addressing: Addressing, now: datetime) -> list[Path]:
    """Write every vmip and lease report and remove those the allocation no longer has;
    returns the files changed. A partial allocation (part of the revision unreadable)
    changes nothing: the reports keep what the last whole revision decided."""
    if addressing.partial:
        return []
    allocation = addressing.allocation
    known = _WRITTEN.get(root)
    if known is not None and known[1] == allocation and known[0] == _listed(root, _FOLDERS):
        return []  # the reports are the very files this allocation left last time
    changed = _write_address_reports(root, allocation, timestamp(now))
    _WRITTEN[root] = (_listed(root, _FOLDERS), allocation)
    return changed


def _write_address_reports(root: Path, allocation: Allocation, now_text: str) -> list[Path]:
    changed: list[Path] = []
    wanted: set[Path] = set()
    for vmip in allocation.vmips:
        object_id = ObjectId(VMIP_KIND, vmip.namespace, vmip.name)
        path = status_path(root, object_id)
        status = vmip.as_dict(now_text)
        status["type"] = str(vmip.type)
        if vmip.generated:
            status["generated"] = True
        previous = read_previous(root, object_id)
        document = status_document(object_id, carry_condition_times(status, previous, now_text))
        wanted.add(path)
        if write_report(path, document):
            changed.append(path)
    for lease in allocation.leases:
        object_id = ObjectId(LEASE_KIND, "", lease.name)
        path = lease_path(root, lease.name)
        previous = read_document(path)
        earlier = previous.get("status") if isinstance(previous, dict) else None
        status = carry_condition_times(
            _lease_status(lease, now_text), earlier if isinstance(earlier, dict) else None, now_text
        )
        wanted.add(path)
        if write_report(path, status_document(object_id, status)):
            changed.append(path)
    for name, _signature in _listed(root, _FOLDERS):
        path = Path(name)
        if path not in wanted:
            changed.append(remove_report(path))
            with contextlib.suppress(OSError):  # still holds reports of other objects
                path.parent.rmdir()
                tell_index([path.parent])
    return changed
