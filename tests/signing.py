"""Real signing keys for the signed-history tests: SSH keys made by ssh-keygen, the
allowed_signers files listing them, and the git options that sign a commit with one; an
OpenPGP key made by gpg where a test needs one."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SigningKey:
    """An ed25519 key pair on disk, named for its principal (a person's e-mail, a host)."""

    path: Path
    principal: str

    @classmethod
    def create(cls, directory: Path, principal: str) -> SigningKey:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / principal.replace("@", "_at_")
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(path)],
            check=True,
            capture_output=True,
        )
        return cls(path, principal)

    @property
    def public_key(self) -> str:
        return Path(f"{self.path}.pub").read_text(encoding="utf-8").strip()

    @property
    def config(self) -> tuple[str, ...]:
        """git options that sign every commit (and rebase) with this key."""
        return (
            *("-c", "gpg.format=ssh"),
            *("-c", f"user.signingkey={self.path}"),
            *("-c", "commit.gpgsign=true"),
        )


def allowed_signers(path: Path, *keys: SigningKey) -> Path:
    """An OpenSSH allowed_signers file: `principal namespaces="git" key` per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f'{key.principal} namespaces="git" {key.public_key}' for key in keys]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@dataclass(frozen=True)
class PgpKey:
    """An OpenPGP key in a GnuPG home of its own, and its public key exported to a file
    (the gpgKeyring a host is given). git signs through a wrapper naming that home, so
    neither the tests' environment nor the user's keys are involved."""

    home: Path
    email: str
    exported: Path
    program: Path

    @classmethod
    def create(cls, directory: Path, email: str) -> PgpKey:
        # Short: gpg-agent's socket lives in the home, and a socket path is at most
        # 108 bytes.
        home = Path(tempfile.mkdtemp(prefix="vmr-gpg-", dir="/tmp"))
        gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet"]
        subprocess.run(
            [*gpg, "--passphrase", "", "--quick-gen-key", f"Operator <{email}>", "ed25519"],
            check=True,
            capture_output=True,
        )
        directory.mkdir(parents=True, exist_ok=True)
        exported = directory / f"{email}.asc"
        public = subprocess.run(
            [*gpg, "--armor", "--export", email], check=True, capture_output=True
        ).stdout
        exported.write_bytes(public)
        program = directory / f"gpg-{home.name}"
        program.write_text(f'#!/bin/sh\nexec gpg --homedir "{home}" "$@"\n', encoding="utf-8")
        program.chmod(0o755)
        return cls(home, email, exported, program)

    @property
    def config(self) -> tuple[str, ...]:
        return (
            *("-c", "gpg.format=openpgp"),
            *("-c", f"gpg.program={self.program}"),
            *("-c", f"user.signingkey={self.email}"),
            *("-c", "commit.gpgsign=true"),
        )

    def close(self) -> None:
        """Stops the agent gpg started for this home, and removes the home."""
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.home, ignore_errors=True)
