"""A checkout the real engine has run on once: the sample repository and its status/.

`reconciler apply` runs on libvirt's test driver (`test:///default`), whose state
lives and dies with one connection, so the pass is self-contained.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.libvirt.connection import open_connection
from tests.hosts import CLASS, Host, host_options, vm_yaml

SAMPLE_REPO = Path(__file__).resolve().parents[2] / "sample-repo"
# libvirt test-driver host of tests/libvirt: a pool `default-pool`, a network `default`.
HOST_XML = Path(__file__).resolve().parents[1] / "libvirt" / "host.xml"
HOST_OPTIONS = [*host_options("test:///default", "virtlab-pt-1"), "--cidr", "10.66.10.0/24"]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkout") / "repo"
    shutil.copytree(SAMPLE_REPO, root)
    code = main(["apply", str(root), *HOST_OPTIONS, "--status-dir", str(root / "status")])
    assert code == 0
    return root


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    """A test-driver host kept open across passes, its reports under repo/status."""
    connection = open_connection(f"test://{HOST_XML}")
    repo = tmp_path / "repo"
    repo.mkdir()
    yield Host(repo, connection)
    connection.close()


def awaiting_restart(host: Host) -> None:
    """linux-vm running with 1 core in Manual approval mode, then asked for 2: the
    change waits for a restart, and the reports say so."""
    host.write("class.yaml", CLASS)
    host.write("vm.yaml", vm_yaml(cores=1, approval="Manual"))
    host.reconcile()
    host.write("vm.yaml", vm_yaml(cores=2, approval="Manual"))
    result, _ = host.reconcile()
    host.write_statuses(result)
