"""A status commit made from trees, not through an index: the base commit's trees with
the files this host wrote put in.

A commit through the index (`git add`, `git commit`) looks at every file the index
holds: tens of thousands in a fleet-sized repository (the manifests too, as skipped
entries), a third of a second per pass at 10,000 VMs, though a pass changes a handful
of reports. Here only what changed is looked at: the written files are hashed
(`hash-object`), each folder on their way to the root gets a new tree (`mktree`) made
from the base's listing of it with those entries replaced, and `commit-tree` makes the
commit on the base. The listings are kept by tree id, so the next commit on a tree
this one made lists nothing again.

Whatever is not a plain file in a plain folder (a symlink, a submodule, a folder
where a file was, or the other way round) is `Unfit`: the publisher commits that
change through the index, as before.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

# The modes of a tree's entries (`git ls-tree`): what a commit from trees may replace.
_FILE_MODES = (b"100644", b"100755")
_TREE_MODE = b"040000"
# Listings kept: the folders on the way to the reports of the last few commits.
_KEPT_LISTINGS = 64

# git ARGS with stdin, returning stdout; raises on failure.
RunGit = Callable[[list[str], bytes | None], bytes]
# mktree in batch mode: a listing in, its tree id out.
MakeTree = Callable[[bytes], str]


class Unfit(Exception):
    """This change is not made of plain files in plain folders: commit it through the
    index."""


@dataclass(frozen=True)
class _Entry:
    mode: bytes
    kind: bytes
    oid: str
    record: bytes  # as `ls-tree -z` and `mktree -z` write it: a listing is their join


def _entry(mode: bytes, kind: bytes, oid: str, name: bytes) -> _Entry:
    return _Entry(mode, kind, oid, mode + b" " + kind + b" " + oid.encode() + b"\t" + name + b"\0")


_Listing = dict[bytes, _Entry]


class TreeCommits:
    """Commits of written files onto a base commit, for one clone."""

    def __init__(self, run: RunGit) -> None:
        self._run = run
        self._listings: OrderedDict[str, _Listing] = OrderedDict()

    def commit(
        self,
        base: str,
        work_dir: Path,
        written: Iterable[Path],
        make_commit: Callable[[str, str], str],
        make_tree: Callable[[], AbstractContextManager[MakeTree]],
    ) -> str | None:
        """The commit on `base` whose tree is base's with each written path as the work
        dir now holds it (a file: its content; gone: removed); None when that tree is
        base's own (nothing changed). make_commit(tree, base) makes the commit (signed or
        not); make_tree() opens a `mktree --batch` (gitcli.batch_mktree)."""
        changes = self._changes(work_dir, written)
        if not changes:
            return None
        blobs = self._hash([path for path, (_mode, present) in changes.items() if present])
        # Folder (as a tuple of names) -> its entries' changes: name -> entry or None.
        folders: dict[tuple[bytes, ...], dict[bytes, _Entry | None]] = {}
        for path, (mode, present) in changes.items():
            *above, name = path
            entry = _entry(mode, b"blob", blobs[path], name) if present else None
            folders.setdefault(tuple(above), {})[name] = entry
            for depth in range(len(above)):
                folders.setdefault(tuple(above[:depth]), {})
        # Each folder's listing at base and as it is to be, deepest first (a folder's
        # new tree id goes into its parent's listing).
        order = sorted(folders, key=len, reverse=True)
        before = {folder: self._listing_at(base, folder) for folder in order}
        after: dict[tuple[bytes, ...], _Listing] = {}
        differs = False
        for folder in order:
            listing = after[folder] = dict(before[folder])
            for name, entry in folders[folder].items():
                differs = differs or before[folder].get(name) != entry
                _replace(listing, name, entry, folder)
        if not differs:
            return None  # written again as it was
        made: dict[tuple[bytes, ...], str | None] = {}
        with make_tree() as mktree:
            for folder in order:
                listing = after[folder]
                for child, tree in made.items():
                    if len(child) == len(folder) + 1 and child[:-1] == folder:
                        _replace_folder(listing, child[-1], tree, folder)
                made[folder] = self._make(mktree, listing) if listing else None
        if made[()] is None:
            raise Unfit("the commit would hold no file at all")
        commit = make_commit(made[()], base)
        self._keep(commit, after[()])  # the next commit is most likely made on this one
        return commit

    # ------------------------------------------------------------------ listings

    def _listing_at(self, commit: str, folder: tuple[bytes, ...]) -> _Listing:
        """The entries of `folder` at `commit`; empty when it has no such folder (a
        namespace's first report)."""
        listing = self._listing(commit)
        for depth, name in enumerate(folder):
            entry = listing.get(name)
            if entry is None:
                return {}
            if entry.mode != _TREE_MODE:
                raise Unfit(f"{_shown(folder[: depth + 1])} is not a folder in the base commit")
            listing = self._listing(entry.oid)
        return listing

    def _listing(self, tree: str) -> _Listing:
        """A tree's entries (a commit's: its root tree's), kept by id."""
        listing = self._listings.get(tree)
        if listing is not None:
            self._listings.move_to_end(tree)
            return listing
        listing = _parse_listing(self._run(["ls-tree", "-z", tree], None))
        self._keep(tree, listing)
        return listing

    def _keep(self, tree: str, listing: _Listing) -> None:
        self._listings[tree] = listing
        while len(self._listings) > _KEPT_LISTINGS:
            self._listings.popitem(last=False)

    def _make(self, mktree: MakeTree, listing: _Listing) -> str:
        tree = mktree(b"".join(entry.record for entry in listing.values()))
        self._keep(tree, listing)
        return tree

    # --------------------------------------------------------------------- files

    def _changes(
        self, work_dir: Path, written: Iterable[Path]
    ) -> dict[tuple[bytes, ...], tuple[bytes, bool]]:
        """Each written path as names from the work dir down, with its mode and whether
        it is there (a plain file) or gone."""
        changes: dict[tuple[bytes, ...], tuple[bytes, bool]] = {}
        top = os.fsencode(work_dir)
        for path in written:
            raw = os.fsencode(path)
            if not raw.startswith(top + b"/"):
                raise Unfit(f"{path} is outside the clone")
            names = tuple(raw[len(top) + 1 :].split(b"/"))
            if any(name in (b"", b".", b"..", b".git") for name in names):
                raise Unfit(f"{path} is not a plain path in the clone")
            changes[names] = _state(work_dir, names)
        return changes

    def _hash(self, paths: list[tuple[bytes, ...]]) -> dict[tuple[bytes, ...], str]:
        """The blob ids of the files, written into the object store as `git add` would
        (with the repository's attributes for their paths)."""
        if not paths:
            return {}
        lines = b"".join(b"/".join(path) + b"\n" for path in paths)
        if any(b"\n" in part for path in paths for part in path):
            raise Unfit("a file name holds a line break")
        output = self._run(["hash-object", "-w", "--stdin-paths"], lines).decode().split()
        if len(output) != len(paths):
            raise Unfit("git did not hash every file")
        return dict(zip(paths, output, strict=True))


def _state(work_dir: Path, names: tuple[bytes, ...]) -> tuple[bytes, bool]:
    """A written path's mode and whether it is there: every folder on its way a real
    folder, the path itself a plain file or nothing."""
    folder = os.fsencode(work_dir)
    for name in names[:-1]:
        folder = folder + b"/" + name
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            return b"100644", False
        if not stat.S_ISDIR(mode):
            raise Unfit(f"{os.fsdecode(folder)} is not a folder")
    try:
        mode = os.lstat(folder + b"/" + names[-1]).st_mode
    except FileNotFoundError:
        return b"100644", False
    if not stat.S_ISREG(mode):
        raise Unfit(f"{os.fsdecode(folder + b'/' + names[-1])} is not a plain file")
    # As git records it (core.fileMode): executable or not.
    return (b"100755" if mode & stat.S_IXUSR else b"100644"), True


def _replace(
    listing: _Listing, name: bytes, entry: _Entry | None, folder: tuple[bytes, ...]
) -> None:
    old = listing.get(name)
    if old is not None and old.mode not in _FILE_MODES:
        raise Unfit(f"{_shown((*folder, name))} is not a plain file in the base commit")
    if entry is None:
        listing.pop(name, None)
    else:
        listing[name] = entry


def _replace_folder(
    listing: _Listing, name: bytes, tree: str | None, folder: tuple[bytes, ...]
) -> None:
    old = listing.get(name)
    if old is not None and old.mode != _TREE_MODE:
        raise Unfit(f"{_shown((*folder, name))} is not a folder in the base commit")
    if tree is None:  # its last file went: Git keeps no empty folder
        listing.pop(name, None)
    else:
        listing[name] = _entry(_TREE_MODE, b"tree", tree, name)


def _parse_listing(output: bytes) -> _Listing:
    """`git ls-tree -z`: `MODE TYPE OID<TAB>NAME` records."""
    listing: _Listing = {}
    for record in output.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, kind, oid = meta.split(b" ")
        listing[name] = _Entry(mode, kind, oid.decode(), record + b"\0")
    return listing


def _shown(names: tuple[bytes, ...]) -> str:
    return os.fsdecode(b"/".join(names))
