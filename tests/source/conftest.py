"""Real Git repositories in tmp_path: a bare remote and an author's clone that pushes."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.config import RepositoryConfig
from tests.hosts import CLASS

# The class and VM manifests every test tier uses.
VM_CLASS = textwrap.dedent(CLASS).lstrip()


def git(cwd: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-c", "user.name=Author", "-c", "user.email=author@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return completed.stdout.strip()


@dataclass
class Remote:
    """A bare repository and a clone of it in which a test writes and pushes commits."""

    bare: Path
    author: Path

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, files: Mapping[str, str | None], message: str = "change") -> str:
        """Writes (or, for None, deletes) files, commits and pushes; returns the new sha."""
        for name, text in files.items():
            path = self.author / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        git(self.author, "add", "--all")
        git(self.author, "commit", "--quiet", "-m", message)
        git(self.author, "push", "--quiet", "origin", "HEAD:main")
        return git(self.author, "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    author = tmp_path / "author"
    git(tmp_path, "clone", "--quiet", str(bare), str(author))
    git(author, "checkout", "--quiet", "-b", "main")
    return Remote(bare, author)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "source"


def repository(url: str, **settings: object) -> RepositoryConfig:
    return RepositoryConfig.model_validate({"url": url, **settings})
