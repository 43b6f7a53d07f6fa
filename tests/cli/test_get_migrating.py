"""`reconciler get vm` and status/README.md while a VM migrates, as the guide's
`d8 k get vm -w` shows it: NODE stays the source while the VM is Migrating and is the
destination once it runs there; `describe` and `-o yaml` say where it goes.

Two test-driver hosts write into one status tree by real passes: hv1 announces an
Evict (its report says Migrating to hv2); the test driver cannot migrate, so the
domain "arrives" on hv2 as libvirt leaves it there (hv1's next-boot definition with the
migration's record, running), and hv2's pass reports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import libvirt
import pytest
from ruamel.yaml import YAML

from reconciler.cli import main
from reconciler.engine.reconcile import reconcile_once
from reconciler.libvirt.apply import Applier
from reconciler.libvirt.connection import open_connection
from reconciler.loader import load_directory
from reconciler.reports.pass_inputs import read_plan_context
from tests.cli.conftest import HOST_XML
from tests.cli.test_get import WIDE_COLUMNS, rows
from tests.hosts import CLASS, Host, NamespaceObserver, vm_yaml

NODES = """
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: hv1
spec:
  libvirtUri: qemu+tls://hv1/system
---
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: hv2
spec:
  libvirtUri: qemu+tls://hv2/system
"""
EVICT = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineOperation
metadata:
  name: evict-linux-vm-1718000000
spec:
  type: Evict
  virtualMachineName: linux-vm
"""
PEERS = ("qemu+tls://hv1/system", "qemu+tls://hv2/system")


def fleet_pass(host: Host) -> None:
    """One pass of `host` as a daemon of the fleet runs it (the earlier reports read,
    its migration peers configured), and its reports written."""
    context = read_plan_context(
        load_directory(host.repo),
        replace(host.context, migration_peers=PEERS),
        "rev1",
        status_root=host.repo / "status",
    )
    observer = NamespaceObserver(host.connection, host.namespaces)
    result = reconcile_once(context, observer, Applier(host.connection, poll_seconds=0.1))
    assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]
    host.write_statuses(result)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Host, Host]]:
    """hv1 running linux-vm, and hv2, sharing one checkout."""
    repo = tmp_path / "repo"
    repo.mkdir()
    first, second = open_connection(f"test://{HOST_XML}"), open_connection(f"test://{HOST_XML}")
    hv1, hv2 = Host(repo, first, node_name="hv1"), Host(repo, second, node_name="hv2")
    hv1.write("class.yaml", CLASS)
    hv1.write("nodes.yaml", NODES)
    hv1.write("vm.yaml", vm_yaml(run_policy="AlwaysOn"))
    # hv1 takes linux-vm (the report naming it, as after its first placement) and runs it
    hv1.write(
        "status/virtualmachines/default/linux-vm.yaml",
        "kind: VirtualMachine\nstatus:\n  phase: Pending\n  nodeName: hv1\n",
    )
    fleet_pass(hv1)
    fleet_pass(hv1)
    yield hv1, hv2
    first.close()
    second.close()


def arrive(source: Host, destination: Host) -> None:
    """What a finished live migration leaves: the domain defined and running on the
    destination from the source's next-boot definition, gone from the source."""
    domain = source.domain()
    xml = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    domain.destroy()
    domain.undefine()
    destination.connection.defineXML(xml).create()


def get_wide(capsys: pytest.CaptureFixture[str], repo: Path) -> dict[str, str]:
    assert main(["get", "vm", "-o", "wide", "--dir", str(repo)]) == 0
    return rows(capsys.readouterr().out, WIDE_COLUMNS)["linux-vm"]


def readme_row(repo: Path) -> list[str]:
    readme = (repo / "status" / "README.md").read_text(encoding="utf-8")
    (line,) = [line for line in readme.splitlines() if line.startswith("| default | linux-vm |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_node_is_the_source_while_migrating_and_the_destination_once_arrived(
    fleet: tuple[Host, Host], capsys: pytest.CaptureFixture[str]
) -> None:
    hv1, hv2 = fleet
    repo = hv1.repo
    # given linux-vm runs on hv1
    before = get_wide(capsys, repo)
    assert (before["PHASE"], before["NODE"]) == ("Running", "hv1")
    # when an Evict is committed and hv1 announces the migration
    hv1.write("operations/evict.yaml", EVICT)
    fleet_pass(hv1)
    # then get and the README show it Migrating, still on hv1, as `d8 k get vm -w` does
    during = get_wide(capsys, repo)
    assert (during["PHASE"], during["NODE"]) == ("Migrating", "hv1")
    assert readme_row(repo)[2] == "Migrating" and readme_row(repo)[9] == "hv1"
    # when the guest arrives on hv2 and hv2's pass reports it
    arrive(hv1, hv2)
    fleet_pass(hv2)
    # then it is Running on hv2
    after = get_wide(capsys, repo)
    assert (after["PHASE"], after["NODE"]) == ("Running", "hv2")
    assert readme_row(repo)[2] == "Running" and readme_row(repo)[9] == "hv2"


def test_describe_and_yaml_name_where_a_migrating_vm_goes(
    fleet: tuple[Host, Host], capsys: pytest.CaptureFixture[str]
) -> None:
    hv1, _ = fleet
    hv1.write("operations/evict.yaml", EVICT)
    fleet_pass(hv1)

    assert main(["describe", "vm", "linux-vm", "--dir", str(hv1.repo)]) == 0
    described = capsys.readouterr().out
    assert main(["get", "vm", "linux-vm", "-o", "yaml", "--dir", str(hv1.repo)]) == 0
    document = YAML(typ="safe").load(capsys.readouterr().out)

    assert (
        "  Migration State:\n    Source:\n      Node:  hv1\n    Target:\n      Node:  hv2\n"
        in described
    )
    assert document["status"]["migrationState"] == {
        "source": {"node": "hv1"},
        "target": {"node": "hv2"},
    }
