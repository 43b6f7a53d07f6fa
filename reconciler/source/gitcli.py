"""Running git for the source: credentials through the environment, secrets redacted.

Credentials never reach `.git/config`, the remote URL or a command line: an SSH key
travels in `GIT_SSH_COMMAND`, an HTTPS token in `GIT_CONFIG_*` variables that git
reads as if they were configuration (git >= 2.31). Every message built from git's
output goes through `Redactor`, so neither the token nor URL userinfo can end up in a
log line, a health report or a status file (SPEC §10).
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from git import Git
from git.exc import GitCommandError

# Network operations that hang (a firewall dropping packets, a server that never
# answers) must not stall the daemon's loop forever.
NETWORK_TIMEOUT_SECONDS = 60.0

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# git's own rule for `user@host:path`: a colon before the first slash.
_SCP_LIKE = re.compile(r"^[^/@:]+@[^/:]+:")


class GitFailed(Exception):
    """A git command that failed; the message is already redacted and one line long."""


def is_remote_url(url: str) -> bool:
    """A URL git must fetch from: with a scheme (`file://`, `ssh://`, `https://`) or scp-like."""
    return bool(_SCHEME.match(url) or _SCP_LIKE.match(url))


def redact_url(url: str) -> str:
    """The URL without userinfo: `https://user:secret@host/x.git` -> `https://host/x.git`."""
    if not _SCHEME.match(url):
        return url  # scp-like `user@host:path` carries a login name, never a password
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Credentials:
    """How git authenticates to the remote; files are read at each use so rotation works."""

    url: str
    ssh_key_file: Path | None = None
    token_file: Path | None = None
    known_hosts: Path | None = None

    def read_token(self) -> str:
        if self.token_file is None:
            return ""
        try:
            return self.token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise GitFailed(f"cannot read token file {self.token_file}: {error.strerror}") from None

    def environment(self, token: str) -> dict[str, str]:
        # Never ask a human for a password: the daemon has no terminal.
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
        if self.ssh_key_file is not None:
            command = [
                "ssh",
                "-i",
                str(self.ssh_key_file),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=accept-new",
            ]
            if self.known_hosts is not None:
                command += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
            env["GIT_SSH_COMMAND"] = shlex.join(command)
        if token:
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            env.update(
                {
                    "GIT_CONFIG_COUNT": "1",
                    # Scoped to the repository's host, so a redirect elsewhere
                    # does not receive the token.
                    "GIT_CONFIG_KEY_0": f"http.{_origin(self.url)}.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                }
            )
        return env


def _origin(url: str) -> str:
    parts = urlsplit(redact_url(url))
    return f"{parts.scheme}://{parts.netloc}/" if parts.netloc else url


@dataclass(frozen=True)
class Redactor:
    """Replaces the raw URL and the token (plain and base64) in text shown to people."""

    url: str
    token: str = ""

    def __call__(self, text: str) -> str:
        if self.url and self.url != redact_url(self.url):
            text = text.replace(self.url, redact_url(self.url))
        if self.token:
            basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
            text = text.replace(basic, "***").replace(self.token, "***")
        return text


# git's generic epilogue after the line that says what actually went wrong.
_BOILERPLATE = (
    "Cloning into",
    "Please make sure you have the correct access rights",
    "and the repository exists",
    "fatal: Could not read from remote repository",
)


def short_reason(error: GitCommandError, redact: Redactor) -> str:
    """The line of git's stderr that says what went wrong, e.g. `fatal: unable to access ...`."""
    stderr = error.stderr if isinstance(error.stderr, str) else str(error.stderr or "")
    return _reason(stderr, error.status, redact)


def _reason(stderr: str, status: object, redact: Redactor) -> str:
    lines = [
        line.strip().removeprefix("stderr: ").strip("'").strip() for line in stderr.splitlines()
    ]
    lines = [line for line in lines if line]
    if any("did not complete in" in line or "timed out" in line for line in lines):
        return "timed out"
    telling = [line for line in lines if not line.startswith(_BOILERPLATE)]
    reason = telling[0] if telling else (lines[-1] if lines else "")
    return redact(reason or f"git exited with status {status}")


def run_git(
    workdir: Path,
    args: list[str],
    env: dict[str, str],
    redact: Redactor,
    timeout: float | None = None,
) -> str:
    """stdout of `git ARGS` in workdir; GitFailed carries git's redacted reason."""
    try:
        output = Git(str(workdir)).execute(
            ["git", *args],
            env=env,
            kill_after_timeout=timeout,
            strip_newline_in_stdout=False,
        )
    except GitCommandError as error:
        # Not chained: GitCommandError's text holds the full command line.
        raise GitFailed(short_reason(error, redact)) from None
    return output if isinstance(output, str) else str(output)


def run_git_bytes(
    workdir: Path,
    args: list[str],
    env: dict[str, str],
    redact: Redactor,
    stdin: bytes | None = None,
    timeout: float = NETWORK_TIMEOUT_SECONDS,
) -> bytes:
    """stdout of `git ARGS` in workdir as bytes, with `stdin` fed to it (file names and
    object contents are bytes to Git); GitFailed carries git's redacted reason."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=workdir,
            env={**os.environ, **env},
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitFailed(f"git {args[0]} timed out") from None
    if done.returncode != 0:
        reason = _reason(done.stderr.decode(errors="replace"), done.returncode, redact)
        raise GitFailed(f"git {args[0]}: {reason}")
    return done.stdout


@contextmanager
def batch_mktree(
    workdir: Path, env: dict[str, str], redact: Redactor, timeout: float = NETWORK_TIMEOUT_SECONDS
) -> Iterator[Callable[[bytes], str]]:
    """One `git mktree --batch -z` for several trees: each listing (`ls-tree -z`
    records) in, its tree id out, so a folder's id is known before its parent is made.
    Entries are not looked up (`--missing`): they come from Git's own listings and
    from objects just written. Killed when it takes longer than `timeout` in all."""
    process = subprocess.Popen(
        ["git", "mktree", "-z", "--missing", "--batch"],
        cwd=workdir,
        env={**os.environ, **env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()

    def make(listing: bytes) -> str:
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(listing + b"\0")
            process.stdin.flush()
        except OSError:
            raise GitFailed("git mktree ended early") from None
        tree = process.stdout.readline().decode(errors="replace").strip()
        if not tree:
            assert process.stderr is not None
            said = process.stderr.read().decode(errors="replace").strip().splitlines()
            raise GitFailed(redact(f"git mktree: {said[0] if said else 'made no tree'}"))
        return tree

    try:
        yield make
    finally:
        watchdog.cancel()
        with suppress(OSError):
            process.stdin.close()
        process.wait()
        process.stdout.close()
        assert process.stderr is not None
        process.stderr.close()
