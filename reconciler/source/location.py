"""Which kind of source a repository URL names."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from reconciler.config import RepositoryConfig
from reconciler.source.git_source import GitSource
from reconciler.source.gitcli import is_remote_url
from reconciler.source.local import LocalDirectorySource
from reconciler.source.revision import Revision


class Source(Protocol):
    """What the daemon asks of a source, whichever kind `open_source` chose."""

    @property
    def publishes_status(self) -> bool:
        """Whether reports go to Git (a publisher) rather than beside the manifests."""

    @property
    def local_path(self) -> Path | None:
        """The directory to watch for edits; None for a fetched repository."""

    @property
    def object_store(self) -> Path | None:
        """The object store of the clone the source fetches into; None for a directory."""

    def describe(self) -> str: ...

    def git_env(self) -> dict[str, str]: ...

    def leave_out_status(self, leave_out: bool) -> None: ...

    def update(self) -> Revision: ...


def open_source(
    repository: RepositoryConfig, cache_dir: Path, status_path: str
) -> GitSource | LocalDirectorySource:
    """A Git source for URLs and bare repositories; a plain directory is read as it is.

    A non-bare work tree is a directory someone edits: reading it as it is on
    disk (not its last commit) is what its owner expects.
    """
    url = repository.url
    if is_remote_url(url) or is_bare_repository(Path(url).expanduser()):
        return GitSource(repository, cache_dir, status_path)
    return LocalDirectorySource(repository, status_path)


def is_bare_repository(path: Path) -> bool:
    return (
        (path / "HEAD").is_file()
        and (path / "objects").is_dir()
        and (path / "refs").is_dir()
        and not (path / ".git").exists()
    )
