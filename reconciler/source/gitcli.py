"""Running git for the source: credentials through the environment, secrets redacted.

Credentials never reach `.git/config`, the remote URL or a command line: an SSH key
travels in `GIT_SSH_COMMAND`, an HTTPS token in `GIT_CONFIG_*` variables that git
reads as if they were configuration (git >= 2.31). Every message built from git's
output goes through `Redactor`, so neither the token nor URL userinfo can end up in a
log line, a health report or a status file (SPEC §10).
"""

from __future__ import annotations

import base64
import re
import shlex
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
    lines = [
        line.strip().removeprefix("stderr: ").strip("'").strip() for line in stderr.splitlines()
    ]
    lines = [line for line in lines if line]
    if any("did not complete in" in line or "timed out" in line for line in lines):
        return "timed out"
    telling = [line for line in lines if not line.startswith(_BOILERPLATE)]
    reason = telling[0] if telling else (lines[-1] if lines else "")
    return redact(reason or f"git exited with status {error.status}")


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
