"""Which kind of source a repository URL names."""

from __future__ import annotations

from pathlib import Path

from reconciler.config import RepositoryConfig
from reconciler.source.git_source import GitSource
from reconciler.source.gitcli import is_remote_url
from reconciler.source.local import LocalDirectorySource


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
