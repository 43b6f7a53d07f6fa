"""Two hosts, each with its daemon, one repository (issue 14): an Evict committed to Git
moves a running guest from host A to host B by live migration, and Git tells the story.

The hosts are the fleet lab's (tests/e2e/fleet.py): two libvirtds in namespaces of their
own, which reach each other as hostA and hostB. Each daemon is `reconciler run` against
its host's socket, following a bare remote on disk.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest
from ruamel.yaml import YAML

from tests.daemonlab import Daemon, Remote, Workspace, wait_until
from tests.hosts import CLASS, vm_yaml

from .fleet import Fleet
from .fleet_guests import boot_id, guest_output, read_marker, write_marker
from .lab import wait_for_agent

pytestmark = pytest.mark.e2e

NAMESPACE = "fleet"
VM = "mover"
DOMAIN = f"{VM}.{NAMESPACE}"
REPORT = f"status/virtualmachines/{NAMESPACE}/{VM}.yaml"
EVICT = "evict-mover-1718000000"
# Node names are DNS labels (lower case); the lab's libvirtds know each other as hostA/hostB.
NODE = """\
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {node}
spec:
  unschedulable: {unschedulable}
  libvirtUri: qemu+tcp://{host}/system
"""
VMOP = f"""\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineOperation
metadata:
  name: {EVICT}
  namespace: {NAMESPACE}
spec:
  type: Evict
  virtualMachineName: {VM}
"""


@dataclass
class TwoHosts:
    fleet: Fleet
    remote: Remote
    operator: Workspace
    daemons: dict[str, Daemon]

    def nodes(self, b_schedulable: bool) -> None:
        text = NODE.format(node="hosta", host="hostA", unschedulable="false") + "---\n"
        cordoned = str(not b_schedulable).lower()
        text += NODE.format(node="hostb", host="hostB", unschedulable=cordoned)
        self.operator.write("nodes.yaml", text)

    def push(self, message: str) -> None:
        self.operator.commit_and_push(message)
        for daemon in self.daemons.values():
            assert daemon.push_hook() == 202

    def report(self) -> dict[str, Any]:
        document = self.remote.document(REPORT)
        return document["status"] if document else {}

    def history(self, path: str) -> list[dict[str, Any]]:
        """Every version of a report in the remote's history, oldest first."""
        shas = _git(self.remote.bare, "log", "--reverse", "--format=%H", "main", "--", path)
        found = []
        for sha in shas.split():
            text = _git(self.remote.bare, "show", f"{sha}:{path}", check=False)
            document = YAML(typ="safe").load(text) if text else None
            if isinstance(document, dict):
                found.append(document.get("status", {}))
        return found


def _until(hosts: TwoHosts, what: str, probe: Any, timeout: float) -> Any:
    """wait_until, failing with what each daemon logged and what the report says."""
    try:
        return wait_until(what, probe, timeout)
    except AssertionError as error:
        raise AssertionError(f"{error}\nreport: {hosts.report()}\n{_story(hosts)}") from None


def _story(hosts: TwoHosts) -> str:
    """What each daemon logged and the report's history, for a failure's message."""
    tails = "\n".join(
        f"--- {name}:\n{daemon.log_tail(40)}" for name, daemon in hosts.daemons.items()
    )
    history = [(s.get("phase"), s.get("nodeName")) for s in hosts.history(REPORT)]
    metadata = []
    for conn in hosts.fleet.connections:
        for domain in conn.listAllDomains():
            for flags in (libvirt.VIR_DOMAIN_XML_INACTIVE, 0):
                xml = domain.XMLDesc(flags)
                start = xml.find("<metadata>")
                metadata.append(f"{domain.name()} {flags}: {xml[start : xml.find('</metadata>')]}")
    return f"report history: {history}\n{tails}\n" + "\n".join(metadata)


def _git(repo: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=check)
    return done.stdout


@pytest.fixture
def two_hosts(fleet: Fleet, tmp_path: Path) -> Iterator[TwoHosts]:
    remote = Remote.create(tmp_path / "remote.git")
    operator = Workspace.clone(remote, tmp_path / "operator")
    daemons = {
        host.name.lower(): Daemon(
            tmp_path / host.name,
            {
                "repository": {"url": remote.url, "intervalSeconds": 5},
                "libvirtUri": host.uri,
                "nodeName": host.name.lower(),
                "storagePool": "default",
                "network": "",
                "migrationPeers": [f"qemu+tcp://{peer.name}/system" for peer in fleet.hosts],
            },
            env={"RECONCILER_DOMAIN_TYPE": "qemu"},
        )
        for host in fleet.hosts
    }
    hosts = TwoHosts(fleet, remote, operator, daemons)
    try:
        yield hosts
    finally:
        for daemon in daemons.values():
            daemon.close()
        for conn in fleet.connections:
            for domain in conn.listAllDomains():
                if domain.name() == DOMAIN:
                    if domain.isActive():
                        domain.destroy()
                    domain.undefine()
            pool = conn.storagePoolLookupByName("default")
            pool.refresh()
            for volume in pool.listAllVolumes():
                if NAMESPACE in volume.name() and VM in volume.name():
                    volume.delete()


