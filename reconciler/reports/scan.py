"""The report files of a status folder, and what each says, derived again only when it
changed.

A host of a fleet reads every report of the fleet in each pass: where each VM runs,
which disks existed, which reports are stale, the README's table. At 10,000 VMs
that is 10,000 files per reader, and a pass has several readers. The documents
themselves are parsed once per text (documents.read_document); the listing of the
files is the pass's index of the tree (status_index.py), shared by every reader and,
on the daemon's event-fed passes, not listed at all.

Each reader keeps what it derived from each file with the file's key (its lstat
signature and whether one of its folders is a symlink): a file that is the same as
at the last pass is not read or derived again, and a folder whose listing did not
move since the reader's last call costs nothing at all. The listing is what
`sorted(folder.glob("*/*.yaml"))` lists, in that order; a file whose key changed, or
that a symlink now leads to, is read through read_document as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from reconciler.reports.status_index import SUFFIX, FileSignature, TreeIndex, index_of

T = TypeVar("T")
# What decides whether a file is the same as before: its lstat signature (None when it
# cannot be stat'ed) and whether one of the report folders above it is a symlink.
FileKey = tuple[FileSignature | None, bool]


def list_reports(folder: Path, nested: bool) -> list[tuple[str, FileKey]]:
    """Every `*.yaml` under folder (`*/*.yaml` when nested), as the glob sorts them, with
    the key that says whether it changed."""
    top = os.fspath(folder)
    index = index_of(os.path.dirname(top))
    return [(name, (entry.signature, entry.linked)) for name, entry in index.listing(top, nested)]


@dataclass
class _Listed(Generic[T]):
    """What a PerReport last gave for a folder, and the index state it followed."""

    serial: int  # the index's
    version: int  # the folder's in that index
    epoch: int  # the index's listing ...
    told: int  # ... and how much of its journal was followed since
    values: list[tuple[str, T]]
    known: dict[str, tuple[FileKey, T]]  # each file's key and value
    positions: dict[str, int]  # each file's place in values


class PerReport(Generic[T]):
    """A value derived from each report file of a folder (`derive(path)`, which reads it
    with read_document when it needs its document),
    derived again only for the files that changed since the last call. The derivation
    must depend on nothing but the file's path and text."""

    def __init__(self, derive: Callable[[Path], T]) -> None:
        self._derive = derive
        self._listed: dict[tuple[str, bool], _Listed[T]] = {}

    def over(self, folder: Path, nested: bool = True) -> list[tuple[str, T]]:
        """(path, value) of every report under folder, in the glob's order."""
        top = os.fspath(folder)
        index = index_of(os.path.dirname(top))
        last = self._listed.get((top, nested))
        if last is not None and last.serial == index.serial:
            if last.version == index.version(top):
                return list(last.values)  # the same listing as at the last call
            if last.epoch == index.epoch and self._follow(index, top, nested, last):
                return list(last.values)
        return list(self._list(index, top, nested, last).values)

    def _follow(self, index: TreeIndex, top: str, nested: bool, last: _Listed[T]) -> bool:
        """Bring last up to the files the index was told of since (a pass's own writes, a
        fetch's changes): each costs a lookup, the folder's other files nothing. False
        when a file came or went: then the folder's listing is walked."""
        depth = top.count(os.sep) + (2 if nested else 1)
        prefix = os.path.join(top, "")
        for name in index.journal[last.told :]:
            if not name.startswith(prefix):
                continue
            if name.count(os.sep) != depth or not name.endswith(SUFFIX):
                return False  # a folder changed
            position = last.positions.get(name)
            entry = index.lookup(name)[1]
            if position is None or entry is None:
                return False
            key: FileKey = (entry.signature, entry.linked)
            if last.known[name][0] != key:
                value = self._derive(Path(name))
                last.known[name] = (key, value)
                last.values[position] = (name, value)
        last.told = len(index.journal)
        last.version = index.version(top)
        return True

    def _list(
        self, index: TreeIndex, top: str, nested: bool, last: _Listed[T] | None
    ) -> _Listed[T]:
        known = last.known if last is not None else {}
        values: list[tuple[str, T]] = []
        kept: dict[str, tuple[FileKey, T]] = {}
        for name, entry in index.listing(top, nested):
            key: FileKey = (entry.signature, entry.linked)
            found = known.get(name)
            unchanged = found is not None and found[0] == key
            value = found[1] if found is not None and unchanged else self._derive(Path(name))
            kept[name] = (key, value)
            values.append((name, value))
        # Only the files of this listing are kept: deleted files do not accumulate.
        listed = _Listed(
            index.serial,
            index.version(top),
            index.epoch,
            len(index.journal),
            values,
            kept,
            {name: position for position, (name, _value) in enumerate(values)},
        )
        self._listed[(top, nested)] = listed
        return listed
