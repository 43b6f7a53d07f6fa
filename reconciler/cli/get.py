"""`reconciler get` and `reconciler describe vm`: the objects of a checkout as `d8 k` shows them.

The source is the checkout's status reports (SPEC §7) joined with its manifests, or,
with --libvirt-uri, a plan pass against that libvirt: what the host would report now.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.api import DEFAULT_NAMESPACE, GROUP_VERSION, PLURALS, ObjectId
from reconciler.cli.common import engine_options, repository_dir
from reconciler.cli.describe import describe_vm
from reconciler.cli.tables import Listed, object_table
from reconciler.cli.terminal import emit, escaped_listed
from reconciler.loader import load_directory
from reconciler.model.phases import LeasePhase, VMIPPhase
from reconciler.reports.documents import read_document, render, report_object_id

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
LIST_VERSION = "v1"


@dataclass(frozen=True)
class ResourceKind:
    """A kind as the command line names it: kubectl's singular, plural and short names."""

    kind: str
    plural: str
    namespaced: bool
    api_version: str
    short_names: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.kind.lower(), self.plural, *self.short_names)


# Leases are the cluster's own bookkeeping, with no manifest: `get vmipl` shows their
# reports, and for a status tree written before leases were reported, the ones the VMs'
# reported addresses imply (reference/dvp-api.md, VirtualMachineIPAddressLease).
LEASE = ResourceKind(
    "VirtualMachineIPAddressLease",
    "virtualmachineipaddressleases",
    False,
    GROUP_VERSION,
    ("vmipl", "vmipls"),
)
# The kinds `get` lists, as their models name them (tests/cli/test_get.py proves they
# agree): written out, so that resolving `vm` does not import every kind's models.
VM_KIND = "VirtualMachine"
RESOURCE_KINDS: tuple[ResourceKind, ...] = (
    *(
        ResourceKind(kind, PLURALS[kind], namespaced, GROUP_VERSION, short_names)
        for kind, namespaced, short_names in (
            (VM_KIND, True, ("vm", "vms")),
            ("VirtualMachineClass", False, ("vmclass", "vmc")),
            ("VirtualMachineIPAddress", True, ("vmip", "vmips")),
            ("VirtualDisk", True, ("vd", "vds")),
            ("VirtualMachineOperation", True, ("vmop", "vmops")),
            ("VirtualMachineBlockDeviceAttachment", True, ("vmbda", "vmbdas")),
        )
    ),
    LEASE,
)


def resolve_kind(text: str) -> ResourceKind | None:
    """vm, vms, virtualmachine, virtualmachines, VirtualMachine, or plural.group."""
    name = text.lower()
    group = GROUP_VERSION.split("/")[0]
    name = name.removesuffix(f".{group}")
    return next((kind for kind in RESOURCE_KINDS if name in kind.names), None)


def get_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the objects of a kind from the status reports and manifests of"
        " a checkout, or with --libvirt-uri the VMs as a plan pass sees them now."
    )
    parser.add_argument("kind", metavar="KIND", help="vm, vmclass, vmip, vmipl, vd, vmop or vmbda")
    parser.add_argument("names", nargs="*", metavar="NAME")
    parser.add_argument("-o", "--output", choices=("wide", "yaml", "json"))
    _source_arguments(parser)
    parser.set_defaults(run=run_get)


def describe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", metavar="KIND", help="vm")
    parser.add_argument("names", nargs=1, metavar="NAME")
    _source_arguments(parser)
    parser.set_defaults(run=run_describe)


def _source_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", default=DEFAULT_NAMESPACE, metavar="NAMESPACE")
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list across all namespaces"
    )
    parser.add_argument(
        "--dir",
        default=".",
        type=repository_dir,
        metavar="DIR",
        help="the checkout whose status/ and manifests are read (default: .)",
    )
    engine_options(
        parser, "read the VMs live from a plan pass against this libvirt, not from status/"
    )


# --- Where the objects come from ---------------------------------------------------------


def report_documents(status_root: Path, kind: ResourceKind) -> Iterable[tuple[ObjectId, Any]]:
    """Every report of a kind under status_root, as written by status/documents.py."""
    folder = status_root / kind.plural
    pattern = "*/*.yaml" if kind.namespaced else "*.yaml"
    for path in sorted(folder.glob(pattern)):
        object_id = report_object_id(path, kind.kind, kind.namespaced)
        if object_id is not None:
            yield object_id, read_document(path)


