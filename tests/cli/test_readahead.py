"""The host read while the manifests load (cli/readahead.py): the pass sees what a read
at that moment sees, an error where it reads, and every later read is a new one."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from reconciler.cli.readahead import ReadAhead
from reconciler.libvirt.connection import open_connection
from reconciler.libvirt.observe import Observer
from tests.hosts import CLASS, HOST_XML, Host, vm_yaml


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    connection = open_connection(f"test://{HOST_XML}")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
    yield Host(repo, connection)
    connection.close()


def test_the_first_read_sees_the_domains_and_volumes_a_read_now_sees(host: Host) -> None:
    host.write("vm.yaml", vm_yaml(name="vm"))
    host.reconcile()

    early = ReadAhead(Observer(host.connection), host.storage_pool)
    domains, volumes = early.observe(), early.volumes(host.storage_pool)

    now = Observer(host.connection)
    assert domains == now.observe()
    assert volumes == now.volumes(host.storage_pool)


def test_a_later_read_sees_what_changed_since(host: Host) -> None:
    host.write("vm.yaml", vm_yaml(name="vm"))
    host.reconcile()
    early = ReadAhead(Observer(host.connection), host.storage_pool)
    assert set(early.observe()) == {"vm.default"}
    early.volumes(host.storage_pool)

    domain = host.domain("vm.default")
    domain.destroy()
    domain.undefine()
    pool = host.connection.storagePoolLookupByName(host.storage_pool)
    pool.createXML("<volume><name>new.qcow2</name><capacity>1024</capacity></volume>", 0)

    assert "vm.default" not in early.observe()
    assert "new.qcow2" in early.volumes(host.storage_pool)


def test_another_pools_volumes_are_read_when_asked(host: Host) -> None:
    early = ReadAhead(Observer(host.connection), "no-such-pool")

    early.observe()

    assert early.volumes(host.storage_pool) == Observer(host.connection).volumes(host.storage_pool)


def test_a_failed_read_is_raised_where_the_pass_reads(host: Host) -> None:
    connection = open_connection(f"test://{HOST_XML}")
    connection.close()  # every call on it fails
    early = ReadAhead(Observer(connection), host.storage_pool)

    early.wait()  # the thread ends; nothing is raised in it

    with pytest.raises(libvirt.libvirtError):
        early.observe()
