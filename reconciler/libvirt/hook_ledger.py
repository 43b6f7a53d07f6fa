"""The incoming migrations the QEMU hook let in that the daemon's state does not count yet.

The daemon's state (hook.py) is as of its last pass; a drain moves two VMs at a time,
and both may be bound for one host before that host's daemon passes again. Each one
the hook accepts is written here, under an exclusive lock (libvirtd may run two hooks
at once), and counted against the host's capacity by the next `migrate begin` until
the state counts the domain itself (it arrived, and the daemon has passed since), or
libvirt releases the domain on this host (`release end`: the migration failed, or the
guest stopped), or, should neither ever be seen, after `KEPT_S`.

The file is written by the hook alone (as root, like libvirtd); one that cannot be
read is taken for empty, which costs only the check it would have added.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Container, Mapping
from pathlib import Path
from typing import BinaryIO

LEDGER_FILE = "migration-admission.incoming.json"
# Longer than any migration the source lets run (800 s per GiB moved, docs/engine.md)
# of a guest of 16 GiB with its disks.
KEPT_S = 6 * 3600
# The file: a few dozen bytes per migration under way; anything larger is not ours.
_MAX_BYTES = 1 << 20

# Domain name -> (millicores, memory bytes, when it was let in: seconds since the epoch).
Entries = dict[str, tuple[int, int, float]]


def ledger_path(cache_dir: Path) -> Path:
    return cache_dir / LEDGER_FILE


def admit(
    path: Path,
    domain: str,
    share: tuple[int, int],
    counted: Container[str],
    now: float,
    decide: Callable[[Mapping[str, tuple[int, int, float]]], str],
) -> str:
    """Under the lock: the entries still under way (not `counted` by the state, not
    expired) are handed to `decide`, which returns why the domain is refused ("" to let
    it in); a domain let in is written down. Returns decide's answer. Without a file
    that can be opened, decide alone answers."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return decide({})
    with os.fdopen(descriptor, "r+b") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        entries = {
            name: entry
            for name, entry in _entries(file.read(_MAX_BYTES + 1)).items()
            if name != domain and name not in counted and now - entry[2] < KEPT_S
        }
        refusal = decide(entries)
        if not refusal:
            entries[domain] = (share[0], share[1], now)
        _rewrite(file, entries)
    return refusal


def release(path: Path, domain: str) -> None:
    """libvirt released the domain on this host: it no longer comes in, if it did."""
    if not path.exists():  # every domain's stop comes here: most hosts never had one
        return
    try:
        with path.open("r+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            entries = _entries(file.read(_MAX_BYTES + 1))
            if entries.pop(domain, None) is not None:
                _rewrite(file, entries)
    except OSError:
        return


def _entries(data: bytes) -> Entries:
    if len(data) > _MAX_BYTES:
        return {}
    try:
        stored = json.loads(data or b"{}")
    except (ValueError, RecursionError):
        return {}
    if not isinstance(stored, dict):
        return {}
    entries: Entries = {}
    for name, entry in stored.items():
        if (
            isinstance(entry, list)
            and len(entry) == 3
            and all(isinstance(n, int | float) and not isinstance(n, bool) for n in entry)
        ):
            entries[name] = (max(int(entry[0]), 0), max(int(entry[1]), 0), float(entry[2]))
    return entries


def _rewrite(file: BinaryIO, entries: Entries) -> None:
    file.seek(0)
    file.truncate()
    file.write(json.dumps({n: list(e) for n, e in sorted(entries.items())}).encode())
