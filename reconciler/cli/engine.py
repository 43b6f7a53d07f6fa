"""`reconciler plan` and `reconciler apply`: one pass of the engine against a libvirt URI."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.api import Node
from reconciler.cli.common import (
    add_require_encrypted_argument,
    engine_options,
    image_directories_from,
    pool_from,
    read_config,
    repository_dir,
    require_encrypted_from,
)
from reconciler.cli.revision import checked_out
from reconciler.cli.terminal import emit, escaped
from reconciler.engine.fleet.placement import host_capacity
from reconciler.engine.network.addressing import AddressInputs
from reconciler.engine.plan import Outcome, Plan
from reconciler.engine.reconcile import (
    PassResult,
    deletions_held_back,
    reconcile_once,
)
from reconciler.engine.vm.desired import HostContext
from reconciler.findings import Finding
from reconciler.libvirt.apply import Applier
from reconciler.libvirt.connection import LibvirtUnavailable, open_connection
from reconciler.libvirt.observe import Observer
from reconciler.loader import load_directory
from reconciler.model.migration import StorageMode
from reconciler.progress import Progress, for_stream
from reconciler.reports import status_index
from reconciler.reports.addresses import read_leases
from reconciler.reports.documents import check_reports, keep_every_read
from reconciler.reports.known import keep_known_reports, save_known_reports
from reconciler.reports.pass_inputs import read_plan_context
from reconciler.reports.tree import desired_vms, revision_objects, write_host_reports
from reconciler.reports.written import write_once
from reconciler.source.secrets import SecretOpener

if TYPE_CHECKING:
    # Only with --config, and then imported by read_config: 6 ms of every start.
    from reconciler.config import Config

EXIT_CHANGES = 3


def plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Compare the manifests under DIR with the domains libvirt runs and print"
        " what would be created, changed live, left awaiting restart, restarted or deleted."
    )
    _engine_arguments(parser)
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 3 when there are changes, 0 when there are none",
    )
    parser.set_defaults(run=run_plan, ends_its_process=True)


def apply_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Apply the manifests under DIR to libvirt once and write status reports."
    _engine_arguments(parser)
    parser.add_argument(
        "--status-dir", type=Path, metavar="OUT", help="write status reports under OUT"
    )
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    parser.set_defaults(run=run_apply, ends_its_process=True)


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", default=".", type=repository_dir, metavar="DIR")
    engine_options(parser, "default: the config's, else qemu:///system")
    add_require_encrypted_argument(parser)


def _domain_type(choice: str) -> str:
    if choice != "auto":
        return choice
    return "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"


def _host(
    args: argparse.Namespace,
    config: Config | None,
    info: Sequence[Any],
    nodes: list[Node],
) -> HostContext:
    """`info`: what virNodeGetInfo says of the host (its memory in MiB, its CPUs)."""
    node_name = args.node_name or (config.node_name if config else os.uname().nodename)
    millicores, memory = host_capacity(nodes, node_name, int(info[2]), int(info[1]) << 20)
    return HostContext(
        node_name=node_name,
        domain_type="qemu" if _domain_type(args.domain_type) == "qemu" else "kvm",
        storage_pool=args.storage_pool or (config.storage_pool if config else "default"),
        network=args.network or (config.network if config else None),
        cpu_capacity_millicores=millicores,
        memory_capacity_bytes=memory,
        change_profile=args.profile or (config.change_profile if config else "default"),
        node_labels=tuple(sorted(config.node_labels.items())) if config else (),
        image_directories=image_directories_from(args, config),
        migration_peers=tuple(config.migration_peers) if config is not None else (),
        migration_storage=config.migration_storage if config is not None else StorageMode.COPY,
    )


@contextmanager
def _collector_paused(args: argparse.Namespace) -> Iterator[None]:
    """A pass's objects (manifests, observation, plans) live until the command ends: the
    cyclic collector would walk them again and again, some 40 times in a no-op apply of
    100 VMs, to free nothing. Reference counting still frees what the pass drops. In a
    process started for the command they are frozen after it, as its imports are: the
    collection the collector would start at once, and the interpreter's last one, pass
    them by (some 15 ms at 100 VMs)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if getattr(args, "own_process", False):
            gc.freeze()
        if collecting:
            gc.enable()


def _run_pass(args: argparse.Namespace, *, apply: bool, steps: Progress) -> PassResult | int:
    if getattr(args, "own_process", False):
        keep_every_read()
    config = read_config(args)
    uri = args.libvirt_uri or (config.libvirt_uri if config else "qemu:///system")
    try:
        connection = open_connection(uri)
    except LibvirtUnavailable as error:
        print(f"reconciler: {error}", file=sys.stderr)
        return 1
    # Report texts rendered by earlier commands: unchanged reports are neither rendered
    # nor parsed again (reports/known.py).
    keep_known_reports(config.cache_dir if config else None)
    loaded = load_directory(args.dir, step=steps.step)
    nodes = [obj.model for obj in loaded.objects if isinstance(obj.model, Node)]
    host = _host(args, config, connection.getInfo(), nodes)
    pool = pool_from(args, config)
    # The leases of the reports this pass will write over, else of the repository's own.
    status_dir = getattr(args, "status_dir", None) or args.dir / "status"
    require_encrypted = require_encrypted_from(args, config)
    key_file = args.age_key_file or (config.age_key_file if config else None)
    secrets = SecretOpener(key_file, require_encrypted=require_encrypted).open(loaded)
    context = read_plan_context(
        loaded,
        host,
        args.revision or checked_out(args.dir),
        pool,
        status_root=args.dir / "status",
        addresses=AddressInputs(tuple(pool), read_leases(status_dir), datetime.now(UTC)),
        disk_reports_root=status_dir,
        secrets=secrets,
        require_encrypted_secrets=require_encrypted,
    )

    def progress(line: str) -> None:
        if apply:
            steps.interrupt()  # the action's line replaces the progress line
            emit(escaped(line), sys.stderr)

    runner = Applier(connection, progress=progress) if apply else None
    return reconcile_once(context, Observer(connection), runner, progress, steps.step)


