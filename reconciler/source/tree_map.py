"""What a Git source knows of one revision's tree: its files' blob ids, its symlinks,
and the entries that make up the manifests key.

Listing the whole tree of a fleet-sized repository (tens of thousands of files, most
of them other hosts' reports) costs as much at every push as at the first; a push
changes a few files. So the map of a new revision is the old one patched with
`git diff-tree` between the two (TreeMap.patched), which gives exactly what
`git ls-tree` of the new one would (TreeMap.listed; tests/source/test_tree_map.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import MappingProxyType

from reconciler.loader import SKIPPED_DIRS, YAML_SUFFIXES
from reconciler.source.revision import digest, is_manifest_path

# path (relative to the manifests root) -> (object type, object id)
TreeEntries = dict[str, tuple[str, str]]

SYMLINK_MODE = "120000"
_KINDS = {"040000": "tree", "160000": "commit"}  # any other mode: a blob
_ABSENT = "000000"


@dataclass(frozen=True)
class TreeMap:
    head: str
    # Every blob (file or symlink) under the root -> its id: Revision.blobs.
    blobs: MappingProxyType[str, str]
    links: frozenset[str]  # the blobs that are symlinks
    # The entries of the root and of each folder holding the status folder: all that
    # manifests_key looks at (tree ids cover whole folders).
    top: MappingProxyType[str, tuple[str, str]]
    manifests_key: str
    # The head this map was patched from, and the manifest files whose blob changed
    # since (as revision.changed_manifests would say); None for a map listed whole.
    base: str | None = None
    changed: frozenset[str] = frozenset()

    @classmethod
    def listed(cls, head: str, ls_tree: str, status_relative: str | None) -> TreeMap:
        """From `git ls-tree -r -t -z HEAD:SUB_PATH`."""
        blobs: dict[str, str] = {}
        links: set[str] = set()
        top: TreeEntries = {}
        opened = _opened(status_relative)
        for record in ls_tree.split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, kind, object_id = meta.split(" ")
            if kind == "blob":
                blobs[path] = object_id
                if mode == SYMLINK_MODE:
                    links.add(path)
            if path.rpartition("/")[0] in opened:
                top[path] = (kind, object_id)
        return cls._made(head, blobs, links, top, status_relative)

    def patched(self, head: str, diff_tree: str, status_relative: str | None) -> TreeMap:
        """This map moved to `head`, from `git diff-tree -r -t -z --no-renames
        --no-abbrev OLD:SUB_PATH HEAD:SUB_PATH`."""
        # The proxies' own copies: dict(proxy) would go key by key (ms at 40,000 blobs).
        blobs = self.blobs.copy()
        links = set(self.links)
        top = self.top.copy()
        opened = _opened(status_relative)
        touched: set[str] = set()
        # A path changed from a folder to a file (or back) has two records, in either
        # order: each undoes only what it knew was there.
        for old_mode, new_mode, old_id, new_id, path in _records(diff_tree):
            old_kind, new_kind = _kind(old_mode), _kind(new_mode)
            if new_kind == "blob":
                blobs[path] = new_id
                touched.add(path)
            elif old_kind == "blob" and blobs.get(path) == old_id:
                del blobs[path]
                touched.add(path)
            if new_mode == SYMLINK_MODE:
                links.add(path)
            elif old_mode == SYMLINK_MODE:
                links.discard(path)
            if path.rpartition("/")[0] in opened:
                if new_kind is not None:
                    top[path] = (new_kind, new_id)
                elif top.get(path) == (old_kind, old_id):
                    del top[path]
        changed = frozenset(
            path
            for path in touched
            if self.blobs.get(path) != blobs.get(path) and is_manifest_path(path, status_relative)
        )
        made = self._made(head, blobs, links, top, status_relative)
        return replace(made, base=self.head, changed=changed)

    def folders_in(self, folder: str) -> list[str]:
        """The names of the folders in `folder` (the root, or one on the way to the
        status folder: the others' entries are not kept)."""
        prefix = f"{folder}/" if folder else ""
        return [
            path[len(prefix) :]
            for path, (kind, _) in self.top.items()
            if kind == "tree" and path.startswith(prefix) and "/" not in path[len(prefix) :]
        ]

    @classmethod
    def _made(
        cls,
        head: str,
        blobs: dict[str, str],
        links: set[str],
        top: TreeEntries,
        status_relative: str | None,
    ) -> TreeMap:
        return cls(
            head=head,
            blobs=MappingProxyType(blobs),
            links=frozenset(links),
            top=MappingProxyType(top),
            manifests_key=manifests_key(top, status_relative),
        )


def _kind(mode: str) -> str | None:
    return None if mode == _ABSENT else _KINDS.get(mode, "blob")


def _records(diff_tree: str) -> Iterator[tuple[str, str, str, str, str]]:
    """(old mode, new mode, old id, new id, path) of each raw -z record."""
    fields = diff_tree.split("\0")
    for index in range(0, len(fields) - 1, 2):
        meta, path = fields[index], fields[index + 1]
        old_mode, new_mode, old_id, new_id, _status = meta.lstrip(":").split(" ")
        yield old_mode, new_mode, old_id, new_id, path


def _opened(status_relative: str | None) -> frozenset[str]:
    """The folders whose entries manifests_key lists one by one: the root, and every
    folder on the way to the status folder."""
    folders = {""}
    if status_relative:
        parts = status_relative.split("/")
        folders.update("/".join(parts[:end]) for end in range(1, len(parts)))
    return frozenset(folders)


def manifests_key(entries: TreeEntries, status_relative: str | None) -> str:
    """A digest of the root's entries that changes iff a manifest changes.

    Tree ids cover whole folders, so no file is read; the status folder and
    dot-entries are left out, and folders holding the status folder are
    opened to leave it out too. `entries` need hold only those of the opened folders.
    """
    children: dict[str, list[str]] = defaultdict(list)
    for path in entries:
        children[path.rpartition("/")[0]].append(path)

    def keyed(prefix: str) -> list[tuple[str, str]]:
        chosen: list[tuple[str, str]] = []
        for path in sorted(children.get(prefix, ())):
            kind, object_id = entries[path]
            name = path.rpartition("/")[2]
            if name.startswith(".") or path == status_relative:
                continue
            if not prefix and kind == "tree" and name in SKIPPED_DIRS:
                continue
            if kind == "blob" and not name.endswith(YAML_SUFFIXES):
                continue  # a README beside the manifests is not a manifest
            if status_relative and status_relative.startswith(path + "/"):
                chosen.extend(keyed(path))
            elif kind in ("blob", "tree"):
                chosen.append((path, object_id))
        return chosen

    return digest(keyed(""))


def listing_follows_tree(links: frozenset[str], status_relative: str | None) -> bool:
    """Whether the manifest files of the checked-out work tree are exactly the blobs
    that revision.is_manifest_path keeps: no symlink (whose target is resolved on disk,
    loader.manifest_files), and no status folder that manifest_files would walk into
    while is_manifest_path leaves it out (it may or may not be checked out)."""
    if links:
        return False
    if not status_relative:
        return True
    parts = status_relative.split("/")
    return parts[0] in SKIPPED_DIRS or any(part.startswith(".") for part in parts)
