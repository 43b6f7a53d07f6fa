"""The fleet lab's two hosts, each with its `reconciler run` daemon, on one bare remote
(issue 14): what the end-to-end tests of the fleet's daemons share.

The hosts are the fleet lab's (tests/e2e/fleet.py): two libvirtds in namespaces of their
own, which reach each other as hostA and hostB. Each daemon is `reconciler run` against
its host's socket, following a bare remote on disk; an operator's clone commits the
manifests. The `two_hosts` fixture (conftest.py) gives a `TwoHosts` whose daemons are
not started yet; `guest_running_on_a` starts them with one VM placed on A.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import libvirt
import libvirt_qemu
from ruamel.yaml import YAML

from reconciler.libvirt.migrate import MigrationProgress
from tests.daemonlab import Daemon, Remote, Workspace, wait_until
from tests.hosts import CLASS, vm_yaml

from .fleet import IMAGES, Fleet
from .fleet_guests import MARKER, boot_id, domain_names, guest_output, read_marker, write_marker
from .lab import wait_for_agent

T = TypeVar("T")

NAMESPACE = "fleet"
VM = "mover"
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
VMOP = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineOperation
metadata:
  name: {name}
  namespace: {namespace}
spec:
  type: Evict
  virtualMachineName: {vm}
"""


def domain_of(vm: str) -> str:
    return f"{vm}.{NAMESPACE}"


def vm_report_path(vm: str) -> str:
    return f"status/virtualmachines/{NAMESPACE}/{vm}.yaml"


def operation_report_path(name: str) -> str:
    return f"status/virtualmachineoperations/{NAMESPACE}/{name}.yaml"


