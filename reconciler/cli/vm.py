"""`reconciler vm start|stop|restart|evict NAME`: a VirtualMachineOperation committed to Git.

`d8 v restart NAME` creates a VirtualMachineOperation in the cluster (dvp-api.md §7);
here the repository is the cluster, so the operation is committed as
`operations/NAME.yaml` under the manifests folder and pushed. The host that runs the
VM carries it out once and reports it as
`STATUS_PATH/virtualmachineoperations/NAMESPACE/NAME.yaml`, which `--wait` follows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.api import (
    DEFAULT_NAMESPACE,
    GROUP_VERSION,
    ObjectId,
    OperationType,
    VirtualMachineOperation,
)
from reconciler.cli.common import read_config
from reconciler.cli.repository import add_repository_arguments, target_from
from reconciler.cli.terminal import escaped
from reconciler.loader import load_config_text, load_file, load_text, manifest_files
from reconciler.model.conditions import OperationCondition
from reconciler.model.phases import OperationPhase
from reconciler.reports.documents import render, status_path
from reconciler.source.gitcli import GitFailed
from reconciler.source.operation_workspace import (
    OperationError,
    ReportUnreachable,
    Target,
    Workspace,
    open_workspace,
)
from reconciler.source.revision import status_inside

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 2
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT
ACTIONS = {
    "start": OperationType.START,
    "stop": OperationType.STOP,
    "restart": OperationType.RESTART,
    "evict": OperationType.EVICT,
}
# dvp-api.md §7.2: Completed, Failed and Superseded are the final phases.
FAILED_PHASES = frozenset({OperationPhase.FAILED, OperationPhase.SUPERSEDED})
OPERATIONS_FOLDER = "operations"
REPORT_FOLDER = "virtualmachineoperations"


def vm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Commit a VirtualMachineOperation for VM NAME to the repository and push"
        " it, as `d8 v ACTION NAME` creates one in the cluster. Prints the operation's name."
    )
    parser.add_argument("action", choices=sorted(ACTIONS), metavar="ACTION", help="/".join(ACTIONS))
    parser.add_argument("name", metavar="NAME", help="the VirtualMachine")
    parser.add_argument("-n", "--namespace", default=DEFAULT_NAMESPACE, metavar="NAMESPACE")
    parser.add_argument(
        "--force", action="store_true", help="spec.force: stop at once, no graceful shutdown"
    )
    parser.add_argument(
        "--wait", action="store_true", help="wait until a host reports the operation finished"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS", help="of --wait (default 300)"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="--wait's fetch interval"
    )
    add_repository_arguments(parser)
    parser.set_defaults(run=run)


# --- The manifest -------------------------------------------------------------------------


def operation_name(action: str, vm: str, now: float, taken: set[str]) -> str:
    """`restart-linux-vm-1718000000`, as the user guide names them, made unique."""
    base = f"{action}-{vm}-{int(now)}"
    name, serial = base, 2
    while name in taken:
        name, serial = f"{base}-{serial}", serial + 1
    return name


def operation_manifest(name: str, namespace: str, vm: str, kind: OperationType, force: bool) -> str:
    spec: dict[str, Any] = {"type": kind.value, "virtualMachineName": vm}
    if force:
        spec["force"] = True  # only when asked: the platform's default is no field at all
    document = {
        "apiVersion": GROUP_VERSION,
        "kind": "VirtualMachineOperation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    command = f"reconciler vm {kind.value.lower()} {vm} -n {namespace}{' --force' if force else ''}"
    header = (
        f"# Requested with `{command}`.\n"
        "# It runs once; deleting this file later changes nothing.\n"
    )
    return header + render(document)


def manifest_problem(text: str, path: str) -> str | None:
    """What the daemon's loader would refuse in the manifest, or None."""
    result = load_text(text, path)
    if not result.findings:
        return None
    return "; ".join(f"{f.object}: {f.message}" if f.object else f.message for f in result.findings)


# --- The repository's contents ---------------------------------------------------------------


@dataclass(frozen=True)
class Inventory:
    """What the manifests folder holds that the command needs to know."""

    vms: frozenset[tuple[str, str]]  # (namespace, name)
    operation_names: frozenset[str]  # in any namespace: file names are not namespaced


def read_inventory(root: Path, status_relative: str | None) -> Inventory:
    vms: set[tuple[str, str]] = set()
    operations: set[str] = set()
    for path in manifest_files(root) if root.is_dir() else ():
        relative = path.relative_to(root).as_posix()
        if status_relative and relative.startswith(status_relative + "/"):
            continue
        loaded = load_file(path, relative, root)
        # A VM whose manifest fails to validate still exists: its host reports why.
        ids = [obj.id for obj in loaded.objects] + list(loaded.broken)
        vms.update((i.namespace, i.name) for i in ids if i.kind == "VirtualMachine")
        operations.update(i.name for i in ids if i.kind == "VirtualMachineOperation")
    return Inventory(frozenset(vms), frozenset(operations))


def names_taken(target: Target, work_tree: Path, inventory: Inventory, namespace: str) -> set[str]:
    """Operation names that would collide: an existing file, object or report.

    A reused name would be mistaken for a finished operation: hosts record what they
    ran by namespace/name. Reports on another branch are not looked at; the
    timestamp in the name keeps those apart.
    """
    folder = work_tree / target.sub_path / OPERATIONS_FOLDER
    files = {path.stem for path in folder.glob("*.y*ml")} if folder.is_dir() else set()
    reports = work_tree / target.status_path / REPORT_FOLDER / namespace
    reported = {path.stem for path in reports.glob("*.yaml")} if reports.is_dir() else set()
    return files | reported | set(inventory.operation_names)


