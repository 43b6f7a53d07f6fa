"""`reconciler vm start|stop|restart|evict NAME`: a VirtualMachineOperation committed to Git.

`d8 v restart NAME` creates a VirtualMachineOperation in the cluster (dvp-api.md §7);
here the repository is the cluster, so the operation is committed as
`operations/NAME.yaml` under the manifests folder and pushed. The host that runs the
VM carries it out once and reports it as
`STATUS_PATH/virtualmachineoperations/NAMESPACE/NAME.yaml`, which `--wait` follows.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from git import Git
from git.exc import GitCommandError

from reconciler.api import DEFAULT_NAMESPACE, GROUP_VERSION, OperationType
from reconciler.cli.common import read_config
from reconciler.config import Config
from reconciler.loader import load_config_text, load_file, load_text, manifest_files
from reconciler.source.gitcli import (
    NETWORK_TIMEOUT_SECONDS,
    Credentials,
    GitFailed,
    Redactor,
    is_remote_url,
    redact_url,
    run_git,
)
from reconciler.source.location import is_bare_repository
from reconciler.source.revision import clean_relative, status_inside
from reconciler.status.documents import render

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
FAILED_PHASES = frozenset({"Failed", "Superseded"})
OPERATIONS_FOLDER = "operations"
REPORT_FOLDER = "virtualmachineoperations"
PUSH_ATTEMPTS = 5


class OperationError(Exception):
    """The operation could not be committed; the message says why (redacted)."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "vm",
        help="start, stop, restart or evict a VM through a VirtualMachineOperation in Git",
        description="Commit a VirtualMachineOperation for VM NAME to the repository and push"
        " it, as `d8 v ACTION NAME` creates one in the cluster. Prints the operation's name.",
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
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--repo", metavar="URL_OR_PATH", help="the repository to clone and push")
    where.add_argument(
        "--dir", type=Path, metavar="DIR", help="an existing checkout to commit in and push from"
    )
    parser.add_argument(
        "--branch", metavar="BRANCH", help="default: the config's, else the remote's"
    )
    parser.add_argument(
        "--sub-path", metavar="PATH", help="the manifests folder in the repository (default: root)"
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="the daemon's configuration to take them from"
    )
    parser.set_defaults(run=run)


# --- Where the operation goes ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The repository as the daemon reads it: which branch, where manifests and reports live."""

    url: str  # a clone's remote; "" for --dir
    checkout: Path | None  # --dir
    branch: str | None  # None: the remote's default branch, or the checkout's
    sub_path: str
    status_path: str
    status_branch: str | None  # None: the same branch
    credentials: Credentials

    @property
    def plain_directory(self) -> Path | None:
        """A directory the daemon reads as it is, with nothing committed (source/location.py)."""
        if self.checkout is not None:
            return None if _is_work_tree(self.checkout) else self.checkout
        if is_remote_url(self.url) or is_bare_repository(Path(self.url)):
            return None
        return Path(self.url)


def _is_work_tree(path: Path) -> bool:
    return (path / ".git").exists()


def target_from(args: argparse.Namespace, config: Config | None) -> Target | None:
    """The command line over the daemon's configuration; None when no repository is named."""
    repository = config.repository if config else None
    url = args.repo or (repository.url if repository and args.dir is None else "")
    if not url and args.dir is None:
        return None
    if url and not is_remote_url(url):
        url = str(Path(url).expanduser().resolve())  # git runs in another directory
    status = config.status if config else None
    return Target(
        url=url,
        checkout=args.dir.resolve() if args.dir is not None else None,
        branch=args.branch or (repository.branch if repository else None),
        sub_path=clean_relative(args.sub_path or (repository.sub_path if repository else "")),
        status_path=clean_relative(status.path if status else "status") or "status",
        status_branch=status.branch if status else None,
        credentials=Credentials(
            url,
            repository.ssh_key_file if repository else None,
            repository.token_file if repository else None,
        ),
    )


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
        loaded = load_file(path, relative)
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


# --- Git --------------------------------------------------------------------------------------


class Workspace(Protocol):
    root: Path

    def publish(self, relative: str, message: str) -> str: ...

    def report(self, relative: str) -> str | None: ...

    def describe(self) -> str: ...


