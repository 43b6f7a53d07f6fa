"""One index per status tree: every report file and what the file system says of it,
listed once and then kept current by what changes the tree.

A host of a fleet reads every report of the fleet in each pass (where each VM runs,
which disks existed, which reports are unusable, the README), and at 10,000 VMs each
reader listing its folders and lstat'ing its files cost a third of a pass. Now the
readers of a pass share one index of the tree (path -> lstat signature), so a pass
lists the tree at most once; and on the passes the daemon runs for an event (a push,
a file, a libvirt or agent event: daemon/passes.py `_EVENT_FED`) the index carried
over from the last pass is trusted for the tree the publisher keeps (its private
clone), and lists nothing at all. It stays current because everything that changes
that tree tells it:

- this process's report writers (documents.write_if_changed and the unlinks of
  tree.py and addresses.py) name each file they wrote or removed (`changed`);
- the publisher's Git operations name the paths Git says they changed (publish.py:
  `git diff-tree` between the heads, and `git status` of what an earlier attempt left),
  or make the index untrusted (`distrust`) when Git cannot say.

What is trusted when (docs/engine.md, "Safety"): inside a scope (`reading`) every root
is listed at its first use, except a root the scope names as kept whose index is intact:
that one is used as it is. Outside any scope every reader lists the tree itself, as
before. The index only decides what is *not* read again: a file that is read is still
checked as it is now (documents._read: lstat, symlinked folders, O_NOFOLLOW), so a
symlink is never followed whatever the index says. A change made behind its back (a
hand edit in the clone) is seen by the next pass that lists the tree: the interval's,
start, reload.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from reconciler.api import PLURALS

FileSignature = tuple[int, int, int, int]

# The status tree's folders: a kind's plural, holding reports or namespace folders
# (addresses.py's lease folder too). A symlinked one is followed only to list the files
# it leads to as unusable (as `glob("*/*.yaml")` lists them); any other symlinked folder
# is not followed at all.
REPORT_FOLDERS = frozenset([*PLURALS.values(), "virtualmachineipaddressleases"])
SUFFIX = ".yaml"


class Entry(NamedTuple):
    """A `*.yaml` entry of the tree."""

    signature: FileSignature  # its lstat: inode, size, modification and change times
    mode: int  # stat.S_IFMT of its lstat: a symlink is never read
    linked: bool  # reached through a symlinked report folder

    @property
    def readable(self) -> FileSignature | None:
        """Its signature when it may be read as a report (not a symlink, not reached
        through one); None otherwise."""
        if self.linked or self.mode == stat.S_IFLNK:
            return None
        return self.signature


def _signature(info: os.stat_result) -> FileSignature:
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def lstat_signature(name: str) -> FileSignature | None:
    try:
        return _signature(os.lstat(name))
    except OSError:
        return None


def _follows(parts: tuple[str, ...]) -> bool:
    """Whether a symlinked folder at `parts` (below the root) is followed: a kind's
    folder, or a folder right under one (a namespace's)."""
    if len(parts) == 1:
        return parts[0] in REPORT_FOLDERS
    return len(parts) == 2 and parts[0] in REPORT_FOLDERS


_SERIALS = itertools.count(1)
# The most names an index remembers as told since its last listing.
_JOURNAL_MOST = 20_000


class TreeIndex:
    """The `*.yaml` entries under one root, by folder; a folder reached through a
    symlink is listed only where a report folder's glob would follow it."""

    def __init__(self, root: str) -> None:
        self.root = root
        # Tells this index from any earlier one of the same root (a reader's cache key).
        self.serial = next(_SERIALS)
        # Folder -> its `*.yaml` entries; folder -> the folders in it that were listed.
        self._files: dict[str, dict[str, Entry]] = {}
        self._folders: dict[str, dict[str, bool]] = {}
        # Per top folder (a kind's): a count moved by every change under it, so a reader
        # that derived values from a listing knows when it is still the same.
        self._versions: dict[str, int] = {}
        self._listings: dict[tuple[str, bool], tuple[int, list[tuple[str, Entry]]]] = {}
        # The names told since the last listing (`update`), for readers that follow the
        # changes one by one (documents.check_reports); a new listing starts a new epoch.
        self.epoch = 0
        self.journal: list[str] = []
        # Whether the index is what the tree holds, as far as it was told.
        self.intact = False

    # ------------------------------------------------------------------ reading

    def version(self, folder: str) -> int:
        return self._versions.get(self._top(folder), 0)

    def listing(self, folder: str, nested: bool) -> list[tuple[str, Entry]]:
        """Every `*.yaml` of folder (`*/*.yaml` when nested), in the order
        `sorted(Path(folder).glob(...))` gives them: by folder, then by name."""
        version = self.version(folder)
        cached = self._listings.get((folder, nested))
        if cached is not None and cached[0] == version:
            return cached[1]
        listed: list[tuple[str, Entry]] = []
        folders = [os.path.join(folder, name) for name in sorted(self._folders.get(folder, {}))]
        for path in folders if nested else [folder]:
            files = self._files.get(path, {})
            listed.extend((os.path.join(path, name), files[name]) for name in sorted(files))
        self._listings[(folder, nested)] = (version, listed)
        return listed

    def walked(self) -> Iterator[tuple[str, Entry]]:
        """The `*.yaml` entries os.walk(root) lists as files: none through a symlink."""
        for folder, files in self._files.items():
            for name, entry in files.items():
                if not entry.linked and entry.mode != stat.S_IFDIR:
                    yield os.path.join(folder, name), entry

    def lookup(self, name: str) -> tuple[bool, Entry | None]:
        """Whether name's folder is one the index lists, and then name's entry (None:
        the file is not there)."""
        folder, base = os.path.split(name)
        files = self._files.get(folder)
        if files is None:
            return False, None
        return True, files.get(base)

    # ------------------------------------------------------------------ listing

    def scan(self) -> None:
        """List the whole tree again; the versions of the top folders whose entries are
        the same as before stay, so readers keep what they derived."""
        before = self._by_top()
        self._files, self._folders = {}, {}
        self._scan(self.root, (), linked=False)
        after = self._by_top()
        for top in set(before) | set(after):
            if before.get(top) != after.get(top):
                self._bump(top)
        self.intact = True
        self.epoch += 1
        self.journal = []

    def _by_top(self) -> dict[str, list[object]]:
        tops: dict[str, list[object]] = {}
        for table in (self._files, self._folders):
            for folder, found in sorted(table.items()):
                tops.setdefault(self._top(folder), []).append((folder, found))
        return tops

    def _scan(self, folder: str, parts: tuple[str, ...], linked: bool) -> None:
        """folder (at `parts` below the root) and what is under it, without a recursion
        as deep as the tree: a hostile tree may nest deeply."""
        pending = [(folder, parts, linked)]
        while pending:
            path, at, through = pending.pop()
            try:
                with os.scandir(path) as found:
                    entries = list(found)
            except OSError:  # gone, not a folder, unreadable: nothing in it
                continue
            files = self._files[path] = {}
            folders = self._folders[path] = {}
            for item in entries:
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                mode = stat.S_IFMT(info.st_mode)
                if item.name.endswith(SUFFIX):
                    files[item.name] = Entry(_signature(info), mode, through)
                child = (*at, item.name)
                if mode == stat.S_IFDIR:
                    if not through or len(child) <= 2:
                        folders[item.name] = through
                        pending.append((item.path, child, through))
                elif mode == stat.S_IFLNK and _follows(child):
                    folders[item.name] = True
                    pending.append((item.path, child, True))

    # ------------------------------------------------------------------ changes

    def update(self, names: Iterable[str]) -> None:
        """What is at each of names now (a file or folder written, removed or changed by
        a Git operation): its entry, and the folders on its way."""
        prefix = os.path.join(self.root, "")
        for name in names:
            if not name.startswith(prefix):
                continue
            parts = tuple(p for p in name[len(prefix) :].split(os.sep) if p)
            if not parts or ".." in parts or "." in parts:
                self.intact = False
                continue
            self._update(parts)

    def _update(self, parts: tuple[str, ...]) -> None:
        name = os.path.join(self.root, *parts)
        folder = self._look(parts)
        if len(self.journal) >= _JOURNAL_MOST:
            self.epoch += 1  # a reader following it lists everything once instead
            self.journal = []
        # A folder that came, went or changed is journaled as `NAME/`: what was in it
        # was not told file by file.
        self.journal.append(os.path.join(name, "") if folder else name)

    def _look(self, parts: tuple[str, ...]) -> bool:
        """Take in what is at parts now; whether it is or was a listed folder."""
        self._bump(parts[0])
        parent = os.path.join(self.root, *parts[:-1]) if len(parts) > 1 else self.root
        name = os.path.join(parent, parts[-1])
        base = parts[-1]
        folder = self._forget(name)
        self._files.get(parent, {}).pop(base, None)
        self._folders.get(parent, {}).pop(base, None)
        linked = self._reach(parts[:-1])
        if linked is None:
            return folder  # its folder is not there (or not listed): nothing to know of it
        try:
            info = os.lstat(name)
        except OSError:
            if len(parts) > 1 and not os.path.isdir(parent):
                self._update(parts[:-1])  # its folder went with it (git, rmdir)
            return folder
        mode = stat.S_IFMT(info.st_mode)
        if base.endswith(SUFFIX):
            self._files.setdefault(parent, {})[base] = Entry(_signature(info), mode, linked)
        if mode == stat.S_IFDIR and (not linked or len(parts) <= 2):
            self._folders.setdefault(parent, {})[base] = linked
            self._scan(name, parts, linked)
            return True
        if mode == stat.S_IFLNK and _follows(parts):
            self._folders.setdefault(parent, {})[base] = True
            self._scan(name, parts, True)
            return True
        return folder

    def _reach(self, parts: tuple[str, ...]) -> bool | None:
        """Whether the folder at parts is reached through a symlinked folder; None when
        it is not there or is not listed. Folders missing from the index (new ones) are
        looked at and listed."""
        folder = self.root
        linked = False
        if folder not in self._files:
            if not os.path.isdir(folder):
                return None
            self._files[folder], self._folders[folder] = {}, {}  # made since it was listed
        for depth, part in enumerate(parts, start=1):
            child = os.path.join(folder, part)
            known = self._folders.setdefault(folder, {}).get(part)
            if known is None:
                try:
                    mode = stat.S_IFMT(os.lstat(child).st_mode)
                except OSError:
                    return None
                if mode == stat.S_IFLNK and _follows(parts[:depth]):
                    known = True
                elif mode == stat.S_IFDIR and (not linked or depth <= 2):
                    known = linked
                else:
                    return None
                self._folders[folder][part] = known
                self._files.setdefault(child, {})
                self._folders.setdefault(child, {})
            linked = linked or known
            folder = child
        return linked

    def _forget(self, name: str) -> bool:
        """Drop name as a folder, with everything under it; whether it was one."""
        if name not in self._files and name not in self._folders:
            return False
        below = os.path.join(name, "")
        for table in (self._files, self._folders):
            for folder in [f for f in table if f == name or f.startswith(below)]:
                del table[folder]
        return True

    def _bump(self, top: str) -> None:
        self._versions[top] = self._versions.get(top, 0) + 1

    def _top(self, folder: str) -> str:
        relative = folder[len(self.root) :].lstrip(os.sep)
        return relative.split(os.sep, 1)[0]


# ---------------------------------------------------------------------- per process

# At most this many roots' indexes are kept (a daemon has one or two; tests many).
_KEPT_INDEXES = 8


class _Registry:
    def __init__(self) -> None:
        self.indexes: dict[str, TreeIndex] = {}
        # The roots used in the open scope (None: no scope open), and those it may keep.
        self.scope: set[str] | None = None
        self.kept: frozenset[str] = frozenset()


_REGISTRY = _Registry()


@contextmanager
def reading(kept: Iterable[os.PathLike[str] | str] = ()) -> Iterator[None]:
    """One pass's reading of status trees: every root is listed at its first use in the
    scope, and its readers share that listing; a root in `kept` whose index stayed
    intact since the last scope (everything that changed it said so) is not listed. A
    scope opened inside another that keeps nothing is part of the outer one."""
    kept = list(kept)
    if _REGISTRY.scope is not None and not kept:
        yield
        return
    outer = (_REGISTRY.scope, _REGISTRY.kept)
    _REGISTRY.scope, _REGISTRY.kept = set(), frozenset(os.fspath(k) for k in kept)
    try:
        yield
    finally:
        _REGISTRY.scope, _REGISTRY.kept = outer


def index_of(root: os.PathLike[str] | str) -> TreeIndex:
    """The index of root for a reader: outside a scope, the tree as listed now."""
    key = os.fspath(root)
    scope = _REGISTRY.scope
    if scope is None:
        fresh = TreeIndex(key)
        fresh.scan()
        return fresh
    index = _REGISTRY.indexes.get(key)
    if index is None:
        index = TreeIndex(key)
        _REGISTRY.indexes[key] = index
        for old in [k for k in _REGISTRY.indexes if k not in scope and k != key]:
            if len(_REGISTRY.indexes) <= _KEPT_INDEXES:
                break
            del _REGISTRY.indexes[old]
    if key not in scope:
        if key not in _REGISTRY.kept or not index.intact:
            index.scan()
        scope.add(key)
    elif not index.intact:  # a Git operation of this pass could not say what it did
        index.scan()
    return index


def _owner(name: str, roots: Iterable[str]) -> TreeIndex | None:
    for root in roots:
        if name.startswith(root) and name[len(root) : len(root) + 1] == os.sep:
            return _REGISTRY.indexes.get(root)
    return None


def lookup(name: str) -> tuple[bool, Entry | None]:
    """What the open scope's index says of a file: (False, None) when none covers it."""
    scope = _REGISTRY.scope
    index = _owner(name, scope) if scope else None
    return index.lookup(name) if index is not None else (False, None)


def signature_of(name: str) -> FileSignature | None:
    """The file's lstat signature: the index's in a scope that covers it, else lstat."""
    covered, entry = lookup(name)
    if covered:
        return entry.signature if entry is not None else None
    return lstat_signature(name)


def changed(names: Iterable[os.PathLike[str] | str]) -> None:
    """Files (or folders) this process wrote, removed or changed: every index that holds
    them looks at them again."""
    roots = list(_REGISTRY.indexes)
    if not roots:
        return
    for raw in names:
        name = os.fspath(raw)
        index = _owner(name, roots)
        if index is not None and index.intact:
            index.update([name])


def distrust(root: os.PathLike[str] | str) -> None:
    """Root changed in a way nobody can name (a Git operation that cannot say what it
    did): its next scope lists it whole."""
    index = _REGISTRY.indexes.get(os.fspath(root))
    if index is not None:
        index.intact = False