def plan_pass(args: argparse.Namespace) -> PassResult | int:
    """The pass `reconciler plan` runs, changing nothing; an int is the exit code of a
    failure already reported."""
    steps = for_stream("plan", sys.stderr)
    try:
        with status_index.reading():
            return _run_pass(args, apply=False, steps=steps)
    finally:
        steps.finish()


def run_plan(args: argparse.Namespace) -> int:
    # One listing of each status tree for the command's readers (reports/status_index.py).
    with _collector_paused(args), status_index.reading():
        return _run_plan(args)


def _run_plan(args: argparse.Namespace) -> int:
    outcome = plan_pass(args)
    if isinstance(outcome, int):
        return outcome
    result = outcome
    emit(render_plan(result.plan, result.findings, args.format))
    _warn_held_back(result)
    if args.detailed_exitcode and result.plan.has_changes:
        return EXIT_CHANGES
    return 0


def run_apply(args: argparse.Namespace) -> int:
    with _collector_paused(args), status_index.reading():
        return _run_apply(args)


def _run_apply(args: argparse.Namespace) -> int:
    steps = for_stream("apply", sys.stderr)
    try:
        outcome = _run_pass(args, apply=True, steps=steps)
        if isinstance(outcome, int):
            return outcome
        _write_reports(args, outcome, steps)
    finally:
        steps.finish()
    result = outcome
    emit(render_plan(result.plan, result.findings, args.format))
    _warn_held_back(result)
    for failure in result.errors:
        emit(escaped(f"error: {failure.action.describe()}: {failure.error}"), sys.stderr)
    return 1 if result.errors else 0


def _write_reports(args: argparse.Namespace, result: PassResult, steps: Progress) -> None:
    """--status-dir: the host's reports of the pass, as the daemon writes them."""
    held_back = deletions_held_back(result.context, result.plan)
    if args.status_dir is not None:
        errors = ([held_back] if held_back else []) + [
            f"{e.action.describe()}: {e.error}" for e in result.errors
        ]
        # The reports the pass could not use (logged as they were met) were skipped; OUT
        # may be DIR/status itself, then read once.
        roots = dict.fromkeys(
            Path(os.path.abspath(r)) for r in (args.dir / "status", args.status_dir)
        )
        errors.extend(dict.fromkeys(line for root in roots for line in check_reports(root)))
        if getattr(args, "own_process", False):
            write_once()  # the process ends after the command: no later pass to skip for
        write_host_reports(
            args.status_dir,
            result.statuses_plan,
            result.context.host,
            result.context.revision,
            "; ".join(errors),
            desired_vms(result.context),
            result.context.addressing,
            result.context.addresses.now if result.context.addresses else None,
            revision_objects(result.context),
            steps.step,
        )
        save_known_reports()


def _warn_held_back(result: PassResult) -> None:
    """The daemon's warning when the revision deletes nothing (unreadable files, no
    objects), on stderr: a `--format json` plan stays parseable."""
    held_back = deletions_held_back(result.context, result.plan)
    if held_back:
        emit(escaped(f"warning: {held_back}"), sys.stderr)


def render_plan(plan: Plan, findings: list[Finding], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            {
                "changes": plan.has_changes,
                "vms": [
                    {
                        "object": str(vm.object_id),
                        "outcome": str(vm.outcome),
                        "actions": [action.describe() for action in vm.actions],
                        "details": vm.details,
                        "restartAwaitingChanges": (
                            plan.statuses[vm.object_id].restart_awaiting_changes
                            if vm.object_id in plan.statuses
                            else []
                        ),
                    }
                    for vm in plan.vms
                ],
                "notes": plan.notes,
                "findings": [finding.as_dict() for finding in findings],
            },
            indent=2,
        )
    changed = [vm for vm in plan.vms if vm.actions or vm.outcome is not Outcome.UNCHANGED]
    if fmt == "markdown":
        lines = ["| VirtualMachine | outcome | details |", "| --- | --- | --- |"]
        for vm in changed:
            pending = _pending(plan, vm.object_id)
            details = "<br>".join(vm.details + pending + [a.describe() for a in vm.actions])
            lines.append(f"| `{vm.object_id}` | {vm.outcome} | {details} |")
        lines.extend(f"\n> {note}" for note in plan.notes)
        if not changed:
            lines = ["No changes."]
        return "\n".join(lines)
    lines = []
    for vm in changed:
        lines.append(f"{vm.object_id}: {vm.outcome}")
        lines.extend(f"  {line}" for line in vm.details + _pending(plan, vm.object_id))
        lines.extend(f"  - {action.describe()}" for action in vm.actions)
    lines.extend(f"note: {note}" for note in plan.notes)
    blocked = sum(1 for vm in changed if vm.outcome is Outcome.BLOCKED)
    unchanged = len(plan.vms) - len(changed)
    summary = f"{len(changed) - blocked} VM(s) with changes, {unchanged} unchanged"
    if blocked:
        summary += f", {blocked} not applied (see above)"
    lines.append(summary)
    # One line each: a name or message holding a line break must not fake another line.
    return "\n".join(escaped(line) for line in lines)


def _pending(plan: Plan, object_id: Any) -> list[str]:
    status = plan.statuses.get(object_id)
    if status is None:
        return []
    return [
        f"awaiting restart: {c['path']} {c['operation']}"
        f" {c.get('currentValue')} -> {c.get('desiredValue')}"
        for c in status.restart_awaiting_changes
    ]
