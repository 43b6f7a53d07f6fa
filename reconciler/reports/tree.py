"""The status/ tree that every host of a fleet writes into: its own reports, nobody else's.

Each VM is reported by exactly one host (the one placement gives it to), so a host
writes the reports of the VMs in its plan and removes only reports that are stale
by its own knowledge: a VM it reported and no longer does, or a VM that is gone
from the repository. The README is derived from the files themselves, so any host
regenerating it from the same tree writes the same bytes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.api import ObjectId, VirtualMachine
from reconciler.api.node import NODE_API_VERSION, Node
from reconciler.engine.network.addressing import Addressing
from reconciler.engine.operations.generated import (
    GENERATED_PREFIXES,
    GeneratedOperation,
    read_generated,
)
from reconciler.engine.plan import Plan, PlanContext
from reconciler.engine.vm.desired import HostContext
from reconciler.reports.addresses import timestamp, write_address_reports
from reconciler.reports.conditions import carry_condition_times
from reconciler.reports.documents import (
    read_document,
    read_previous,
    remove_report,
    report_object_id,
    status_document,
    status_path,
    write_if_changed,
    write_report,
)
from reconciler.reports.reported import ObjectReports, vm_summary
from reconciler.reports.scan import PerReport, Tally
from reconciler.reports.status_index import changed as tell_index
from reconciler.reports.status_index import index_of
from reconciler.reports.summary import node_status, readme_of_lines
from reconciler.reports.written import WRITTEN

VM_FOLDER = "virtualmachines"
NODE_KIND = Node.KIND


def write_host_reports(
    root: Path,
    plan: Plan,
    host: HostContext,
    revision: str,
    last_error: str = "",
    desired_vms: AbstractSet[ObjectId] | None = None,
    addressing: Addressing | None = None,
    moment: datetime | None = None,
    present: AbstractSet[ObjectId] | None = None,
    step: Callable[[str, int, int], None] | None = None,
) -> list[Path]:
    """Write this host's reports under root; returns the files changed or removed.

    desired_vms: every VM of the revision, or None when it is not known for sure
    (an unreadable file): then no report is removed at all. addressing: the pass's IP
    allocation, whose vmip and lease reports every host writes alike. present: every
    object of the revision (revision_objects), None when not known for sure. `step`
    hears how many VM reports are written (reconciler.progress).
    """
    moment = moment or datetime.now(UTC)
    now = timestamp(moment)
    changed: list[Path] = []
    documents: dict[ObjectId, dict[str, Any]] = {}
    written = WRITTEN.of(root)
    for done, (object_id, status) in enumerate(sorted(plan.statuses.items())):
        if step is not None:
            step("VM reports written", done, len(plan.statuses))
        kept = written.unchanged(object_id, status)
        if kept is not None:
            documents[object_id] = kept
            continue
        path = status_path(root, object_id)
        documents[object_id] = status.as_dict(now, read_previous(root, object_id))
        document = status_document(object_id, documents[object_id], status.created)
        if write_report(path, document):
            changed.append(path)
        written.note(object_id, status, path, documents[object_id])
    written.keep(plan.statuses)
    # The VM reports as this host's own writes left them: after the stale ones go, what
    # is left is what the README is made of.
    removed = _remove_stale(root, host.node_name, set(plan.statuses), desired_vms)
    changed.extend(removed)
    changed.extend(
        write_object_reports(
            root,
            plan.object_reports,
            present,
            now,
            made=plan.generated_operations,
            retired=plan.retired_operations,
        )
    )
    node = node_status(
        host.node_name,
        host.cpu_capacity_millicores,
        documents,
        revision,
        last_error,
        host.memory_capacity_bytes,
    )
    if plan.drain is not None:
        node["drain"] = plan.drain
    if plan.strays:  # copies of VMs other hosts run, for the operator (engine/fleet/strays.py)
        node["strayDomains"] = [stray.report() for stray in plan.strays]
    changed.extend(_write_node(root, host.node_name, node))
    if addressing is not None:
        changed.extend(write_address_reports(root, addressing, moment))
    changed.extend(_write_readme(root))
    return changed


# Kinds whose reports come from Plan.object_reports; a report of one of these kinds is
# removed when its object is gone from a whole revision.
REPORTED_KINDS = (
    "VirtualMachineOperation",
    "VirtualDisk",
    "VirtualMachineBlockDeviceAttachment",
)


def write_object_reports(
    root: Path,
    reports: dict[ObjectId, dict[str, Any]],
    present: AbstractSet[ObjectId] | None,
    now: str,
    made: Mapping[ObjectId, GeneratedOperation] | None = None,
    retired: frozenset[ObjectId] = frozenset(),
) -> list[Path]:
    """Write the reports of operations, disks and attachments; remove those whose object
    is no longer in the revision (`present`, None when unknown: then none is removed).

    The report of an operation a host made (`made`) carries the operation too; those of
    this host's that are finished with (`retired`) go.
    Condition times are carried over from the earlier report unless the status flipped.
    """
    changed: list[Path] = []
    made = made or {}
    written = WRITTEN.of(root, "objects")
    for object_id, status in sorted(reports.items()):
        content = (status, made.get(object_id))
        if written.unchanged(object_id, content) is not None:
            continue
        previous = read_previous(root, object_id)
        document = status_document(object_id, carry_condition_times(status, previous, now))
        if object_id in made:
            status_block = document.pop("status")
            document = {**document, **made[object_id].document_fields(), "status": status_block}
        path = status_path(root, object_id)
        if write_report(path, document):
            changed.append(path)
        written.note(object_id, content, path, document)
    written.keep(reports)
    for object_id in sorted(retired - set(reports)):
        path = status_path(root, object_id)
        if path.is_file():
            changed.append(remove_report(path))
            _remove_if_empty(path.parent)
    if present is None:
        return changed
    for kind in REPORTED_KINDS:
        for name, reported in stale_object_reports(root, kind, reports, present, retired):
            path = Path(name)
            if reported is not None and _made_by_a_host(path, reported):
                # Its report is all of it, and only the host that made it retires it:
                # another host's view may be a push older than the tree it writes into.
                continue
            changed.append(remove_report(path))
            _remove_if_empty(path.parent)
    return changed


def stale_object_reports(
    root: Path,
    kind: str,
    reports: Mapping[ObjectId, object],
    present: AbstractSet[ObjectId],
    retired: AbstractSet[ObjectId],
) -> list[tuple[str, ObjectId | None]]:
    """The report files of `kind` whose objects are gone from the revision (`present`) or
    retired, and which this pass does not report, with their objects (None: a file no
    report is ever written at), in the listing's order."""
    folder = status_path(root, ObjectId(kind, "ns", "x")).parent.parent
    tally = _REPORTED[kind].over(folder)
    files = tally.files
    # The thousands of others are not looked at one by one.
    gone = (tally.absent(present) | (files.keys() & retired)) - reports.keys()
    stale: list[tuple[str, ObjectId | None]] = [(name, None) for name in tally.unnamed]
    stale += [(files[object_id], object_id) for object_id in gone]
    return sorted(stale, key=_listed_order)