class GitWorkspace:
    """A work tree whose branch the operation is pushed to: a private clone or a checkout."""

    def __init__(
        self, root: Path, branch: str, status_branch: str, credentials: Credentials, *, own: bool
    ) -> None:
        self.root = root
        self.branch = branch
        self.status_branch = status_branch
        self.url = credentials.url
        # A clone of our own may be shallow; a user's checkout must never become so.
        self._own = own
        token = credentials.read_token()
        self._env = credentials.environment(token)
        self._redact = Redactor(credentials.url, token)
        self._warned = False

    @classmethod
    def clone(cls, target: Target, into: Path) -> GitWorkspace:
        credentials = target.credentials
        token = credentials.read_token()
        env, redact = credentials.environment(token), Redactor(target.url, token)
        command = ["clone", "--quiet", "--no-tags", "--single-branch"]
        if is_remote_url(target.url):
            # History is not needed to add a file; git ignores (and warns about) a
            # depth for a path, whose objects it hard-links anyway.
            command += ["--depth", "1"]
        if target.branch:
            command += ["--branch", target.branch]
        try:
            run_git(
                into, [*command, "--", target.url, "work"], env, redact, NETWORK_TIMEOUT_SECONDS
            )
            branch = run_git(into / "work", ["symbolic-ref", "--short", "HEAD"], env, redact)
        except GitFailed as error:
            raise OperationError(f"cannot clone {redact_url(target.url)}: {error}") from None
        branch = branch.strip()
        return cls(into / "work", branch, target.status_branch or branch, credentials, own=True)

    @classmethod
    def checkout(cls, target: Target, directory: Path) -> GitWorkspace:
        env, redact = {"GIT_TERMINAL_PROMPT": "0"}, Redactor("")
        try:
            branch = run_git(directory, ["symbolic-ref", "--short", "HEAD"], env, redact).strip()
            url = run_git(directory, ["remote", "get-url", "origin"], env, redact).strip()
        except GitFailed as error:
            raise OperationError(
                f"{directory} needs a branch checked out and a remote `origin`: {error}"
            ) from None
        if target.branch and target.branch != branch:
            raise OperationError(
                f"{directory} is on branch {branch}, not {target.branch}: check it out first"
            )
        known = target.credentials
        credentials = Credentials(url, known.ssh_key_file, known.token_file)
        workspace = cls(directory, branch, target.status_branch or branch, credentials, own=False)
        workspace.refuse_unpushed_commits()
        return workspace

    def refuse_unpushed_commits(self) -> None:
        """A push sends the whole branch: a user's unpublished work must not ride along."""
        try:
            self._fetch(self.branch)
            ahead = self._git("rev-list", "--count", f"refs/remotes/origin/{self.branch}..HEAD")
        except GitFailed as error:
            raise OperationError(f"cannot compare with {self.describe()}: {error}") from None
        if int(ahead) > 0:
            raise OperationError(
                f"{self.root} has {int(ahead)} commit(s) not pushed to {self.describe()}:"
                " push or drop them first, so that only the operation is pushed"
            )

    def describe(self) -> str:
        return f"{redact_url(self.url)} ({self.branch})"

    def _git(self, *args: str, timeout: float | None = None) -> str:
        return run_git(self.root, list(args), self._env, self._redact, timeout)

    def publish(self, relative: str, message: str) -> str:
        """Commit the one file and push; a push lost to someone else's is rebased and retried."""
        identity = self._identity()
        try:
            self._git("add", "--", relative)
            # --only: whatever else a user's checkout has staged stays out of this commit.
            self._run_with(identity, "commit", "--quiet", "--only", "-m", message, "--", relative)
        except GitFailed as error:
            raise OperationError(f"cannot commit {relative}: {error}") from None
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            failure = self._push()
            if failure is None:
                return self._git("rev-parse", "HEAD").strip()
            if attempt == PUSH_ATTEMPTS or not self._remote_moved():
                raise OperationError(f"cannot push to {self.describe()}: {failure}")
            self._rebase(identity)
            time.sleep(0.1 * attempt)
        raise AssertionError("unreachable")

    def _identity(self) -> dict[str, str]:
        """git's own identity when it has one, else `login@host`: a fresh machine has none."""
        try:
            self._git("var", "GIT_COMMITTER_IDENT")
            return {}
        except GitFailed:
            login, host = getpass.getuser(), socket.gethostname()
            return {
                "GIT_AUTHOR_NAME": login,
                "GIT_AUTHOR_EMAIL": f"{login}@{host}",
                "GIT_COMMITTER_NAME": login,
                "GIT_COMMITTER_EMAIL": f"{login}@{host}",
            }

    def _run_with(self, extra: dict[str, str], *args: str) -> str:
        return run_git(self.root, list(args), {**self._env, **extra}, self._redact)

    def _push(self) -> str | None:
        """None when the push landed, else what git said went wrong."""
        try:
            Git(str(self.root)).execute(
                ["git", "push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}"],
                env=self._env,
                kill_after_timeout=NETWORK_TIMEOUT_SECONDS,
            )
        except GitCommandError as error:
            return push_reason(self._redact(str(error.stderr or "")))
        return None

    def _fetch(self, branch: str) -> None:
        refspec = f"+refs/heads/{branch}:refs/remotes/origin/{branch}"
        depth = ["--depth", "1"] if self._own and branch != self.branch else []
        self._git(
            "fetch", "--quiet", "--no-tags", *depth, "origin", refspec,
            timeout=NETWORK_TIMEOUT_SECONDS,
        )  # fmt: skip

    def _remote_moved(self) -> bool:
        """Whether someone else pushed first (so a rebase helps), rather than a refusal."""
        try:
            self._fetch(self.branch)
        except GitFailed:
            return False  # cannot tell: the push's own failure is the one to report
        try:
            self._git("merge-base", "--is-ancestor", f"refs/remotes/origin/{self.branch}", "HEAD")
        except GitFailed:
            return True
        return False

    def _rebase(self, identity: dict[str, str]) -> None:
        upstream = f"refs/remotes/origin/{self.branch}"
        try:
            self._run_with(identity, "rebase", "--quiet", "--autostash", upstream)
        except GitFailed as error:
            with contextlib.suppress(GitFailed):  # when nothing was left half-done
                self._git("rebase", "--abort")
            raise OperationError(
                f"the branch moved on {self.describe()} and the commit does not rebase"
                f" onto it: {error}"
            ) from None

    def report(self, relative: str) -> str | None:
        """The report at `relative` on the status branch as the remote has it now."""
        try:
            self._fetch(self.status_branch)
        except GitFailed as error:
            # No status branch yet is normal before a host's first report.
            if "couldn't find remote ref" not in str(error) and not self._warned:
                print(f"reconciler: cannot fetch yet, retrying: {error}", file=sys.stderr)
                self._warned = True
            return None
        try:
            return self._git("show", f"refs/remotes/origin/{self.status_branch}:{relative}")
        except GitFailed:
            return None


