"""Fixtures of the daemon tests: a bare remote, an operator's clone with the class, and
the daemons a test starts (closed after it, whatever happens)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemonlab import Daemon, Remote, Workspace
from tests.hosts import CLASS


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote.create(tmp_path / "remote.git")


@pytest.fixture
def operator(remote: Remote, tmp_path: Path) -> Workspace:
    workspace = Workspace.clone(remote, tmp_path / "operator")
    workspace.write("class.yaml", CLASS)
    return workspace


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()
