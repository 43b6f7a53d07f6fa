"""Status reports into Git: commit as the host's own identity, push, and on a lost race
start over from the remote's new head.

Several hosts push to one branch at once. A rejected push is never forced and never
cherry-picked: the clone is reset to what the remote now holds and the reports are
written again on top of it, so every host's files survive (each host writes only
its own reports). A clone left half-done by a killed daemon is reset the same way.

Every push holds a lease on the head it was built on: it lands only while the
remote's branch is still exactly there. A branch deleted on the remote is therefore
never recreated holding nothing but status/ (issue 12); only a status branch of its
own, which holds nothing else, is started when missing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from git import Git
from git.exc import GitCommandError

from reconciler.model.errors import RetryableError
from reconciler.source.gitcli import (
    NETWORK_TIMEOUT_SECONDS,
    GitFailed,
    Redactor,
    redact_url,
    run_git,
)

# git's words for "someone else pushed first" (client side) or "someone else is
# updating the ref right now" (server side). A bare "rejected" is not enough: a hook
# or a protected branch declines with "[remote rejected]" too, and retrying that
# only delays the error.
_REJECTED = (
    "fetch first",
    "non-fast-forward",
    "failed to update ref",
    "cannot lock ref",
    "incorrect old value",
    "stale info",
)
_NO_BRANCH = ("couldn't find remote ref", "not found in upstream")
# The local name of a status branch that does not exist on the remote yet.
_NEW_BRANCH = "vmr-new-status-branch"
# The lease of a push that starts a branch: the remote must not have it yet.
_ABSENT = ""


class PublishError(RetryableError):
    """The reports could not be pushed; the message is redacted and says why."""


@dataclass(frozen=True)
class PublishResult:
    committed: bool
    commit: str | None = None
    attempts: int = 1


Write = Callable[[Path], list[Path]]


class StatusPublisher:
    def __init__(
        self,
        url: str,
        branch: str,
        status_path: str,
        node_name: str,
        work_dir: Path,
        *,
        git_env: Mapping[str, str] | None = None,
        environment: Callable[[], dict[str, str]] | None = None,
        attempts: int = 8,
        create_missing_branch: bool = False,
        signing_key: Path | None = None,
    ) -> None:
        """git_env: fixed variables for git (credentials); environment: a callable asked
        before every publish instead, so a rotated token file is picked up.
        create_missing_branch: only for a status branch of its own; the branch the hosts
        follow is never created (its manifests would be gone). signing_key: the host's SSH
        private key that signs every status commit, so that hosts verifying history
        (repository.verify) accept it; None: unsigned."""
        self.url = url
        self.branch = branch
        self.status_path = status_path.strip("/") or "status"
        self.node_name = node_name
        self.work_dir = work_dir
        self.attempts = attempts
        self.last_commit: str | None = None
        self._git_env = dict(git_env or {})
        self._environment = environment or dict
        self._redact = Redactor(url)
        self.create_missing_branch = create_missing_branch
        # The remote head the clone was last reset to: the lease of the next push.
        self._fetched_head = _ABSENT
        self.signing_key = signing_key

    @property
    def status_root(self) -> Path:
        """The fleet's reports as last fetched."""
        return self.work_dir / self.status_path

    def _env(self) -> dict[str, str]:
        return {
            **self._git_env,
            **self._environment(),
            # Never wait for a password: the daemon has no terminal.
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": f"vm-reconciler on {self.node_name}",
            "GIT_AUTHOR_EMAIL": f"vm-reconciler@{self.node_name}",
            "GIT_COMMITTER_NAME": f"vm-reconciler on {self.node_name}",
            "GIT_COMMITTER_EMAIL": f"vm-reconciler@{self.node_name}",
        }

    def refresh(self) -> bool:
        """The clone at the remote's head now, so a pass plans from the other hosts'
        latest reports: otherwise it reads the tree its own last publish left, and a VM
        two hosts claim would be written over by each in turn, neither seeing the other
        (engine/fleet/strays.py). False when it could not be fetched: the pass reads the
        reports as last fetched, and its publish says what failed."""
        try:
            self._sync(self._env())
        except PublishError:
            return False
        return True

    def publish(self, write: Write, summary: str) -> PublishResult:
        env = self._env()
        message = f"status({self.node_name}): {summary} [skip ci]"
        for attempt in range(1, self.attempts + 1):
            self._sync(env)
            _unlink_symlinked_folders(self.work_dir, self.status_path)
            write(self.status_root)
            if not self._git(env, "status", "--porcelain", "--", self.status_path).strip():
                return PublishResult(committed=False, attempts=attempt)
            self._git(env, "add", "-A", "--", self.status_path)
            self._git(env, *self._signing(), "commit", "--quiet", "--no-verify", "-m", message)
            ref = f"refs/heads/{self.branch}"
            failure = self._network(
                env,
                "push",
                "--quiet",
                f"--force-with-lease={ref}:{self._fetched_head}",
                "origin",
                f"HEAD:{ref}",
            )
            if failure is not None:
                if not any(word in failure for word in _REJECTED):
                    raise self._failed("push to", failure)
                if attempt < self.attempts:
                    # Another host pushed first: back off a little (jitter keeps hosts
                    # that lost together from colliding again), then redo on its head.
                    time.sleep(_backoff_seconds(attempt))
                continue
            self.last_commit = self._git(env, "rev-parse", "HEAD").strip()
            return PublishResult(committed=True, commit=self.last_commit, attempts=attempt)
        raise PublishError(
            f"{redact_url(self.url)} ({self.branch}): the push was rejected"
            f" {self.attempts} times in a row; giving up until the next pass"
        )

    # ----------------------------------------------------------------------- clone

    def _sync(self, env: dict[str, str]) -> None:
        """The clone at the remote's head, with nothing of an earlier attempt left."""
        if not (self.work_dir / ".git").is_dir():
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self._git(env, "init", "--quiet")
            self._git(env, "remote", "add", "origin", self.url)
        else:
            _remove_stale_locks(self.work_dir / ".git")
            # A reloaded configuration may point the same work dir at another remote.
            self._git(env, "remote", "set-url", "origin", self.url)
        failure = self._network(
            env,
            "fetch",
            "--quiet",
            "--no-tags",
            "origin",
            f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}",
        )
        if failure is not None:
            if not any(words in failure for words in _NO_BRANCH):
                raise self._failed("fetch", failure)
            if not self.create_missing_branch:
                raise PublishError(
                    f"{redact_url(self.url)} ({self.branch}): the branch is not on the remote;"
                    " nothing is pushed until it is back (the hosts never recreate the branch"
                    " they follow)"
                )
            # A status branch of its own that nobody has pushed yet: start it empty.
            self._fetched_head = _ABSENT
            self._git(env, "update-ref", "-d", f"refs/heads/{_NEW_BRANCH}")
            self._git(env, "symbolic-ref", "HEAD", f"refs/heads/{_NEW_BRANCH}")
            self._git(env, "rm", "-r", "-q", "--cached", "--ignore-unmatch", ".")
            self._git(env, "clean", "-q", "-fdx")
            return
        fetched = self._git(env, "rev-parse", f"refs/remotes/origin/{self.branch}")
        self._fetched_head = fetched.strip()
        if self._holds(env, self._fetched_head):
            # Checking out and cleaning the tree again would only rewrite the index and
            # look at every file twice more (twice per pass of a host of a fleet: about
            # half a second each at 10,000 VMs).
            return
        # -f: whatever an earlier attempt left in the tree and the index is discarded.
        self._git(env, "checkout", "--quiet", "-f", "-B", self.branch, self._fetched_head)
        self._git(env, "clean", "-q", "-fdx")

    def _holds(self, env: dict[str, str], head: str) -> bool:
        """Whether the clone is the branch at `head` exactly: nothing changed, staged,
        added or left over (ignored files too), as checkout -f and clean -fdx leave it."""
        try:
            if self._git(env, "symbolic-ref", "-q", "HEAD").strip() != f"refs/heads/{self.branch}":
                return False
            if self._git(env, "rev-parse", "--verify", "-q", "HEAD").strip() != head:
                return False
            changes = self._git(
                env, "status", "--porcelain", "--untracked-files=all", "--ignored=matching"
            )
        except PublishError:  # detached, or no commit yet (a new clone): check it out
            return False
        return not changes.strip()

    def _signing(self) -> tuple[str, ...]:
        """git options that sign the commit with the host's key (ssh-keygen -Y sign), or
        that keep it unsigned whatever a global git configuration says."""
        if self.signing_key is None:
            return ("-c", "commit.gpgsign=false")
        return (
            *("-c", "gpg.format=ssh"),
            *("-c", f"user.signingkey={self.signing_key}"),
            *("-c", "commit.gpgsign=true"),
        )

    def _git(self, env: dict[str, str], *args: str, timeout: float | None = None) -> str:
        try:
            return run_git(self.work_dir, list(args), env, self._redact, timeout)
        except GitFailed as error:
            raise PublishError(f"{redact_url(self.url)} ({self.branch}): {error}") from None

    def _network(self, env: dict[str, str], *args: str) -> str | None:
        """A fetch or push: None when it worked, else git's whole (redacted) stderr, which
        tells a lost race or a missing branch apart from a real failure."""
        try:
            Git(str(self.work_dir)).execute(
                ["git", *args], env=env, kill_after_timeout=NETWORK_TIMEOUT_SECONDS
            )
        except GitCommandError as error:
            stderr = error.stderr if isinstance(error.stderr, str) else str(error.stderr or "")
            return self._redact(stderr) or f"git exited with status {error.status}"
        return None

    def _failed(self, what: str, stderr: str) -> PublishError:
        reason = _reason(stderr)
        return PublishError(f"cannot {what} {redact_url(self.url)} ({self.branch}): {reason}")


