"""The slot of a fleet's turns at 300 hosts and 30,000 VMs: the Git part of one status
publish attempt on a clone of a fleet-sized repository, just after another host landed.

    python bench/fleetslot.py                      # 300 hosts x 100 VMs
    python bench/fleetslot.py --hosts 30 --vms-per-host 10 --rounds 5

bench/fleet.py measures the turns with every daemon of the fleet on this machine's
CPUs, which at a few dozen hosts measures the CPUs; this measures what one host of a
real fleet pays per landing. A bare remote on disk holds H × V VM manifests and as many
VM reports, and H Node reports. Two StatusPublishers (hosts 0 and 1) take turns: host 1
lands a change of its V reports, then host 0 publishes a change of its own, which
fetches host 1's commit, checks it out and pushes; the time of host 0's publish minus
its write is one slot. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if "PYTHONPATH" not in os.environ:  # PYTHONPATH may name another tree, to compare
    sys.path.insert(0, str(REPO_ROOT))

from reconciler.reports.publish import StatusPublisher  # noqa: E402

REPORT = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: {name}
  namespace: fleet
  creationTimestamp: '2026-12-04T12:33:31Z'
status:
  phase: Running
  nodeName: {node}
  conditions:
  - type: AwaitingRestartToApplyConfiguration
    status: 'True'
    reason: ChangesPendingRestart
    message: 'Waiting for the user to restart the VM to apply: memory.size'
    lastTransitionTime: '2026-12-04T12:33:35Z'
  - type: Running
    status: 'True'
    reason: Running
    lastTransitionTime: '2026-12-04T12:33:32Z'
  restartAwaitingChanges:
  - path: memory.size
    currentValue: 1Gi
    desiredValue: {memory}
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def vm(host: int, index: int) -> str:
    return f"vm-{host:03d}-{index:03d}"


def create(work: Path, hosts: int, per_host: int) -> str:
    author = work / "author"
    git(work, "init", "-q", "-b", "main", str(author))
    reports = author / "status" / "virtualmachines" / "fleet"
    reports.mkdir(parents=True)
    (author / "status" / "nodes").mkdir()
    for host in range(hosts):
        folder = author / "vms" / f"host-{host:03d}"
        folder.mkdir(parents=True)
        (author / "status" / "nodes" / f"host-{host:03d}.yaml").write_text(f"host: {host}\n")
        for index in range(per_host):
            name = vm(host, index)
            (folder / f"{name}.yaml").write_text(f"kind: VirtualMachine\nname: {name}\n")
            text = REPORT.format(name=name, node=f"host-{host:03d}", memory="2Gi")
            (reports / f"{name}.yaml").write_text(text)
    git(author, "add", "-A")
    git(author, "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qm", "fleet")
    git(work, "clone", "-q", "--bare", str(author), str(work / "remote.git"))
    return f"file://{work / 'remote.git'}"


def writer(
    host: int, per_host: int, round_: int, spent: list[float]
) -> Callable[[Path], list[Path]]:
    """Host's V reports with a new desiredValue; the seconds it takes go to `spent`."""

    def write(root: Path) -> list[Path]:
        began = time.perf_counter()
        written = []
        for index in range(per_host):
            path = root / "virtualmachines" / "fleet" / f"{vm(host, index)}.yaml"
            memory = f"{3 + round_}Gi"
            path.write_text(
                REPORT.format(name=vm(host, index), node=f"host-{host:03d}", memory=memory)
            )
            written.append(path)
        spent.append(time.perf_counter() - began)
        return written

    return write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=300)
    parser.add_argument("--vms-per-host", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmr-fleetslot-") as temporary:
        work = Path(temporary)
        url = create(work, args.hosts, args.vms_per_host)
        publishers = [
            StatusPublisher(url, "main", "status", f"host-{h:03d}", work / f"host-{h:03d}")
            for h in (0, 1)
        ]
        unused: list[float] = []
        for host, publisher in enumerate(publishers):
            publisher.publish(writer(host, args.vms_per_host, 0, unused), "first")
        slots = []
        for round_ in range(1, args.rounds + 1):
            publishers[1].publish(writer(1, args.vms_per_host, round_, unused), "host 1")
            spent: list[float] = []
            began = time.perf_counter()
            publishers[0].publish(writer(0, args.vms_per_host, round_, spent), "host 0")
            slots.append(time.perf_counter() - began - sum(spent))
        files = args.hosts * args.vms_per_host
        print(
            f"{args.hosts} hosts, {files} VMs: an attempt's Git part after another host"
            f" landed: {', '.join(f'{s:.2f}' for s in slots)} s;"
            f" median {statistics.median(slots):.2f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
