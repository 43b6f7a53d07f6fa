"""The report files of a status folder, and what each says, read again only when it changed.

A host of a fleet reads every report of the fleet in each pass: where each VM runs,
which disks existed, which reports are stale, the README's table. At 10,000 VMs
that is 10,000 files per reader, and a pass has several readers. The documents
themselves are parsed once per text (documents.read_document), but walking a
pathlib glob and checking each file and its folders for symlinks again cost more
than the pass's own work for the host's 100 VMs.

So each reader lists a folder once, with one lstat per file from the directory
scan, and keeps what it derived from each file with the file's signature (inode,
size, modification and change times) and whether one of its folders is a symlink:
a file that is the same as at the last pass is not read, stat'ed or derived again.
The listing is what `sorted(folder.glob("*/*.yaml"))` lists, in that order, so
every reader sees the same files as before; a file whose signature changed, or that
a symlink now leads to, is read through read_document as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from reconciler.reports.documents import FileSignature, tree_folders_linked

T = TypeVar("T")
# What decides whether a file is the same as before: its lstat signature (None when it
# cannot be stat'ed) and whether one of the report folders above it is a symlink.
FileKey = tuple[FileSignature | None, bool]


def _entries(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as found:
            return list(found)
    except OSError:  # missing, not a folder, unreadable: as a glob, nothing
        return []


def _signature(entry: os.DirEntry[str]) -> FileSignature | None:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def list_reports(folder: Path, nested: bool) -> list[tuple[str, FileKey]]:
    """Every `*.yaml` under folder (`*/*.yaml` when nested), as the glob sorts them, with
    the key that says whether it changed."""
    top = os.fspath(folder)
    folders: list[tuple[str, str]] = []
    if nested:
        # As the glob does, a folder reached through a symlink is listed too: reading a
        # file in it finds the symlink and treats the file as unusable.
        for entry in _entries(top):
            try:
                is_folder = entry.is_dir()
            except OSError:
                is_folder = False
            if is_folder:
                folders.append((entry.name, entry.path))
    else:
        folders.append(("", top))
    # The glob's order is by path parts: by folder, then by file within it.
    folders.sort()
    listed: list[tuple[str, FileKey]] = []
    for _name, path in folders:
        entries = sorted((e.name, e) for e in _entries(path) if e.name.endswith(".yaml"))
        if not entries:
            continue
        linked = tree_folders_linked(Path(entries[0][1].path))
        listed.extend((entry.path, (_signature(entry), linked)) for _name, entry in entries)
    return listed


class PerReport(Generic[T]):
    """A value derived from each report file of a folder (`derive(path)`, which reads it
    with read_document when it needs its document),
    derived again only for the files that changed since the last call. The derivation
    must depend on nothing but the file's path and text."""

    def __init__(self, derive: Callable[[Path], T]) -> None:
        self._derive = derive
        # Per folder listed: each file's key and value.
        self._known: dict[str, dict[str, tuple[FileKey, T]]] = {}

    def over(self, folder: Path, nested: bool = True) -> list[tuple[str, T]]:
        """(path, value) of every report under folder, in the glob's order."""
        top = os.fspath(folder)
        known = self._known.get(top, {})
        values: list[tuple[str, T]] = []
        kept: dict[str, tuple[FileKey, T]] = {}
        for name, key in list_reports(folder, nested):
            found = known.get(name)
            if found is not None and found[0] == key and key[0] is not None:
                value = found[1]
            else:
                value = self._derive(Path(name))
            kept[name] = (key, value)
            values.append((name, value))
        # Only the files of this listing are kept: deleted files do not accumulate.
        self._known[top] = kept
        return values