def _unlink_symlinked_folders(work_dir: Path, status_path: str) -> None:
    """A status folder (or a folder above it) committed as a symlink is removed, so the
    reports replace it instead of being read and written wherever it leads."""
    folder = work_dir
    for part in Path(status_path).parts:
        folder = folder / part
        if folder.is_symlink():
            folder.unlink()
            return


def _backoff_seconds(attempt: int) -> float:
    """0.1 s doubling per lost race, capped at 3 s, spread by a random factor."""
    return min(3.0, 0.1 * 2.0 ** (attempt - 1)) * (0.5 + random.random())


def _remove_stale_locks(git_dir: Path) -> None:
    """A git killed mid-command (SIGKILL of the daemon, a network timeout) leaves its
    lock files behind, and every later command would refuse to run. The work dir is
    this publisher's alone and no git of ours runs now, so any lock is stale."""
    for lock in (git_dir / "index.lock", git_dir / "HEAD.lock", git_dir / "shallow.lock"):
        lock.unlink(missing_ok=True)
    refs = git_dir / "refs"
    if refs.is_dir():
        for lock in refs.rglob("*.lock"):
            lock.unlink(missing_ok=True)


def _reason(stderr: str) -> str:
    """One line out of git's stderr: the ref git says was refused (`! [remote rejected]
    HEAD -> main (pre-receive hook declined)`) or the fatal error, plus what the server
    itself printed, which is often the only useful part (a protected branch, a quota)."""
    lines = [
        line.strip().removeprefix("stderr: ").strip("'").strip() for line in stderr.splitlines()
    ]
    refused = next((line for line in lines if line.startswith("! [")), "")
    fatal = next((line for line in lines if line.startswith(("fatal", "error", "ssh"))), "")
    reason = refused or fatal or next((line for line in lines if line), "unknown error")
    said = [line[len("remote:") :].strip() for line in lines if line.startswith("remote:")]
    said = [line for line in said if line][:3]
    return f"{reason} (remote: {'; '.join(said)})" if said else reason