def _reported(kind: str) -> Tally[ObjectId | None, ObjectReports]:
    ids = PerReport(lambda path: report_object_id(path, kind, namespaced=True))
    return Tally(ids, ObjectReports)


# Per kind: the object each report file is of (derived once per file that changed).
_REPORTED = {kind: _reported(kind) for kind in REPORTED_KINDS}


def _listed_order(found: tuple[str, object]) -> tuple[str, str]:
    """Where a report file (with what it says) comes in the listing of its folder."""
    return os.path.split(found[0])


def _made_by_a_host(path: Path, operation: ObjectId) -> bool:
    """Whether the report is an operation a host made (engine/operations/generated.py)."""
    if operation.kind != "VirtualMachineOperation" or not operation.name.startswith(
        GENERATED_PREFIXES
    ):
        return False
    document = read_document(path)
    return isinstance(document, dict) and read_generated(document, operation) is not None


def revision_objects(context: PlanContext) -> AbstractSet[ObjectId] | None:
    """Every object of the revision, or None when a file could not be read."""
    if context.unreadable_files:
        return None
    # The inventory's identities, made once for as long as no object comes or goes.
    found = context.inventory.ids()
    return found | frozenset(context.broken) if context.broken else found


def desired_vms(context: PlanContext) -> AbstractSet[ObjectId] | None:
    """Every VM of the revision, or None when a file could not be read (a VM that is
    only unreadable keeps its report)."""
    if context.unreadable_files:
        return None
    vms = context.inventory.ids(VirtualMachine.KIND)
    broken = {object_id for object_id in context.broken if object_id.kind == VirtualMachine.KIND}
    return vms | broken if broken else vms