@dataclass(frozen=True)
class Running:
    """The guest as it ran on A before the move."""

    boot: str
    uptime: float


def guest_running_on_a(hosts: TwoHosts) -> Running:
    """A guest started by A's daemon (B cordoned, so the VM is placed on A), with a
    marker written to its disk."""
    fleet = hosts.fleet
    hosts.operator.write("class.yaml", CLASS)
    hosts.nodes(b_schedulable=False)
    hosts.operator.write(
        f"vms/{VM}.yaml",
        vm_yaml(
            name=VM,
            namespace=NAMESPACE,
            kernel_boot=fleet.guest.kernel_boot(),
            memory="1Gi",
            run_policy="AlwaysOn",
            grace=10,
        ),
    )
    hosts.operator.commit_and_push("two hosts, one VM")
    for daemon in hosts.daemons.values():
        daemon.start()
    for daemon in hosts.daemons.values():
        daemon.wait_ready()
    _until(
        hosts,
        "the VM reported Running on hosta",
        lambda: (
            (hosts.report().get("phase"), hosts.report().get("nodeName")) == ("Running", "hosta")
        ),
        120,
    )
    on_a = fleet.connections[0].lookupByName(DOMAIN)
    wait_for_agent(on_a)
    write_marker(on_a)
    return Running(boot_id(on_a), float(_guest(on_a, "cut -d' ' -f1 /proc/uptime")))


def evict(hosts: TwoHosts) -> None:
    """B back in service, and an Evict of the VM, in one push."""
    hosts.nodes(b_schedulable=True)
    hosts.operator.write(f"operations/{EVICT}.yaml", VMOP)
    hosts.push("evict mover")


def moved_to_b(hosts: TwoHosts, before: Running) -> None:
    """The VM reported Running on B, the same boot with its disk, gone from A, and the
    Evict reported Completed."""
    fleet = hosts.fleet
    _until(
        hosts,
        "the VM reported Running on hostb",
        lambda: (
            (hosts.report().get("phase"), hosts.report().get("nodeName")) == ("Running", "hostb")
        ),
        180,
    )
    on_b = fleet.connections[1].lookupByName(DOMAIN)
    assert on_b.isActive()
    # libvirt undefines the source in the migration's last step, which may come a moment
    # after the destination's guest runs and is reported.
    _until(
        hosts,
        "the domain gone from hosta",
        lambda: DOMAIN not in [d.name() for d in fleet.connections[0].listAllDomains()],
        30,
    )
    wait_for_agent(on_b)
    assert boot_id(on_b) == before.boot
    assert float(_guest(on_b, "cut -d' ' -f1 /proc/uptime")) > before.uptime
    assert read_marker(on_b) == "vmr-fleet-marker"
    operation = f"status/virtualmachineoperations/{NAMESPACE}/{EVICT}.yaml"
    _until(
        hosts,
        "the Evict reported Completed",
        lambda: (
            (hosts.remote.document(operation) or {}).get("status", {}).get("phase") == "Completed"
        ),
        60,
    )


def test_an_evicted_guest_moves_to_the_other_host_and_git_tells_the_story(
    two_hosts: TwoHosts,
) -> None:
    hosts = two_hosts
    # given a running guest on host A
    before = guest_running_on_a(hosts)
    # when B returns to service and an Evict is committed
    evict(hosts)
    # then the VM runs on B, the same boot, with its disk, gone from A, the Evict Completed
    moved_to_b(hosts, before)
    # and Git shows Migrating (on hosta, to hostb) before Running on hostb
    history = hosts.history(REPORT)
    phases = [(s.get("phase"), s.get("nodeName")) for s in history]
    migrating = phases.index(("Migrating", "hosta"))
    assert history[migrating]["migrationState"]["target"] == {"node": "hostb"}
    assert ("Running", "hostb") in phases[migrating:]


def test_a_source_daemon_killed_during_the_migration_moves_the_guest_exactly_once(
    two_hosts: TwoHosts,
) -> None:
    hosts = two_hosts
    before = guest_running_on_a(hosts)
    a = hosts.daemons["hosta"]
    # when A's daemon is SIGKILLed as libvirt begins the migration, and started again
    evict(hosts)
    wait_until("the migration to begin", lambda: "migration of mover.fleet" in a.log_text(), 60)
    a.kill()
    a.start()
    a.wait_ready()
    # then the guest ends up on B once: the same boot, its disk, the Evict Completed
    moved_to_b(hosts, before)
    assert [d.name() for d in hosts.fleet.connections[1].listAllDomains()] == [DOMAIN]


def _guest(domain: libvirt.virDomain, script: str) -> str:
    return guest_output(domain, script).strip()
