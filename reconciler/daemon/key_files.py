"""The host's private keys, looked at once when a configuration is opened.

`ageKeyFile` (the identity that decrypts the fleet's Secrets) and
`repository.signingKeyFile` (the key that signs this host's status commits) are read at
each use, so a key rotated on disk needs no restart. A key that is missing is not fatal
for the age identity (a repository may hold no encrypted Secret; each one that cannot
be decrypted says why in its VM's report), and a signing key that is missing is refused
at start (components.py). What neither says is a key that anyone on the host can read:
a world-readable age identity lets every local user decrypt every Secret of the fleet,
and ssh-keygen refuses to sign with a private key other users can read, which would
surface only as a failed publish later. Both are said once, at start, with the fix.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from reconciler.config import Config

log = logging.getLogger("reconciler.daemon")

# Group and others: any of their permission bits opens a private key to them.
_OPEN_TO_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def key_file_warnings(config: Config, config_path: Path) -> list[str]:
    """What is wrong with the host's private key files, one line each (empty: nothing)."""
    keys: dict[str, Path | None] = {"ageKeyFile": config.age_key_file}
    if config.repository is not None:
        keys["repository.signingKeyFile"] = config.repository.signing_key_file
    warnings = []
    for setting, path in keys.items():
        if path is None:
            continue
        try:
            # The file the key is read from: a symlink's target is what others can read.
            mode = path.stat().st_mode
        except FileNotFoundError:
            if setting == "ageKeyFile":
                warnings.append(
                    f"{config_path}: {setting} {path} does not exist: no encrypted Secret"
                    f" can be decrypted on this host (age-keygen -o {path}, docs/install.md)"
                )
            continue
        except OSError as error:
            warnings.append(f"{config_path}: {setting} {path}: {error.strerror}")
            continue
        if not stat.S_ISREG(mode):
            warnings.append(f"{config_path}: {setting} {path} is not a regular file")
        elif mode & _OPEN_TO_OTHERS:
            warnings.append(
                f"{config_path}: {setting} {path} is a private key that other users of"
                f" this host can read (mode {stat.S_IMODE(mode):04o}): chmod 600 {path}"
            )
    return warnings


def warn_about_key_files(config: Config, config_path: Path) -> None:
    for warning in key_file_warnings(config, config_path):
        log.warning("%s", warning)