# --- Waiting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationReport:
    phase: str
    reason: str = ""
    message: str = ""

    def line(self, name: str) -> str:
        why = ": ".join(part for part in (self.reason, self.message) if part)
        return f"{name}: {self.phase}" + (f" ({why})" if why else "")


def parse_report(text: str | None) -> OperationReport | None:
    """phase, and the `Completed` condition's reason and message (dvp-api.md §7.2)."""
    if text is None:
        return None
    try:
        document = load_config_text(text, "report")
    except ValueError:
        return None
    status = document.get("status") if isinstance(document, dict) else None
    if not isinstance(status, dict) or not isinstance(status.get("phase"), str):
        return None
    raw = status.get("conditions")
    conditions = [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []
    # Completed carries the verdict; another condition may carry the only message.
    ordered = sorted(conditions, key=lambda c: c.get("type") != OperationCondition.COMPLETED)
    chosen = next((c for c in ordered if c.get("message") or c.get("reason")), {})
    # A report is anyone's who can push: what it says reaches a terminal escaped.
    return OperationReport(
        escaped(status["phase"]),
        escaped(chosen.get("reason") or ""),
        escaped(chosen.get("message") or ""),
    )


def wait_for(
    workspace: Workspace, relative: str, name: str, timeout: float, interval: float
) -> int:
    """Follow the report until a final phase: 0 Completed, 1 Failed, 2 on timeout."""
    deadline = time.monotonic() + timeout
    last: OperationReport | None = None
    warned = False
    while True:
        try:
            text = workspace.report(relative)
        except ReportUnreachable as error:
            if not warned:
                print(f"reconciler: cannot fetch yet, retrying: {error}", file=sys.stderr)
                warned = True
            text = None
        report = parse_report(text)
        if report is not None and report != last:
            print(report.line(name), file=sys.stderr, flush=True)
            last = report
        if report is not None and report.phase == OperationPhase.COMPLETED:
            return 0
        if report is not None and report.phase in FAILED_PHASES:
            why = report.message or report.reason or "no reason reported"
            print(f"reconciler: {name} {report.phase.lower()}: {why}", file=sys.stderr)
            return EXIT_FAILED
        if time.monotonic() + interval > deadline:
            seen = f"last phase {last.phase}" if last else f"no report at {relative} yet"
            print(f"reconciler: {name}: timed out after {timeout:g} s ({seen})", file=sys.stderr)
            return EXIT_TIMEOUT
        time.sleep(interval)


# --- The command ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    target = target_from(args, read_config(args))
    if target is None:
        print(
            "reconciler: name the repository: --repo URL, --dir CHECKOUT or --config FILE",
            file=sys.stderr,
        )
        return EXIT_USAGE
    kind = ACTIONS[args.action]
    # Checked before any clone: the model refuses what the hosts would refuse.
    draft = operation_name(args.action, args.name, time.time(), set())
    problem = manifest_problem(
        operation_manifest(draft, args.namespace, args.name, kind, args.force), draft + ".yaml"
    )
    if problem is not None:
        print(f"reconciler: {problem}; nothing was committed", file=sys.stderr)
        return EXIT_FAILED
    try:
        with tempfile.TemporaryDirectory(prefix="reconciler-vm-") as scratch:
            workspace = open_workspace(target, Path(scratch))
            name = commit_operation(workspace, target, args, kind)
            print(name, flush=True)
            if not args.wait:
                return 0
            operation = ObjectId(VirtualMachineOperation.KIND, args.namespace, name)
            report = status_path(Path(target.status_path), operation).as_posix()
            try:
                return wait_for(workspace, report, name, args.timeout, args.interval)
            except KeyboardInterrupt:
                print(f"\nreconciler: stopped waiting; {name} stays requested", file=sys.stderr)
                return EXIT_INTERRUPTED
    except (OperationError, GitFailed) as error:
        print(f"reconciler: {error}", file=sys.stderr)
        return EXIT_FAILED


def commit_operation(
    workspace: Workspace, target: Target, args: argparse.Namespace, kind: OperationType
) -> str:
    """Write and publish the operation after checking its VM exists; returns its name."""
    root = workspace.root / target.sub_path if target.sub_path else workspace.root
    inventory = read_inventory(root, status_inside(target.sub_path, target.status_path))
    if (args.namespace, args.name) not in inventory.vms:
        raise OperationError(
            f"VirtualMachine {args.namespace}/{args.name} is not in {workspace.describe()}"
            f"{' under ' + target.sub_path + '/' if target.sub_path else ''};"
            " nothing was committed"
        )
    taken = names_taken(target, workspace.root, inventory, args.namespace)
    name = operation_name(args.action, args.name, time.time(), taken)
    relative = f"{OPERATIONS_FOLDER}/{name}.yaml"
    text = operation_manifest(name, args.namespace, args.name, kind, args.force)
    problem = manifest_problem(text, relative)
    if problem is not None:
        raise OperationError(f"{problem}; nothing was committed")
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    in_repo = f"{target.sub_path}/{relative}" if target.sub_path else relative
    message = (
        f"vm {args.action} {args.namespace}/{args.name}\n\n"
        f"VirtualMachineOperation {args.namespace}/{name}: {kind.value}"
        f"{' (force)' if args.force else ''} of VirtualMachine {args.namespace}/{args.name},"
        f" as `d8 v {args.action}` creates one.\n"
    )
    commit = workspace.publish(in_repo, message)
    where = f"pushed to {workspace.describe()} as {commit[:12]}" if commit else "written"
    print(f"VirtualMachineOperation {args.namespace}/{name} {where}", file=sys.stderr)
    return name
