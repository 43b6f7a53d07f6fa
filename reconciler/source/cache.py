"""Loading a revision's manifests, parsing again only the files that changed."""

from __future__ import annotations

import bisect
import gc
import os
from collections.abc import Callable
from itertools import accumulate, chain, pairwise

from reconciler.api import ObjectId
from reconciler.confined import resolve_inside
from reconciler.findings import Finding, Rule
from reconciler.loader import LoadedObject, LoadResult, load_file, manifest_files
from reconciler.source.revision import Revision


class ManifestCache:
    """Per-file LoadResults keyed by blob id: an unchanged file is never parsed twice.

    Safe because a file's LoadResult depends only on its text and display path;
    cross-file rules (duplicates, references) run later on the combined result. A
    symlink's blob is the path it holds, not the text it leads to: symlinks are read
    again on every load. Symlinks are read only inside the work tree (loader.load_file).
    """

    def __init__(self) -> None:
        self._files: dict[str, tuple[str, LoadResult]] = {}
        self._links: set[str] = set()
        self.parsed_last = 0
        # The files of the revision last loaded, in manifest_files' order with their
        # sort keys, and its head when its listing followed its tree (Revision.
        # tree_listing): a load of the next Git revision patches these with its
        # `changed` files instead of walking root.
        self._order: list[str] = []
        self._keys: list[_WalkKey] = []
        self._head: str | None = None
        # The last patched load's results one after another, for _order's files (None:
        # made again at the next patch).
        self._joined: _Joined | None = None
        # The objects of the LoadResult that load last returned from _joined.
        self._returned: list[LoadedObject] | None = None

    def load(
        self, revision: Revision, step: Callable[[str, int, int], None] | None = None
    ) -> LoadResult:
        """The revision's manifests; `step` hears how many files are loaded
        (reconciler.progress)."""
        combined = LoadResult()
        files: dict[str, tuple[str, LoadResult]] = {}
        links: set[str] = set()
        parsed = 0
        if not _inside_work_tree(revision):
            self._files, self._links, self.parsed_last = {}, set(), 0
            self._order, self._keys, self._head = [], [], None
            self._joined, self._returned = None, None
            return _sub_path_refused(revision)
        if revision.tree_listing and revision.restamp is None and self._head and not self._links:
            if revision.head == self._head:
                # The revision loaded last, again (a pass for libvirt's events only).
                return self._patched(revision, frozenset(), step)
            if revision.changed is not None and revision.base == self._head:
                return self._patched(revision, revision.changed, step)
        # As in load_directory: parsing makes many short-lived objects and no cycles.
        collecting = gc.isenabled()
        gc.disable()
        order: list[str] = []
        keys: list[_WalkKey] = []
        try:
            paths = list(manifest_files(revision.root))
            # Every path is under the root (manifest_files walks it): its display path is
            # the rest of it, without pathlib's parsing of each of thousands of paths.
            prefix = os.path.join(os.fspath(revision.root), "")
            for done, path in enumerate(paths):
                if step is not None:
                    step("files loaded", done, len(paths))
                name = os.fspath(path)
                if name.startswith(prefix):
                    display = name[len(prefix) :]
                else:  # a root written relative ("."), which Path shortens
                    display = path.relative_to(revision.root).as_posix()
                blob = revision.blobs.get(display)
                cached = self._files.get(display)
                if (
                    blob is not None
                    and cached is not None
                    and cached[0] == blob
                    and display not in self._links
                ):
                    result = cached[1]
                else:
                    result = load_file(path, display, revision.repo_root)
                    parsed += 1
                    if os.path.islink(path):
                        links.add(display)
                    if revision.restamp is not None and revision.restamp(path) != blob:
                        result = _changed_while_read(display)
                        blob = None  # never kept: read again at the next pass
                if blob is not None:
                    files[display] = (blob, result)
                combined.extend(result)
                order.append(display)
                keys.append(walk_key(display))
        finally:
            if collecting:
                gc.enable()
        # Only files of this revision are kept: deleted files do not accumulate.
        self._files = files
        self._links = links
        self.parsed_last = parsed
        # Patched next time only from a listing that is the tree's, in walk_key's order.
        listed = (
            revision.tree_listing
            and not links
            and len(files) == len(order)
            and all(a < b for a, b in pairwise(keys))
        )
        self._order, self._keys = (order, keys) if listed else ([], [])
        self._head = revision.head if listed else None
        self._joined, self._returned = None, None
        return combined

    def _patched(
        self,
        revision: Revision,
        changed: frozenset[str],
        step: Callable[[str, int, int], None] | None,
    ) -> LoadResult:
        """The last load with the changed files read again, added or left out: what a
        walk of root would give when the work tree's files are the tree's
        (tests/source/test_incremental_load.py)."""
        before = self._files
        files = dict(before)
        order, keys = list(self._order), list(self._keys)
        links: set[str] = set()
        parsed = 0
        # Whether every changed file stays where it was in the order, with as many
        # objects, findings and files as it had and none broken: then the last results
        # joined are patched in place of those files' (_Joined.patched).
        in_place = self._joined is not None
        collecting = gc.isenabled()
        gc.disable()
        try:
            for done, display in enumerate(sorted(changed)):
                if step is not None:
                    step("files loaded", done, len(changed))
                key = walk_key(display)
                at = bisect.bisect_left(keys, key)
                present = at < len(order) and order[at] == display
                blob = revision.blobs.get(display)
                if blob is None:
                    if present:
                        del order[at], keys[at]
                        in_place = False
                    files.pop(display, None)
                    continue
                if not present:
                    order.insert(at, display)
                    keys.insert(at, key)
                    in_place = False
                path = revision.root / display
                files[display] = (blob, load_file(path, display, revision.repo_root))
                in_place = in_place and _same_shape(before[display][1], files[display][1])
                parsed += 1
                if os.path.islink(path):
                    links.add(display)  # not the tree's file: the next load walks root
        finally:
            if collecting:
                gc.enable()
        self._files, self._links, self.parsed_last = files, links, parsed
        self._order, self._keys, self._head = order, keys, revision.head
        joined, edited = self._joined, None
        if joined is not None and in_place:
            joined, places = joined.patched(
                [
                    (bisect.bisect_left(keys, walk_key(d)), files[d][1])
                    for d in changed
                    if d in files
                ]
            )
            if self._returned is not None:
                edited = (self._returned, places)
        else:
            joined = _Joined.of([files[display][1] for display in order])
        self._joined = joined
        result = joined.result()
        result.edited = edited
        self._returned = result.objects
        return result


