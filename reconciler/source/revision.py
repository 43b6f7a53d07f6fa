"""What a source hands the daemon: one revision of the manifests, and its errors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from reconciler.loader import SKIPPED_DIRS, YAML_SUFFIXES
from reconciler.model.errors import RetryableError


class SourceError(RetryableError):
    """No revision can be served: the message says which repository and why (redacted)."""


@dataclass(frozen=True)
class Revision:
    """One state of the manifests, ready to load from `root`."""

    head: str  # the branch head that was fetched
    sha: str  # the revision applied: the newest commit that changed the manifests
    root: Path  # the directory holding the manifests (work tree / sub_path)
    repo_root: Path  # the work tree; status reports are written under it
    # Changes iff a manifest changes: lets the daemon skip its own status commits.
    manifests_key: str
    # Manifest files (relative to root) changed since the source's previous update();
    # None when unknown, as on the first update.
    changed: frozenset[str] | None
    stale_error: str = ""
    # Why the branch head is not applied (repository.verify): its history does not
    # verify, and this is the last revision that did. "" when the head is served.
    unverified: str = ""
    # Every file under root -> its git blob id (or "size:mtime_ns" on a plain
    # directory): what ManifestCache compares to skip parsing unchanged files.
    blobs: Mapping[str, str] = field(default_factory=dict, repr=False)
    # A plain directory's files can change between their stamps and their reading
    # (a file half-written, truncated): the stamp of a file as it is now, to compare
    # after reading it. None for Git, whose checkout holds whole commits.
    restamp: Callable[[Path], str | None] | None = field(default=None, repr=False, compare=False)
    # The head of the revision `changed` is counted from (the source's previous one).
    base: str | None = None
    # Whether the manifest files under root are exactly the blobs that is_manifest_path
    # keeps, in the work tree as in the revision's tree (source/tree_map.py
    # listing_follows_tree): then a load may follow `changed` instead of walking root.
    tree_listing: bool = False


def clean_relative(path: str) -> str:
    """A repository-relative folder as git spells it: no leading/trailing slashes, '' for root."""
    parts = [part for part in PurePosixPath(path.strip()).parts if part not in ("/", ".")]
    return "/".join(parts)


def status_inside(sub_path: str, status_path: str) -> str | None:
    """The status folder relative to the manifests root, or None when it lies outside."""
    if not status_path:
        return None
    if not sub_path:
        return status_path
    if status_path.startswith(sub_path + "/"):
        return status_path[len(sub_path) + 1 :]
    return None


def is_manifest_path(relative: str, status_relative: str | None) -> bool:
    """Would reconciler.loader.manifest_files yield this path (relative to the root)?

    Mirrors its rules: YAML suffix, no dot-file or dot-folder, nothing under the
    root's status/; also nothing under the configured status folder.
    """
    parts = relative.split("/")
    if not parts[-1].endswith(YAML_SUFFIXES) or any(part.startswith(".") for part in parts):
        return False
    if len(parts) > 1 and parts[0] in SKIPPED_DIRS:
        return False
    return not (status_relative and relative.startswith(status_relative + "/"))


def changed_manifests(
    previous: Mapping[str, str] | None, current: Mapping[str, str], status_relative: str | None
) -> frozenset[str] | None:
    """Manifest files added, removed or modified between two blob maps."""
    if previous is None:
        return None
    names = set(previous) | set(current)
    return frozenset(
        name
        for name in names
        if previous.get(name) != current.get(name) and is_manifest_path(name, status_relative)
    )


def digest(entries: Iterable[tuple[str, str]]) -> str:
    """A stable sha256 over (name, id) pairs."""
    hasher = hashlib.sha256()
    for name, object_id in entries:
        hasher.update(f"{name}\0{object_id}\n".encode())
    return hasher.hexdigest()
