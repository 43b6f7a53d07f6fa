"""The status/ tree that every host of a fleet writes into: its own reports, nobody else's.

Each VM is reported by exactly one host (the one placement gives it to), so a host
writes the reports of the VMs in its plan and removes only reports that are stale
by its own knowledge: a VM it reported and no longer does, or a VM that is gone
from the repository. The README is derived from the files themselves, so any host
regenerating it from the same tree writes the same bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.api import ObjectId
from reconciler.api.node import NODE_API_VERSION, Node
from reconciler.engine.network.addressing import Addressing
from reconciler.engine.operations.generated import (
    GENERATED_PREFIXES,
    GeneratedOperation,
    read_generated,
)
from reconciler.engine.plan import Plan, PlanContext
from reconciler.engine.vm.desired import HostContext
from reconciler.model.phases import VMPhase
from reconciler.reports.addresses import timestamp, write_address_reports
from reconciler.reports.conditions import carry_condition_times
from reconciler.reports.documents import (
    read_document,
    read_previous,
    report_object_id,
    status_document,
    status_path,
    write_if_changed,
    write_report,
)
from reconciler.reports.summary import fleet_readme, node_status
from reconciler.reports.written import WRITTEN

VM_FOLDER = "virtualmachines"
NODE_KIND = Node.KIND


def write_host_reports(
    root: Path,
    plan: Plan,
    host: HostContext,
    revision: str,
    last_error: str = "",
    desired_vms: set[ObjectId] | None = None,
    addressing: Addressing | None = None,
    moment: datetime | None = None,
    present: set[ObjectId] | None = None,
) -> list[Path]:
    """Write this host's reports under root; returns the files changed or removed.

    desired_vms: every VM of the revision, or None when it is not known for sure
    (an unreadable file): then no report is removed at all. addressing: the pass's IP
    allocation, whose vmip and lease reports every host writes alike. present: every
    object of the revision (revision_objects), None when not known for sure.
    """
    moment = moment or datetime.now(UTC)
    now = timestamp(moment)
    changed: list[Path] = []
    documents: dict[ObjectId, dict[str, Any]] = {}
    written = WRITTEN.of(root)
    for object_id, status in sorted(plan.statuses.items()):
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
    # Read once for both: the stale ones go, the README shows the rest.
    vm_reports = _vm_reports(root)
    removed = _remove_stale(root, host.node_name, set(plan.statuses), desired_vms, vm_reports)
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
    gone = set(removed)
    changed.extend(_write_readme(root, [r for r in vm_reports if r[0] not in gone]))
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
    present: set[ObjectId] | None,
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
            path.unlink()
            changed.append(path)
            _remove_if_empty(path.parent)
    if present is None:
        return changed
    present = present - retired
    for kind in REPORTED_KINDS:
        folder = status_path(root, ObjectId(kind, "ns", "x")).parent.parent
        for path in sorted(folder.glob("*/*.yaml")):
            reported = report_object_id(path, kind, namespaced=True)
            if reported is not None and (reported in present or reported in reports):
                continue
            if reported is not None and _made_by_a_host(path, reported):
                # Its report is all of it, and only the host that made it retires it:
                # another host's view may be a push older than the tree it writes into.
                continue
            path.unlink()
            changed.append(path)
            _remove_if_empty(path.parent)
    return changed


def _made_by_a_host(path: Path, operation: ObjectId) -> bool:
    """Whether the report is an operation a host made (engine/operations/generated.py)."""
    if operation.kind != "VirtualMachineOperation" or not operation.name.startswith(
        GENERATED_PREFIXES
    ):
        return False
    document = read_document(path)
    return isinstance(document, dict) and read_generated(document, operation) is not None


def revision_objects(context: PlanContext) -> set[ObjectId] | None:
    """Every object of the revision, or None when a file could not be read."""
    if context.unreadable_files:
        return None
    return {loaded.id for loaded in context.inventory.objects} | set(context.broken)


def desired_vms(context: PlanContext) -> set[ObjectId] | None:
    """Every VM of the revision, or None when a file could not be read (a VM that is
    only unreadable keeps its report)."""
    if context.unreadable_files:
        return None
    vms = {loaded.id for loaded in context.inventory.objects if loaded.id.kind == "VirtualMachine"}
    return vms | {object_id for object_id in context.broken if object_id.kind == "VirtualMachine"}


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
    desired_vms: set[ObjectId] | None,
    vm_reports: list[_VMReport],
) -> list[Path]:
    removed: list[Path] = []
    if desired_vms is None:
        # Some file could not be read: a VM missing from this pass may only be
        # unreadable, still running as it was. Its report stays until Git is whole.
        return removed
    for path, object_id, document in vm_reports:
        if object_id is not None and object_id in reported:
            continue
        # A file no VM's report is ever written at is gone from Git too.
        gone_from_git = object_id is None or object_id not in desired_vms
        status = document.get("status") if isinstance(document, dict) else None
        mine = isinstance(status, dict) and status.get("nodeName") == node_name
        # A VM that left by live migration keeps its report until the host it went to
        # writes its own: without one, another host could place and start it anew.
        handed_over = isinstance(status, dict) and status.get("phase") == VMPhase.MIGRATING
        if gone_from_git or (mine and not handed_over):
            path.unlink()
            removed.append(path)
            _remove_if_empty(path.parent)
    return removed


def _remove_if_empty(folder: Path) -> None:
    """A namespace's folder goes with its last report: Git forgets empty folders, and a
    `--status-dir` tree should look the same as the committed one."""
    with contextlib.suppress(OSError):  # not empty: other reports of the namespace remain
        folder.rmdir()


_VMReport = tuple[Path, ObjectId | None, Any]


def _vm_reports(root: Path) -> list[_VMReport]:
    found = []
    for path in sorted((root / VM_FOLDER).glob("*/*.yaml")):
        object_id = report_object_id(path, "VirtualMachine", namespaced=True)
        found.append((path, object_id, _read(path)))
    return found


def _read(path: Path) -> Any:
    return read_document(path)


def _write_readme(root: Path, vm_reports: list[_VMReport] | None = None) -> list[Path]:
    statuses: dict[ObjectId, dict[str, Any]] = {}
    created: dict[ObjectId, str] = {}
    for _path, object_id, document in _vm_reports(root) if vm_reports is None else vm_reports:
        if object_id is None or not isinstance(document, dict):
            continue
        status = document.get("status")
        statuses[object_id] = status if isinstance(status, dict) else {}
        metadata = document.get("metadata")
        if isinstance(metadata, dict):
            created[object_id] = str(metadata.get("creationTimestamp", "") or "")
    nodes = {}
    for path in sorted((root / "nodes").glob("*.yaml")):
        node_id = report_object_id(path, NODE_KIND, namespaced=False)
        if node_id is None:
            continue
        document = _read(path)
        status = document.get("status") if isinstance(document, dict) else None
        nodes[node_id.name] = status if isinstance(status, dict) else {}
    path = root / "README.md"
    return [path] if write_if_changed(path, fleet_readme(statuses, created, nodes)) else []