def _status_and_created(document: Any) -> tuple[dict[str, Any], str]:
    if not isinstance(document, Mapping):
        return {}, ""
    status = document.get("status")
    metadata = document.get("metadata")
    created = metadata.get("creationTimestamp", "") if isinstance(metadata, Mapping) else ""
    return (dict(status) if isinstance(status, Mapping) else {}), str(created or "")


def manifests_of(root: Path, kind: ResourceKind) -> dict[ObjectId, Listed]:
    listed: dict[ObjectId, Listed] = {}
    # Only this kind's documents are validated: the others' validators are never built.
    for loaded in load_directory(root, kinds=(kind.kind,)).objects:
        if loaded.id.kind == kind.kind:
            manifest = loaded.model.to_manifest()
            listed[loaded.id] = Listed(loaded.id, kind.api_version, manifest=manifest)
    return listed


def from_checkout(root: Path, kind: ResourceKind) -> dict[ObjectId, Listed]:
    """Manifests joined with their reports; a report without a manifest is listed too."""
    listed = manifests_of(root, kind)
    for object_id, document in report_documents(root / "status", kind):
        status, created = _status_and_created(document)
        known = listed.get(object_id) or Listed(object_id, kind.api_version)
        listed[object_id] = replace(known, status=status, created=created)
    if kind.kind in ("VirtualMachineIPAddress", LEASE.kind):
        vm_kind = resolve_kind(VM_KIND)
        assert vm_kind is not None
        vm_reports = report_documents(root / "status", vm_kind)
        _add_implied_addresses(listed, kind, vm_reports)
    return listed


def _add_implied_addresses(
    listed: dict[ObjectId, Listed],
    kind: ResourceKind,
    vm_reports: Iterable[tuple[ObjectId, Any]],
) -> None:
    """The vmip a VM reports is Attached to it, and its lease Bound; where no report of
    the address itself exists, the VM's report stands in for it."""
    for vm_id, document in vm_reports:
        status, created = _status_and_created(document)
        address = str(status.get("ipAddress", "") or "")
        vmip_name = str(status.get("virtualMachineIPAddressName", "") or "")
        if not address or not vmip_name:
            continue
        if kind.kind == LEASE.kind:
            object_id = ObjectId(kind.kind, "", "ip-" + address.replace(".", "-"))
            spec = {"virtualMachineIPAddressRef": {"name": vmip_name, "namespace": vm_id.namespace}}
            implied = {"phase": str(LeasePhase.BOUND)}
            manifest: Mapping[str, Any] | None = {"spec": spec}
        else:
            object_id = ObjectId(kind.kind, vm_id.namespace, vmip_name)
            implied = {
                "address": address,
                "phase": str(VMIPPhase.ATTACHED),
                "virtualMachineName": vm_id.name,
            }
            manifest = None
        known = listed.get(object_id) or Listed(object_id, kind.api_version, manifest=manifest)
        if known.status is None:
            listed[object_id] = replace(known, status=implied, created=known.created or created)


# Kinds whose reports a plan pass makes besides the VMs' (Plan.object_reports).
LIVE_REPORTED = ("VirtualDisk", "VirtualMachineBlockDeviceAttachment")


