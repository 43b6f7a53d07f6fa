"""A manifests directory and libvirt's own test driver, for whole reconcile passes.

libvirt's test driver is a real libvirt driver kept in the process. Opened on
a host file (`host.xml`, beside this one) every connection gets a private,
fresh host: one domain that is not ours (`test`), a storage pool
`default-pool` and a network `default`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.libvirt.connection import open_connection
from tests.hosts import CLASS, Host

HOST_XML = Path(__file__).with_name("host.xml")


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    connection = open_connection(f"test://{HOST_XML}")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
    yield Host(repo, connection)
    connection.close()
