"""A plain directory as the source: the files as they are on disk, nothing fetched.

Meant for a host managed by hand or a repository checked out by other means;
the daemon watches the directory and writes its status reports beside the
manifests instead of committing them.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import MappingProxyType

from reconciler.config import RepositoryConfig
from reconciler.loader import manifest_files
from reconciler.source.revision import (
    Revision,
    SourceError,
    changed_manifests,
    clean_relative,
    digest,
    status_inside,
)


class LocalDirectorySource:
    publishes_status = False
    object_store: Path | None = None

    def __init__(self, repository: RepositoryConfig, status_path: str) -> None:
        self.local_path: Path | None = Path(repository.url).expanduser().resolve()
        self.directory = self.local_path
        self.sub_path = clean_relative(repository.sub_path)
        self._status_relative = status_inside(self.sub_path, clean_relative(status_path))
        self._previous: Revision | None = None

    def describe(self) -> str:
        return str(self.directory)

    def git_env(self) -> dict[str, str]:
        return {"GIT_TERMINAL_PROMPT": "0"}

    def leave_out_status(self, leave_out: bool) -> None:
        """Nothing to leave out: the reports are read and written in the directory itself."""

    def update(self) -> Revision:
        root = self.directory / self.sub_path if self.sub_path else self.directory
        if not root.is_dir():
            # Served stale would mean files that are gone: nothing to fall back on.
            raise SourceError(f"{root} is not a directory")
        blobs = self._settled_stamps(root)
        # Size and mtime stand in for git's blob ids: a stat per file, no reading.
        key = digest(sorted(blobs.items()))
        previous = self._previous.blobs if self._previous is not None else None
        revision = Revision(
            head=f"local-{key[:12]}",
            sha=f"local-{key[:12]}",
            root=root,
            repo_root=self.directory,
            manifests_key=key,
            changed=changed_manifests(previous, blobs, self._status_relative),
            blobs=MappingProxyType(blobs),
            restamp=file_stamp,
        )
        self._previous = revision
        return revision

    def _settled_stamps(self, root: Path) -> dict[str, str]:
        """The files' stamps once they hold still: unchanged since the last revision, or
        the same twice SETTLE_SECONDS apart.

        A file is not written atomically: read half-way (truncated, not yet rewritten)
        it would be a complete revision without its objects, and their VMs and disks
        would be deleted. Git sources never see this (a checkout is of whole commits);
        here a change is looked at twice before it is read, at most MAX_SETTLE_SECONDS.
        Stamps compared, not the age of modification times: a truncation was seen to
        keep a file's mtime while its size dropped to 0.
        """
        deadline = time.monotonic() + MAX_SETTLE_SECONDS
        blobs = _file_stamps(root, self._status_relative)
        earlier = self._previous.blobs if self._previous is not None else None
        while blobs != earlier and time.monotonic() < deadline:
            time.sleep(SETTLE_SECONDS)
            earlier, blobs = blobs, _file_stamps(root, self._status_relative)
        return blobs


# How long a changed set of files must hold still before it is read, and the most a
# pass waits for that (files rewritten without pause are read after it anyway).
SETTLE_SECONDS = 0.5
MAX_SETTLE_SECONDS = 10.0


def _file_stamps(root: Path, status_relative: str | None) -> dict[str, str]:
    stamps: dict[str, str] = {}
    for path in manifest_files(root):
        relative = path.relative_to(root).as_posix()
        if status_relative and relative.startswith(status_relative + "/"):
            continue
        stamp = file_stamp(path)
        if stamp is not None:  # None: deleted between the walk and the stat
            stamps[relative] = stamp
    return stamps


def file_stamp(path: Path) -> str | None:
    """Size and mtime: what stands in for a blob id on a plain directory."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}"
