"""Where `reconciler vm` commits a VirtualMachineOperation, and reads its report back.

A private clone, a user's checkout or a plain directory the daemon reads as it is:
each publishes one file and finds the report a host wrote for it.
"""

from __future__ import annotations

import contextlib
import getpass
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from git import Git
from git.exc import GitCommandError

from reconciler.model.errors import RetryableError
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

PUSH_ATTEMPTS = 5


class OperationError(Exception):
    """The operation could not be committed; the message says why (redacted)."""


class ReportUnreachable(RetryableError):
    """The status branch could not be fetched just now (the message says why, redacted);
    one that does not exist yet is no report, not this."""


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


class Workspace(Protocol):
    root: Path

    def publish(self, relative: str, message: str) -> str: ...

    def report(self, relative: str) -> str | None:
        """The report at `relative`, None while there is none; ReportUnreachable when
        it cannot be fetched just now."""
        ...

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
            if "couldn't find remote ref" in str(error):
                return None
            raise ReportUnreachable(str(error)) from None
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


def open_workspace(target: Target, scratch: Path) -> Workspace:
    plain = target.plain_directory
    if plain is not None:
        if not plain.is_dir():
            raise OperationError(f"{plain}: not a directory")
        return PlainDirectory(plain)
    if target.checkout is not None:
        return GitWorkspace.checkout(target, target.checkout)
    return GitWorkspace.clone(target, scratch)