def fleet_vm_yaml(fleet: Fleet, vm: str, *, labels: str = "{}", spec: str = "") -> str:
    """An AlwaysOn VM booting the tiny guest; `spec`: more lines of its spec, indented
    as its fields are (two spaces)."""
    text = vm_yaml(
        name=vm,
        namespace=NAMESPACE,
        kernel_boot=fleet.guest.kernel_boot(),
        memory="1Gi",
        run_policy="AlwaysOn",
        grace=10,
        labels=labels,
    )
    return text.replace("spec:\n", "spec:\n" + spec, 1) if spec else text


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

    def start(self) -> None:
        for daemon in self.daemons.values():
            daemon.start()
        for daemon in self.daemons.values():
            daemon.wait_ready()

    def push(self, message: str) -> None:
        self.operator.commit_and_push(message)
        for daemon in self.daemons.values():
            assert daemon.push_hook() == 202

    def report(self, vm: str = VM) -> dict[str, Any]:
        document = self.remote.document(vm_report_path(vm))
        return document["status"] if document else {}

    def placed(self, vm: str = VM) -> tuple[str | None, str | None]:
        """(phase, nodeName) of the VM's report."""
        status = self.report(vm)
        return status.get("phase"), status.get("nodeName")

    def operation_report(self, name: str = EVICT) -> dict[str, Any]:
        document = self.remote.document(operation_report_path(name))
        return document["status"] if document else {}

    def history(self, path: str) -> list[dict[str, Any]]:
        """Every version of a report in the remote's history, oldest first."""
        shas = git_output(self.remote.bare, "log", "--reverse", "--format=%H", "main", "--", path)
        found = []
        for sha in shas.split():
            text = git_output(self.remote.bare, "show", f"{sha}:{path}", check=False)
            document = YAML(typ="safe").load(text) if text else None
            if isinstance(document, dict):
                found.append(document.get("status", {}))
        return found

    def until(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        """wait_until, failing with what each daemon logged and what the reports say."""
        try:
            return wait_until(what, probe, timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.story()}") from None

    def story(self) -> str:
        """What each daemon logged, the VMs' reports and the domains' metadata, for a
        failure's message."""
        tails = "\n".join(
            f"--- {name}:\n{daemon.log_tail(40)}" for name, daemon in self.daemons.items()
        )
        folder = f"status/virtualmachines/{NAMESPACE}/"
        listed = git_output(self.remote.bare, "ls-tree", "--name-only", "main", folder, check=False)
        histories = [
            f"{path}: {[(s.get('phase'), s.get('nodeName')) for s in self.history(path)]}"
            for path in listed.split()
        ]
        metadata = []
        for conn in self.fleet.connections:
            for domain in conn.listAllDomains():
                for flags in (libvirt.VIR_DOMAIN_XML_INACTIVE, 0):
                    xml = domain.XMLDesc(flags)
                    start = xml.find("<metadata>")
                    metadata.append(
                        f"{domain.name()} {flags}: {xml[start : xml.find('</metadata>')]}"
                    )
        return "\n".join([*histories, tails, *metadata])


def git_output(repo: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=check)
    return done.stdout


@contextlib.contextmanager
def two_daemons(fleet: Fleet, folder: Path, *, hook_cache: bool = False) -> Iterator[TwoHosts]:
    """A daemon per host, not started, on one bare remote; after the test, the daemons
    killed and every domain and volume of NAMESPACE gone from both hosts. `hook_cache`:
    each daemon's cacheDir is the one its host's QEMU hook reads (fleet_lab's
    `qemu_hook`)."""
    remote = Remote.create(folder / "remote.git")
    operator = Workspace.clone(remote, folder / "operator")
    daemons = {
        host.name.lower(): Daemon(
            folder / host.name,
            {
                "repository": {"url": remote.url, "intervalSeconds": 5},
                "libvirtUri": host.uri,
                "nodeName": host.name.lower(),
                "storagePool": "default",
                "network": "",
                "migrationPeers": [f"qemu+tcp://{peer.name}/system" for peer in fleet.hosts],
                **({"cacheDir": str(host.hook_cache)} if hook_cache else {}),
            },
            env={"RECONCILER_DOMAIN_TYPE": "qemu"},
        )
        for host in fleet.hosts
    }
    try:
        yield TwoHosts(fleet, remote, operator, daemons)
    finally:
        for daemon in daemons.values():
            daemon.close()
        for conn in fleet.connections:
            for domain in conn.listAllDomains():
                if domain.name().endswith(f".{NAMESPACE}"):
                    with contextlib.suppress(libvirt.libvirtError):  # gone meanwhile
                        if domain.isActive():
                            domain.destroy()
                        domain.undefine()
            pool = conn.storagePoolLookupByName("default")
            pool.refresh()
            for volume in pool.listAllVolumes():
                if NAMESPACE in volume.name():
                    volume.delete()


@dataclass(frozen=True)
class Running:
    """The guest as it ran on A before the move."""

    domain: libvirt.virDomain  # on A's connection
    boot: str
    uptime: float


def guest_running_on_a(hosts: TwoHosts, spec: str = "") -> Running:
    """The daemons started with the VM placed on A (B cordoned), its guest running there
    with a marker written to its disk. `spec`: more lines of the VM's spec."""
    fleet = hosts.fleet
    hosts.operator.write("class.yaml", CLASS)
    hosts.nodes(b_schedulable=False)
    hosts.operator.write(f"vms/{VM}.yaml", fleet_vm_yaml(fleet, VM, spec=spec))
    hosts.operator.commit_and_push("two hosts, one VM")
    hosts.start()
    hosts.until(
        "the VM reported Running on hosta", lambda: hosts.placed() == ("Running", "hosta"), 120
    )
    on_a = fleet.connections[0].lookupByName(domain_of(VM))
    wait_for_agent(on_a)
    write_marker(on_a)
    return Running(on_a, boot_id(on_a), float(guest(on_a, "cut -d' ' -f1 /proc/uptime")))


def evict(hosts: TwoHosts) -> None:
    """B back in service, and an Evict of the VM, in one push."""
    hosts.nodes(b_schedulable=True)
    hosts.operator.write(
        f"operations/{EVICT}.yaml", VMOP.format(name=EVICT, namespace=NAMESPACE, vm=VM)
    )
    hosts.push("evict mover")


def moved_to_b(hosts: TwoHosts, before: Running, *, source_cleaned: bool = True) -> None:
    """The VM reported Running on B, the same boot with its disk, gone from A, and the
    Evict reported Completed; `source_cleaned`: A's copies of its volumes deleted too
    (by the daemon that ran the migration to its end)."""
    fleet = hosts.fleet
    hosts.until(
        "the VM reported Running on hostb", lambda: hosts.placed() == ("Running", "hostb"), 180
    )
    on_b = fleet.connections[1].lookupByName(domain_of(VM))
    assert on_b.isActive()
    # libvirt undefines the source in the migration's last step, which may come a moment
    # after the destination's guest runs and is reported.
    hosts.until(
        "the domain gone from hosta",
        lambda: domain_of(VM) not in domain_names(fleet.connections[0]),
        30,
    )
    # libvirt leaves the source's copies of the disks it copied; the host deletes them
    hosts.until(
        "hosta's copies of the VM's volumes deleted",
        lambda: (
            not source_cleaned or not [p for p in fleet.a.outside(IMAGES).iterdir() if VM in p.name]
        ),
        30,
    )
    wait_for_agent(on_b)
    assert boot_id(on_b) == before.boot
    assert float(guest(on_b, "cut -d' ' -f1 /proc/uptime")) > before.uptime
    assert read_marker(on_b) == MARKER
    hosts.until(
        "the Evict reported Completed",
        lambda: hosts.operation_report().get("phase") == "Completed",
        60,
    )


def guest(domain: libvirt.virDomain, script: str) -> str:
    return guest_output(domain, script).strip()


def slow_down_migrations(domain: libvirt.virDomain, mib_s: int) -> None:
    """Cap the domain's migration bandwidth (`virDomainMigrateSetMaxSpeed`): libvirt keeps
    it for the running domain and gives it to its next migration, whose disk copy keeps
    it to the end. Only for idle guests (fleet-lab.md, pitfall 9)."""
    domain.migrateSetMaxSpeed(mib_s)


def migration_copying(hosts: TwoHosts, domain: libvirt.virDomain) -> MigrationProgress:
    """The domain's outgoing migration job once it copies data. libvirt has set QEMU's
    migration capabilities for it by then: it does before its disk mirror starts."""

    def copying() -> MigrationProgress | None:
        stats = domain.jobStats()
        if stats.get("operation") != libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT:
            return None
        reading = MigrationProgress.from_job_stats(stats)
        return reading if reading is not None and reading.data_total > 0 else None

    return hosts.until("the outgoing migration copying", copying, 120)


def qemu_migration_capabilities(domain: libvirt.virDomain) -> dict[str, bool]:
    """The migration capabilities QEMU has set now for the domain (QMP
    `query-migrate-capabilities`, through libvirt's monitor passthrough)."""
    answer = libvirt_qemu.qemuMonitorCommand(
        domain, json.dumps({"execute": "query-migrate-capabilities"}), 0
    )
    return {c["capability"]: c["state"] for c in json.loads(answer)["return"]}
