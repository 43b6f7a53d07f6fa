"""Evacuating a drained host: N running VMs leave host A for host B (issue 14), against
the sum of bare `virsh migrate` times of the same guests.

    sudo .venv/bin/python bench/evacuation.py              # N = 3, 2 rounds
    sudo .venv/bin/python bench/evacuation.py --vms 3 --rounds 3

Runs on the fleet lab of the end-to-end tests (tests/e2e/fleet.py: two libvirtds in
namespaces of their own, joined by a veth pair) with the tiny guest `make e2e` builds
(.cache/guest, or VMR_GUEST_DIR). As root, like the e2e suite.

In alternating rounds, one run:
- bare: N guests of the same size (1 GiB memory, a 1 GiB qcow2 disk in A's pool)
  booted on A by hand, then `virsh migrate --live --p2p --persistent --undefinesource
  --copy-storage-all` of each to B, one after the other, as an operator would script
  it; the figure is the sum of the N `virsh` run times.
- reconciler: two `reconciler run` daemons on one bare remote; N VMs (AlwaysOn, the
  same size) run on one host; the clock runs from the push that drains that host's Node
  (`spec.unschedulable: true`) to every domain running on the other host and none left
  on the drained one, then to the drained host's Node report saying `Drained` in the
  remote. The next round drains the other host, so the VMs travel back.

Times are printed as ratios, never asserted; the exit status is non-zero only when an
evacuation does not complete.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.daemonlab import Daemon, Remote, Workspace, wait_until  # noqa: E402
from tests.e2e.conftest import GUEST_DIR, WORKDIR_BASE  # noqa: E402
from tests.e2e.fleet import IMAGES, Fleet, fleet_lab  # noqa: E402
from tests.e2e.fleet_guests import create_qcow2, disk_xml  # noqa: E402
from tests.e2e.lab import remove_domains, tiny_domain_xml, wait_for_agent  # noqa: E402
from tests.hosts import CLASS, vm_yaml  # noqa: E402

NAMESPACE = "bench"
MEMORY_MIB = 1024
DISK_MIB = 1024
NODE = """\
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {node}
spec:
  unschedulable: {unschedulable}
  libvirtUri: qemu+tcp://{host}/system