def from_libvirt(args: argparse.Namespace, kind: ResourceKind) -> dict[ObjectId, Listed] | int:
    """The VMs, disks or attachments as `reconciler plan` sees them on args.libvirt_uri,
    changing nothing."""
    if kind.kind not in (VM_KIND, *LIVE_REPORTED):
        print(
            "reconciler: --libvirt-uri lists VirtualMachines, VirtualDisks and"
            " VirtualMachineBlockDeviceAttachments only",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # Imported here, for start-up speed: the engine is for --libvirt-uri, not the reports.
    from reconciler.cli.engine import plan_pass

    outcome = plan_pass(args)
    if isinstance(outcome, int):
        return outcome
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    listed: dict[ObjectId, Listed] = {}
    if kind.kind in LIVE_REPORTED:
        for object_id, report in outcome.statuses_plan.object_reports.items():
            if object_id.kind != kind.kind:
                continue
            loaded = outcome.context.inventory.get(object_id)
            manifest = loaded.model.to_manifest() if loaded else None
            listed[object_id] = Listed(object_id, kind.api_version, manifest, report)
        return listed
    for object_id, vm_status in outcome.statuses_plan.statuses.items():
        loaded = outcome.context.inventory.get(object_id)
        listed[object_id] = Listed(
            object_id,
            kind.api_version,
            manifest=loaded.model.to_manifest() if loaded else None,
            status=vm_status.as_dict(now, None),
            created=vm_status.created,
        )
    return listed


def _in_scope(listed: Listed, kind: ResourceKind, args: argparse.Namespace) -> bool:
    if not kind.namespaced or args.all_namespaces:
        return True
    return bool(listed.object_id.namespace == args.namespace)


def select(args: argparse.Namespace, kind: ResourceKind) -> list[Listed] | int:
    """The objects of the command's kind and namespace, sorted as kubectl lists them."""
    found = from_libvirt(args, kind) if args.libvirt_uri else from_checkout(args.dir, kind)
    if isinstance(found, int):
        return found
    chosen = [listed for listed in found.values() if _in_scope(listed, kind, args)]
    return sorted(chosen, key=lambda listed: listed.object_id)


# --- Printing ----------------------------------------------------------------------------


def not_found(kind: ResourceKind, name: str) -> str:
    return f'Error from server (NotFound): {kind.plural} "{name}" not found'


def no_resources(kind: ResourceKind, args: argparse.Namespace) -> str:
    if kind.namespaced and not args.all_namespaces:
        return f"No resources found in {args.namespace} namespace."
    return "No resources found"


def render_documents(documents: Sequence[dict[str, Any]], single: bool, fmt: str) -> str:
    """One object as itself, several (or a listing) as kubectl's `List`."""
    value: dict[str, Any]
    if single:
        value = documents[0]
    else:
        value = {
            "apiVersion": LIST_VERSION,
            "items": list(documents),
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        }
    if fmt == "json":
        return json.dumps(value, indent=4)
    return render(value).rstrip("\n")


def _named(
    items: list[Listed], names: Sequence[str], kind: ResourceKind
) -> tuple[list[Listed], list[str]]:
    """The objects called names, in the order given, and the names not found."""
    by_name = {listed.object_id.name: listed for listed in items}
    present = [by_name[name] for name in names if name in by_name]
    missing = [name for name in names if name not in by_name]
    return present, missing


def run_get(args: argparse.Namespace) -> int:
    kind = resolve_kind(args.kind)
    if kind is None:
        print(f'error: the server doesn\'t have a resource type "{args.kind}"', file=sys.stderr)
        return EXIT_USAGE
    selected = select(args, kind)
    if isinstance(selected, int):
        return selected
    items = selected
    missing: list[str] = []
    if args.names:
        items, missing = _named(selected, args.names, kind)
    _print_items(items, kind, args)
    for name in missing:
        print(not_found(kind, name), file=sys.stderr)
    return EXIT_NOT_FOUND if missing else 0


def _print_items(items: list[Listed], kind: ResourceKind, args: argparse.Namespace) -> None:
    if args.output in ("yaml", "json"):
        if items or not args.names:
            single = len(args.names) == 1
            documents = [listed.document() for listed in items]
            emit(render_documents(documents, single, args.output))
        return
    if not items:
        if not args.names:
            print(no_resources(kind, args), file=sys.stderr)
        return
    table = object_table(
        [escaped_listed(listed) for listed in items],
        wide=args.output == "wide",
        all_namespaces=kind.namespaced and args.all_namespaces,
        now=datetime.now(UTC),
    )
    emit(table)


def run_describe(args: argparse.Namespace) -> int:
    kind = resolve_kind(args.kind)
    if kind is None or kind.kind != VM_KIND:
        print(f"error: describe supports vm only, not {args.kind!r}", file=sys.stderr)
        return EXIT_USAGE
    selected = select(args, kind)
    if isinstance(selected, int):
        return selected
    items, missing = _named(selected, args.names, kind)
    if missing:
        print(not_found(kind, missing[0]), file=sys.stderr)
        return EXIT_NOT_FOUND
    emit(describe_vm(escaped_listed(items[0])))
    return 0