# manifest_files' order: a folder's files (by name) before its subfolders' (by name).
_WalkKey = tuple[tuple[int, str], ...]


def walk_key(display: str) -> _WalkKey:
    """Where a file (a path relative to root, no symlink on the way) comes in
    loader.manifest_files."""
    *folders, name = display.split("/")
    return (*((1, folder) for folder in folders), (0, name))


class _Joined:
    """The files' results one after the other, as LoadResult.extend would make them, and
    where each file's begin in them: a load that replaced a few files' results by ones
    of the same shape is patched there, not joined again from 10,000 files."""

    def __init__(
        self,
        objects: list[LoadedObject],
        findings: list[Finding],
        files: list[str],
        broken: dict[ObjectId, Finding],
        starts: tuple[list[int], list[int], list[int]],
    ) -> None:
        self.objects, self.findings, self.files, self.broken = objects, findings, files, broken
        self._starts = starts  # per file of the order: its first object, finding, file

    @classmethod
    def of(cls, results: list[LoadResult]) -> _Joined:
        broken: dict[ObjectId, Finding] = {}
        for result in results:
            if result.broken:
                broken.update(result.broken)
        return cls(
            list(chain.from_iterable(result.objects for result in results)),
            list(chain.from_iterable(result.findings for result in results)),
            list(chain.from_iterable(result.files for result in results)),
            broken,
            (
                list(accumulate((len(result.objects) for result in results), initial=0)),
                list(accumulate((len(result.findings) for result in results), initial=0)),
                list(accumulate((len(result.files) for result in results), initial=0)),
            ),
        )

    def patched(self, replaced: list[tuple[int, LoadResult]]) -> tuple[_Joined, tuple[int, ...]]:
        """These results with the file at each position's replaced by one of the same
        shape (_same_shape), and the places of the objects replaced."""
        objects, findings, files = list(self.objects), list(self.findings), list(self.files)
        at_object, at_finding, at_file = self._starts
        places: list[int] = []
        for position, result in replaced:
            start = at_object[position]
            objects[start : start + len(result.objects)] = result.objects
            places.extend(range(start, start + len(result.objects)))
            start = at_finding[position]
            findings[start : start + len(result.findings)] = result.findings
            start = at_file[position]
            files[start : start + len(result.files)] = result.files
        return _Joined(objects, findings, files, self.broken, self._starts), tuple(places)

    def result(self) -> LoadResult:
        """A LoadResult of its own: what its reader does to it changes nothing here."""
        return LoadResult(
            objects=list(self.objects),
            findings=list(self.findings),
            files=list(self.files),
            broken=dict(self.broken),
        )


def _same_shape(before: LoadResult, after: LoadResult) -> bool:
    """Whether a file's new results take the places of its old ones in the joined lists."""
    return (
        len(before.objects) == len(after.objects)
        and len(before.findings) == len(after.findings)
        and len(before.files) == len(after.files)
        and not before.broken
        and not after.broken
    )


def _changed_while_read(display: str) -> LoadResult:
    """A file written while it was read may be cut short: read as it is, a VM missing
    from it would be deleted. As an unreadable file it holds deletions back instead;
    the write that changed it triggers the next pass, which reads it whole."""
    message = "changed while it was being read; it is read again at the next pass"
    return LoadResult(findings=[Finding(display, 1, 1, "", message, Rule.YAML)], files=[display])


def _inside_work_tree(revision: Revision) -> bool:
    """Whether the manifests folder (sub_path) is the work tree or a folder inside it: a
    sub_path committed as a symlink could lead anywhere on the host."""
    root, tree = os.path.abspath(revision.root), os.path.abspath(revision.repo_root)
    return (
        os.path.realpath(root) == os.path.realpath(tree) or resolve_inside(root, [tree]) is not None
    )


def _sub_path_refused(revision: Revision) -> LoadResult:
    """Nothing loaded, and a finding that makes the revision incomplete (no deletions)."""
    display = os.path.relpath(revision.root, revision.repo_root)
    message = "the manifests folder is a symbolic link that leads outside the repository"
    finding = Finding(display, 1, 1, "", message, Rule.SYMLINK)
    return LoadResult(findings=[finding], files=[display])
