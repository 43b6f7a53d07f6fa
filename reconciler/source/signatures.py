"""Who signed each commit, by Git's own verification, and whether that signer may have
made it.

Nothing is taken from a commit's text: git checks every signature itself (`%G?`), SSH
signatures against an allowed_signers file (`gpg.ssh.allowedSignersFile`), OpenPGP ones
against a private keyring (`GNUPGHOME`) holding only the keys the operator exported. The
rule a commit is held to depends on what it changed:

- a commit that changes only the status folder must be signed by a host
  (`hostSigners`): the fleet's reports are the hosts' to write;
- any other commit, and every merge, must be signed by an allowed signer: a merge is
  verified by its own signature like any commit (the commits it brings in are in the
  range and verified on their own), and hosts never merge.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from git import Git
from git.exc import CommandError, GitCommandError

from reconciler.source.gitcli import GitFailed, Redactor, run_git, short_reason


class Verdict(StrEnum):
    OK = "ok"
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown key"
    BAD_SIGNATURE = "bad signature"
    EXPIRED_KEY = "expired key"
    REVOKED_KEY = "revoked key"
    # Signed by a known key of the wrong kind for what the commit changed.
    NEEDS_HOST_KEY = "needs host key"
    NEEDS_ALLOWED_SIGNER = "needs allowed signer"


# git's %G? letters: G good, U good but not in the trusted set (an SSH key missing from
# allowed_signers), E cannot be checked (an OpenPGP key missing from the keyring).
_VERDICTS = {
    "G": Verdict.OK,
    "U": Verdict.UNKNOWN_KEY,
    "E": Verdict.UNKNOWN_KEY,
    "B": Verdict.BAD_SIGNATURE,
    "X": Verdict.EXPIRED_KEY,
    "Y": Verdict.EXPIRED_KEY,
    "R": Verdict.REVOKED_KEY,
    "N": Verdict.UNSIGNED,
}


@dataclass(frozen=True)
class Signers:
    """The keys a range is checked against: files the operator keeps, and the private
    GnuPG home prepared from the keyring (`prepare_gnupg_home`)."""

    allowed_signers: Path | None
    host_signers: Path | None
    gnupg_home: Path


@dataclass(frozen=True)
class Touched:
    """What one commit changed, against its first parent (nothing for a root's parent)."""

    sha: str
    parents: tuple[str, ...]
    paths: tuple[str, ...]


@dataclass(frozen=True)
class CommitCheck:
    sha: str
    verdict: Verdict
    signer: str  # the principal or key owner, else the key's fingerprint, else ""
    status_only: bool
    merge: bool
    paths: tuple[str, ...]

    @property
    def needs(self) -> str:
        return "a host key" if self.status_only and not self.merge else "an allowed signer"

    def describe(self) -> str:
        """`commit 1a2b3c4d5e6f (unsigned) changes vms/a.yaml: it needs an allowed signer`."""
        by = f" by {self.signer}" if self.signer else ""
        what = "is a merge" if self.merge else f"changes {summarize(self.paths)}"
        return f"commit {self.sha[:12]} ({self.verdict.value}{by}) {what}: it needs {self.needs}"


def summarize(paths: tuple[str, ...], shown: int = 3) -> str:
    if not paths:
        return "nothing"
    listed = ", ".join(paths[:shown])
    return f"{listed} (+{len(paths) - shown} more)" if len(paths) > shown else listed


def in_status(path: str, status_path: str) -> bool:
    return bool(status_path) and (path == status_path or path.startswith(status_path + "/"))


def touched(
    workdir: Path, shas: list[str], env: dict[str, str], redact: Redactor
) -> dict[str, Touched]:
    """Each commit's parents and changed paths, in one git call."""
    if not shas:
        return {}
    output = run_git(
        workdir,
        [
            "log",
            "--no-walk=unsorted",
            "-z",
            "--no-renames",
            "--name-only",
            "--diff-merges=first-parent",
            "--format=%x01%H %P",
            *shas,
        ],
        env,
        redact,
    )
    found: dict[str, Touched] = {}
    for record in output.split("\x01")[1:]:
        header, _, rest = record.partition("\0")
        sha, *parents = header.split()
        paths = tuple(path for path in rest.lstrip("\n").split("\0") if path)
        found[sha] = Touched(sha, tuple(parents), paths)
    return found


def _signatures(
    workdir: Path,
    shas: list[str],
    signers_file: Path | None,
    gnupg_home: Path,
    env: dict[str, str],
    redact: Redactor,
) -> dict[str, tuple[Verdict, str]]:
    """Git's verdict and the signer of each commit against one set of SSH signers."""
    if not shas:
        return {}
    # Always set, and to a file that exists: without it git reports an SSH-signed
    # commit as unsigned.
    allowed = str(signers_file) if signers_file is not None else os.devnull
    output = run_git(
        workdir,
        [
            "-c",
            f"gpg.ssh.allowedSignersFile={allowed}",
            "log",
            "--no-walk=unsorted",
            "--format=%x01%H%x00%G?%x00%GS%x00%GF%x00%GK",
            *shas,
        ],
        {**env, "GNUPGHOME": str(gnupg_home)},
        redact,
    )
    found: dict[str, tuple[Verdict, str]] = {}
    for record in output.split("\x01")[1:]:
        fields = [*record.strip("\n").split("\x00"), "", "", "", ""]
        sha, letter, signer, fingerprint, key = fields[:5]
        verdict = _VERDICTS.get(letter.strip(), Verdict.BAD_SIGNATURE)
        found[sha] = (verdict, " ".join((signer or fingerprint or key).split()))
    return found


def check_commits(
    workdir: Path,
    shas: list[str],
    status_path: str,
    signers: Signers,
    env: dict[str, str],
    redact: Redactor,
) -> list[CommitCheck]:
    """Every commit of shas (in that order) checked against the signer its change needs."""
    changes = touched(workdir, shas, env, redact)
    by_host = [
        sha
        for sha in shas
        if len(changes[sha].parents) <= 1 and _status_only(changes[sha], status_path)
    ]
    hosts = set(by_host)
    by_people = [sha for sha in shas if sha not in hosts]
    verdicts = {
        **_signatures(workdir, by_people, signers.allowed_signers, signers.gnupg_home, env, redact),
        **_signatures(workdir, by_host, signers.host_signers, signers.gnupg_home, env, redact),
    }
    # A commit refused by its own rule, signed by a key of the other kind: say so.
    status_refused = [sha for sha in by_host if verdicts[sha][0] is Verdict.UNKNOWN_KEY]
    others_refused = [sha for sha in by_people if verdicts[sha][0] is Verdict.UNKNOWN_KEY]
    for sha, (verdict, signer) in _signatures(
        workdir, status_refused, signers.allowed_signers, signers.gnupg_home, env, redact
    ).items():
        if verdict is Verdict.OK:
            verdicts[sha] = (Verdict.NEEDS_HOST_KEY, signer)
    # Hosts sign with SSH keys only: no OpenPGP key counts as a host's.
    no_keys = signers.gnupg_home / "no-keys"
    for sha, (verdict, signer) in _signatures(
        workdir, others_refused, signers.host_signers, no_keys, env, redact
    ).items():
        if verdict is Verdict.OK:
            verdicts[sha] = (Verdict.NEEDS_ALLOWED_SIGNER, signer)
    return [
        CommitCheck(
            sha=sha,
            verdict=verdicts[sha][0],
            signer=verdicts[sha][1],
            status_only=sha in hosts,
            merge=len(changes[sha].parents) > 1,
            paths=changes[sha].paths,
        )
        for sha in shas
    ]


def _status_only(change: Touched, status_path: str) -> bool:
    return bool(change.paths) and all(in_status(path, status_path) for path in change.paths)


# ---------------------------------------------------------------------- OpenPGP keys


def prepare_gnupg_home(home: Path, keyring: Path | None) -> Path:
    """A GnuPG home holding exactly the keys of `keyring` (none when it is None), trusted
    as they are: the file is the operator's list of who may sign. Rebuilt whenever the
    file changes, so a key removed from it is no longer accepted. No agent is started."""
    stamp = home / "vm-reconciler.keyring"
    wanted = "none"
    if keyring is not None:
        try:
            text = keyring.read_bytes()
        except OSError as error:
            raise GitFailed(f"cannot read gpgKeyring {keyring}: {error.strerror}") from None
        wanted = hashlib.sha256(text).hexdigest()
    try:
        if stamp.read_text(encoding="utf-8") == wanted:
            return home
    except OSError:
        pass
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o700, parents=True)
    (home / "no-keys").mkdir(mode=0o700)
    # Only the operator's keys are in this home: each of them is who it says it is.
    (home / "gpg.conf").write_text("trust-model always\n", encoding="utf-8")
    if keyring is not None:
        try:
            Git(str(home)).execute(
                [
                    *("gpg", "--homedir", str(home), "--batch", "--quiet", "--no-autostart"),
                    *("--import", str(keyring)),
                ]
            )
        except GitCommandError as error:
            reason = short_reason(error, Redactor(""))
            raise GitFailed(f"gpgKeyring {keyring}: gpg cannot import it: {reason}") from None
        except CommandError:
            raise GitFailed(f"gpgKeyring {keyring}: gpg is not installed") from None
    stamp.write_text(wanted, encoding="utf-8")
    return home