"""
TIMEOUT_S = 600.0


def bare_round(fleet: Fleet, count: int, round_no: int) -> float:
    """N guests booted on A, then each `virsh migrate`d to B; the sum of those runs."""
    a, b = fleet.connections
    names = [f"bare-{round_no}-{n}" for n in range(count)]
    try:
        domains = []
        for name in names:
            disk = disk_xml(create_qcow2(fleet.a, name, DISK_MIB))
            xml = tiny_domain_xml(
                name,
                fleet.guest,
                memory_mib=MEMORY_MIB,
                console_log=Path(f"/var/log/libvirt/qemu/{name}.console"),
            ).replace("<devices>", f"<devices>\n    {disk}", 1)
            domain = a.defineXML(xml)
            domain.create()
            domains.append(domain)
        for domain in domains:
            wait_for_agent(domain)
        total = 0.0
        for name in names:
            began = time.perf_counter()
            subprocess.run(
                [
                    "virsh",
                    "-c",
                    fleet.a.uri,
                    "migrate",
                    "--live",
                    "--p2p",
                    "--persistent",
                    "--undefinesource",
                    "--copy-storage-all",
                    name,
                    fleet.b.peer_uri,
                ],
                check=True,
                capture_output=True,
            )
            total += time.perf_counter() - began
        if not set(names) <= {d.name() for d in b.listAllDomains(1)}:
            raise RuntimeError("bare: not every guest runs on B")
        return total
    finally:
        for conn in (a, b):
            remove_domains(conn, lambda candidate: candidate in names)
        for host in fleet.hosts:
            for name in names:
                host.outside(f"{IMAGES}/{name}.qcow2").unlink(missing_ok=True)


class Evacuation:
    """Two daemons on one remote, N VMs, and the drains that move them."""

    def __init__(self, fleet: Fleet, count: int, folder: Path) -> None:
        self.fleet = fleet
        self.count = count
        self.remote = Remote.create(folder / "remote.git")
        self.operator = Workspace.clone(self.remote, folder / "operator")
        self.daemons = {
            host.name.lower(): Daemon(
                folder / host.name,
                {
                    "repository": {"url": self.remote.url, "intervalSeconds": 5},
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
        self.names = [f"vm-{n}.{NAMESPACE}" for n in range(count)]

    def start(self) -> None:
        """The VMs running on host A (B drained while they are placed)."""
        self.operator.write("class.yaml", CLASS)
        self.nodes(drained="hostb")
        for n in range(self.count):
            self.operator.write(
                f"vms/vm-{n}.yaml",
                vm_yaml(
                    name=f"vm-{n}",
                    namespace=NAMESPACE,
                    kernel_boot=self.fleet.guest.kernel_boot(),
                    memory=f"{MEMORY_MIB}Mi",
                    run_policy="AlwaysOn",
                    grace=10,
                ),
            )
        self.operator.commit_and_push("bench: N VMs on hosta")
        for daemon in self.daemons.values():
            daemon.start()
        for daemon in self.daemons.values():
            daemon.wait_ready()
        self.wait("every VM running on hosta", lambda: self.all_on(0), TIMEOUT_S)
        for name in self.names:
            wait_for_agent(self.fleet.connections[0].lookupByName(name))

    def nodes(self, drained: str) -> None:
        text = "---\n".join(
            NODE.format(node=node, host=host, unschedulable=str(node == drained).lower())
            for node, host in (("hosta", "hostA"), ("hostb", "hostB"))
        )
        self.operator.write("nodes.yaml", text)

    def all_on(self, index: int) -> bool:
        here, there = self.fleet.connections[index], self.fleet.connections[1 - index]
        running = {d.name() for d in here.listAllDomains(1) if d.name() in self.names}
        left = {d.name() for d in there.listAllDomains() if d.name() in self.names}
        return len(running) == self.count and not left

    def drained_report(self, node: str) -> bool:
        document = self.remote.document(f"status/nodes/{node}.yaml") or {}
        drain = document.get("status", {}).get("drain") or {}
        return isinstance(drain, dict) and drain.get("phase") == "Drained"

    def drain(self, source: int) -> tuple[float, float]:
        """Drain the host the VMs are on; (seconds to every VM on the other host, seconds
        to the drained Node's report saying Drained in the remote)."""
        node = ("hosta", "hostb")[source]
        self.nodes(drained=node)
        self.operator.commit_and_push(f"bench: drain {node}")
        began = time.perf_counter()
        for daemon in self.daemons.values():
            daemon.push_hook()
        self.wait(f"every VM moved off {node}", lambda: self.all_on(1 - source), TIMEOUT_S)
        moved = time.perf_counter() - began
        self.wait(f"{node} reported Drained", lambda: self.drained_report(node), TIMEOUT_S)
        return moved, time.perf_counter() - began

    def wait(self, what: str, probe: Callable[[], Any], timeout: float) -> None:
        try:
            wait_until(what, probe, timeout)
        except AssertionError:
            for name, daemon in self.daemons.items():
                print(f"--- {name}:\n{daemon.log_tail(30)}", file=sys.stderr)
            raise

    def close(self) -> None:
        for daemon in self.daemons.values():
            daemon.close()
        for conn in self.fleet.connections:
            remove_domains(conn, lambda candidate: candidate in self.names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    bare: list[float] = []
    moved: list[float] = []
    reported: list[float] = []
    with (
        tempfile.TemporaryDirectory(dir=WORKDIR_BASE) as folder,
        fleet_lab(GUEST_DIR, WORKDIR_BASE) as fleet,
    ):
        Path(folder).chmod(0o755)
        evacuation = Evacuation(fleet, args.vms, Path(folder))
        try:
            evacuation.start()
            source = 0
            for round_no in range(args.rounds):
                bare.append(bare_round(fleet, args.vms, round_no))
                print(f"round {round_no + 1}: bare virsh migrate x{args.vms}: {bare[-1]:.2f}s")
                seconds, report = evacuation.drain(source)
                moved.append(seconds)
                reported.append(report)
                print(
                    f"round {round_no + 1}: reconciler drain: moved in {seconds:.2f}s,"
                    f" Node report Drained in Git at {report:.2f}s"
                )
                source = 1 - source
        finally:
            evacuation.close()
    print(
        f"\n{args.vms} VMs ({MEMORY_MIB} MiB memory, {DISK_MIB} MiB disk each), median of"
        f" {args.rounds} rounds: bare {statistics.median(bare):.2f}s;"
        f" reconciler moved {statistics.median(moved):.2f}s"
        f" ({statistics.median(moved) / statistics.median(bare):.2f}x bare),"
        f" Drained in Git {statistics.median(reported):.2f}s"
        f" ({statistics.median(reported) / statistics.median(bare):.2f}x bare)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
