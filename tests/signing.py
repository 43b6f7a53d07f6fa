"""Real signing keys for the signed-history tests: SSH keys made by ssh-keygen, the
allowed_signers files listing them, and the git options that sign a commit with one."""

from __future__ import annotations

import subprocess
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