def push_reason(stderr: str) -> str:
    """The line that says why (`! [remote rejected] HEAD -> main (pre-receive hook declined)`),
    plus what the server itself printed, which is often the only useful part."""
    lines = [
        line.strip().removeprefix("stderr: ").strip("'").strip() for line in stderr.splitlines()
    ]
    lines = [line for line in lines if line]
    refused = next((line for line in lines if line.startswith("! [")), "")
    fatal = next((line for line in lines if line.startswith(("fatal", "error"))), "")
    said = [line.removeprefix("remote:").strip() for line in lines if line.startswith("remote:")]
    reason = refused or fatal or (lines[-1] if lines else "git push failed")
    said = [line for line in said if line][:3]
    return f"{reason} (remote: {'; '.join(said)})" if said else reason


class PlainDirectory:
    """A directory the daemon reads as it is on disk: the file is the whole publication."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def publish(self, relative: str, message: str) -> str:
        return ""

    def report(self, relative: str) -> str | None:
        try:
            return (self.root / relative).read_text(encoding="utf-8")
        except OSError:
            return None


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
    ordered = sorted(conditions, key=lambda c: c.get("type") != "Completed")
    chosen = next((c for c in ordered if c.get("message") or c.get("reason")), {})
    return OperationReport(
        status["phase"], str(chosen.get("reason") or ""), str(chosen.get("message") or "")
    )


def wait_for(
    workspace: Workspace, relative: str, name: str, timeout: float, interval: float
) -> int:
    """Follow the report until a final phase: 0 Completed, 1 Failed, 2 on timeout."""
    deadline = time.monotonic() + timeout
    last: OperationReport | None = None
    while True:
        report = parse_report(workspace.report(relative))
        if report is not None and report != last:
            print(report.line(name), file=sys.stderr, flush=True)
            last = report
        if report is not None and report.phase == "Completed":
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
            report = f"{target.status_path}/{REPORT_FOLDER}/{args.namespace}/{name}.yaml"
            try:
                return wait_for(workspace, report, name, args.timeout, args.interval)
            except KeyboardInterrupt:
                print(f"\nreconciler: stopped waiting; {name} stays requested", file=sys.stderr)
                return EXIT_INTERRUPTED
    except (OperationError, GitFailed) as error:
        print(f"reconciler: {error}", file=sys.stderr)
        return EXIT_FAILED


def open_workspace(target: Target, scratch: Path) -> Workspace:
    plain = target.plain_directory
    if plain is not None:
        if not plain.is_dir():
            raise OperationError(f"{plain}: not a directory")
        return PlainDirectory(plain)
    if target.checkout is not None:
        return GitWorkspace.checkout(target, target.checkout)
    return GitWorkspace.clone(target, scratch)


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
