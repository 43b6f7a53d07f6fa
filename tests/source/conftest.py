"""Real Git repositories in tmp_path: a bare remote and an author's clone that pushes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.config import RepositoryConfig
from tests.gitrepos import Remote
from tests.hosts import CLASS

# The class and VM manifests every test tier uses.
VM_CLASS = textwrap.dedent(CLASS).lstrip()


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote.create(tmp_path / "remote.git", author=tmp_path / "author")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "source"


def repository(url: str, **settings: object) -> RepositoryConfig:
    return RepositoryConfig.model_validate({"url": url, **settings})
