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

import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from reconciler.reports.status_index import SUFFIX, FileSignature, TreeIndex, index_of

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
# What decides whether a file is the same as before: its lstat signature (None when it
# cannot be stat'ed) and whether one of the report folders above it is a symlink.
FileKey = tuple[FileSignature | None, bool]
_LOG_IDS = itertools.count(1)
# The most names a listing's log holds; then it starts anew and its Tallies take in
# the whole listing once.
_LOG_MOST = 20_000


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
    # The files whose values were derived again since the listing (_follow), for the
    # Tallies kept from it; a new log (and listing) has a new id.
    log_id: int = field(default_factory=lambda: next(_LOG_IDS))
    log: list[str] = field(default_factory=list)


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
        return list(self.listed(folder, nested).values)

    def listed(self, folder: Path, nested: bool = True) -> _Listed[T]:
        """over's listing itself, not a copy (for a Tally)."""
        top = os.fspath(folder)
        index = index_of(os.path.dirname(top))
        last = self._listed.get((top, nested))
        if last is not None and last.serial == index.serial:
            if last.version == index.version(top):
                return last  # the same listing as at the last call
            if last.epoch == index.epoch and self._follow(index, top, nested, last):
                return last
        return self._list(index, top, nested, last)

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
                if len(last.log) >= _LOG_MOST:
                    last.log_id, last.log = next(_LOG_IDS), []
                else:
                    last.log.append(name)
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


class Summary(Protocol[T_contra]):
    """What a Tally keeps of a folder's values: told what each change took out and
    brought in (the files taken out first)."""

    def update(
        self, removed: Sequence[tuple[str, T_contra]], added: Sequence[tuple[str, T_contra]]
    ) -> None: ...


S = TypeVar("S", bound="Summary[Any]")


@dataclass
class _Kept(Generic[T, S]):
    log_id: int
    told: int  # how much of the listing's log it took in
    values: dict[str, T]  # each file's value as the summary has it
    summary: S


class Tally(Generic[T, S]):
    """A summary of the values a PerReport derives from every file of a folder, kept
    current by the files that changed: a pass that rewrote a hundred reports of a fleet
    of 10,000 costs the summary a hundred updates, not 10,000 (issue 16).

    `make` makes an empty summary, which learns of each change through its `update`. It
    is equal to one made from the whole listing: tests/reports/test_report_tally.py."""

    # The folders whose summaries are kept (a daemon has one or two; tests many).
    KEPT = 8

    def __init__(self, source: PerReport[T], make: Callable[[], S]) -> None:
        self._source = source
        self._make = make
        self._kept: dict[tuple[str, bool], _Kept[T, S]] = {}

    def over(self, folder: Path, nested: bool = True) -> S:
        """The summary of every report under folder as it is now."""
        listed = self._source.listed(folder, nested)
        key = (os.fspath(folder), nested)
        kept = self._kept.get(key)
        if kept is None:
            kept = _Kept(listed.log_id, 0, {}, self._make())
            self._take_all(kept, listed)
            self._kept[key] = kept
            for old in list(self._kept)[: -self.KEPT]:
                del self._kept[old]
        elif kept.log_id != listed.log_id:
            self._take_all(kept, listed)
        elif kept.told < len(listed.log):
            names = sorted(set(listed.log[kept.told :]))
            removed = [(name, kept.values[name]) for name in names if name in kept.values]
            added = [(name, listed.known[name][1]) for name in names if name in listed.known]
            for name, value in added:
                kept.values[name] = value
            kept.summary.update(removed, added)
        kept.told = len(listed.log)
        return kept.summary

    @staticmethod
    def _take_all(kept: _Kept[T, S], listed: _Listed[T]) -> None:
        """Take in a new listing: the files whose values are not the very ones it had."""
        before, now = kept.values, {name: found[1] for name, found in listed.known.items()}
        removed = [
            (name, value)
            for name, value in before.items()
            if name not in now or now[name] is not value
        ]
        added = [
            (name, value)
            for name, value in now.items()
            if name not in before or before[name] is not value
        ]
        kept.values, kept.log_id = now, listed.log_id
        if removed or added:
            kept.summary.update(removed, added)