def write_node_report(root: Path, host: HostContext, revision: str, error: str) -> list[Path]:
    """Only the host's own report, with the error that kept the pass from running;
    the VM reports stay as the last pass left them."""
    path = _node_path(root, host.node_name)
    previous = _read(path)
    status = previous.get("status") if isinstance(previous, dict) else None
    if isinstance(status, dict):
        node = {**status, "lastError": error}
    else:
        node = node_status(
            host.node_name,
            host.cpu_capacity_millicores,
            {},
            revision,
            error,
            host.memory_capacity_bytes,
        )
    changed = _write_node(root, host.node_name, node)
    changed.extend(_write_readme(root))
    return changed


def _write_node(root: Path, node_name: str, node: dict[str, Any]) -> list[Path]:
    document = {
        "apiVersion": NODE_API_VERSION,
        "kind": "Node",
        "metadata": {"name": node_name},
        "status": node,
    }
    path = _node_path(root, node_name)
    return [path] if write_report(path, document) else []


def _node_path(root: Path, node_name: str) -> Path:
    return status_path(root, ObjectId(NODE_KIND, "", node_name))


def _remove_stale(
    root: Path,
    node_name: str,
    reported: set[ObjectId],
    desired_vms: AbstractSet[ObjectId] | None,
) -> list[Path]:
    removed: list[Path] = []
    if desired_vms is None:
        # Some file could not be read: a VM missing from this pass may only be
        # unreadable, still running as it was. Its report stays until Git is whole.
        return removed
    for name in stale_vm_reports(root, node_name, reported, desired_vms):
        path = Path(name)
        removed.append(remove_report(path))
        _remove_if_empty(path.parent)
    return removed


def stale_vm_reports(
    root: Path,
    node_name: str,
    reported: AbstractSet[ObjectId],
    desired_vms: AbstractSet[ObjectId],
) -> list[str]:
    """The VM report files this host removes, in the listing's order: of VMs it does not
    report (`reported`) that are gone from the revision or that it last reported itself."""
    summary = vm_summary(root)
    files = summary.files
    # A file no VM's report is ever written at is gone from Git too; so is a VM missing
    # from the revision.
    stale = dict.fromkeys(summary.unnamed)
    stale.update(dict.fromkeys(files[vm_id] for vm_id in summary.absent(desired_vms) - reported))
    # A VM that left by live migration keeps its report until the host it went to
    # writes its own: without one, another host could place and start it anew.
    for name, vm_id in summary.staying.get(node_name, {}).items():
        if vm_id is None or vm_id not in reported:
            stale[name] = None
    return sorted(stale, key=os.path.split)


def _remove_if_empty(folder: Path) -> None:
    """A namespace's folder goes with its last report: Git forgets empty folders, and a
    `--status-dir` tree should look the same as the committed one."""
    with contextlib.suppress(OSError):  # not empty: other reports of the namespace remain
        folder.rmdir()
        tell_index([folder])


def _read(path: Path) -> Any:
    return read_document(path)


def _write_readme(root: Path) -> list[Path]:
    """status/README.md from the VM reports as they are now."""
    rows = vm_summary(root).readme_rows()
    nodes = {}
    for name, _entry in index_of(root).listing(os.path.join(root, "nodes"), nested=False):
        path = Path(name)
        node_id = report_object_id(path, NODE_KIND, namespaced=False)
        if node_id is None:
            continue
        document = _read(path)
        status = document.get("status") if isinstance(document, dict) else None
        nodes[node_id.name] = status if isinstance(status, dict) else {}
    path = root / "README.md"
    return [path] if write_if_changed(path, readme_of_lines(rows, nodes)) else []
