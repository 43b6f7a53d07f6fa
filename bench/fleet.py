"""Many hosts, one repository: H daemons on one bare remote, one push that changes every VM.

    python bench/fleet.py                          # H = 2, 10, 30; 10 VMs per host
    python bench/fleet.py --hosts 2,10 --vms-per-host 5 --changes 2
    python bench/fleet.py --total-vms 300          # one repository of 300 VMs at every H

Issue 16's fleet benchmark. For each H, a bare remote on disk holds a repository of H
Node manifests (`host-000` ...) and H × vms-per-host VMs, each VM held to its host by a
nodeSelector on `kubernetes.io/hostname`, so the placement is known beforehand. H
`reconciler run` daemons, separate processes, each on libvirt's test driver with a
host XML of its own (`test:///PATH`: its own CPUs, memory, pool and network), all follow
the one remote with the webhook enabled and the interval set out of the way. Once the
fleet has reported every VM and the remote has been quiet for a while, one commit
changes every VM's memory (a change that waits for a restart, so every VM's report
says so); the webhook is posted to every daemon, as a forge posts it to every hook.

Measured per H, per change: the time from `git push` returning to the remote holding,
for every host, the reports of all its VMs showing the change (the fleet-wide time; the
first host's, which is about one pass; the median host's; and the time between two
hosts' landings after the first, the branch's serial part); the push retries (lost
races: `reconciler_status_push_rejections` from each daemon's /metrics, before and
after); the status commits the change took (per host); the CPU time the daemons spent
(utime + stime of each daemon and the git processes it waited for, /proc/PID/stat); the
lost reports: VMs whose report is not in the remote, names another host, or does not
show the change when the clock stops (must be 0); each daemon's peak memory. Times are
printed, with ratios between the sizes and the seconds each added host costs, never
asserted; the exit status is non-zero only when a report is lost. Last, a projection to
--project hosts: the largest size's first report plus one interval per further host.

The machine has few CPUs for H daemons: the daemons' own work (loading the revision,
planning, observing and writing their reports) is H times one host's work on the CPUs
the run has, while on a real fleet each host does it on its own; so the CPU time is
printed beside the wall time. With --vms-per-host the repository grows with the fleet
(N = 10 H by default), and the CPUs' total work with H times N: on two CPUs that is
quadratic whatever the branch costs. With --total-vms the repository is the same at
every size and only the number of hosts changes, which is what "grows at most linearly
with the number of hosts" asks about.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.daemonlab import Daemon, Remote, Workspace, git, wait_until  # noqa: E402
from tests.hosts import CLASS, HOST_XML, vm_yaml  # noqa: E402

NAMESPACE = "fleet"
NODE = """\
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {node}
  labels:
    kubernetes.io/hostname: {node}
spec:
  capacity:
    cpu: 1000
    memory: 64Ti
"""


def changed_marker(memory: str) -> re.Pattern[str]:
    """What a VM's report says once its host has seen the push of `memory`: a change
    waiting for the restart the VM's Manual approval mode leaves to the operator."""
    return re.compile(rf"^ +desiredValue: ['\"]?{re.escape(memory)}['\"]?$", re.M)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def node_name(index: int) -> str:
    return f"host-{index:03d}"


def vm_name(host: int, index: int) -> str:
    return f"vm-{host:03d}-{index:03d}"


def fleet_vm(host: int, index: int, memory: str) -> str:
    text = vm_yaml(name=vm_name(host, index), namespace=NAMESPACE, memory=memory)
    selector = f"  nodeSelector:\n    kubernetes.io/hostname: {node_name(host)}\n"
    return text.replace("spec:\n", "spec:\n" + selector, 1)


def host_xml(path: Path) -> Path:
    """The test driver's host of tests/libvirt, without its sample domain: a host of one
    daemon's own (the test driver keeps a private copy per connection)."""
    text = HOST_XML.read_text(encoding="utf-8")
    text = re.sub(r"<domain type=\"test\">.*?</domain>\s*", "", text, count=1, flags=re.S)
    path.write_text(text, encoding="utf-8")
    return path


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and of the children it waited for (git)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def peak_memory_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rejections(daemon: Daemon) -> float:
    """The daemon's lost push races so far (its /metrics counter)."""
    _, text = daemon.get("/metrics")
    match = re.search(r"^reconciler_status_push_rejections_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else float("nan")


def post_hooks(daemons: list[Daemon]) -> None:
    """The webhook to every daemon at once, as a forge posts it to each hook."""
    threads = [threading.Thread(target=daemon.push_hook) for daemon in daemons]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def reports_at(remote: Remote, revision: str, paths: list[str]) -> dict[str, str]:
    """The text of each report at `revision` ("" when absent), in one git process."""
    request = "".join(f"{revision}:{path}\n" for path in paths)
    done = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=remote.path,
        input=request.encode(),
        capture_output=True,
        check=True,
    )
    out, texts, position = done.stdout, {}, 0
    for path in paths:
        end = out.index(b"\n", position)
        header = out[position:end].split()
        position = end + 1
        if header[-1] == b"missing":
            texts[path] = ""
            continue
        size = int(header[2])
        texts[path] = out[position : position + size].decode("utf-8", "replace")
        position += size + 1
    return texts


@dataclass
class Lab:
    hosts: int
    vms_per_host: int
    work: Path
    interval: float
    remote: Remote = field(init=False)
    operator: Workspace = field(init=False)
    daemons: list[Daemon] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.remote = Remote.create(self.work / "remote.git")
        self.operator = Workspace.clone(self.remote, self.work / "operator")

    def report_path(self, host: int, index: int) -> str:
        return f"status/virtualmachines/{NAMESPACE}/{vm_name(host, index)}.yaml"

    def write_vms(self, memory: str) -> None:
        for host in range(self.hosts):
            for index in range(self.vms_per_host):
                self.operator.write(
                    f"vms/{node_name(host)}/{vm_name(host, index)}.yaml",
                    fleet_vm(host, index, memory),
                )

    def create(self) -> None:
        self.operator.write("class.yaml", CLASS)
        self.operator.write(
            "nodes.yaml", "---\n".join(NODE.format(node=node_name(h)) for h in range(self.hosts))
        )
        self.write_vms("1Gi")
        self.operator.commit_and_push(f"{self.hosts} hosts, {self.hosts * self.vms_per_host} VMs")
        for host in range(self.hosts):
            folder = self.work / node_name(host)
            folder.mkdir()
            self.daemons.append(
                Daemon(
                    folder,
                    {
                        "repository": {"url": self.remote.url, "intervalSeconds": self.interval},
                        "libvirtUri": f"test://{host_xml(folder / 'host.xml')}",
                        "nodeName": node_name(host),
                        "storagePool": "default-pool",
                        "network": "default",
                        "virtualMachineCIDRs": [],
                    },
                    env={"RECONCILER_DOMAIN_TYPE": "qemu"},
                )
            )

    def start(self) -> None:
        for daemon in self.daemons:
            daemon.start(watchdog_seconds=600)
        for daemon in self.daemons:
            daemon.wait_ready(timeout=300)

    def hosts_done(self, revision: str, changed: re.Pattern[str] | None) -> set[int]:
        """The hosts all of whose VMs' reports at `revision` name them (and, when
        `changed`, show the change)."""
        paths = {
            (h, i): self.report_path(h, i)
            for h in range(self.hosts)
            for i in range(self.vms_per_host)
        }
        texts = reports_at(self.remote, revision, list(paths.values()))
        done = set(range(self.hosts))
        for (host, _), path in paths.items():
            if not _shows(texts[path], host, changed):
                done.discard(host)
        return done

    def lost(self, revision: str, changed: re.Pattern[str] | None) -> int:
        """VMs whose report at `revision` is missing, names another host, or (when
        `changed`) does not show the change."""
        paths = {
            (h, i): self.report_path(h, i)
            for h in range(self.hosts)
            for i in range(self.vms_per_host)
        }
        texts = reports_at(self.remote, revision, list(paths.values()))
        return sum(1 for (host, _), path in paths.items() if not _shows(texts[path], host, changed))

    def wait_quiet(self, seconds: float, timeout: float) -> None:
        """Until the remote's branch has not moved for `seconds`."""
        head, since = self.remote.head(), time.monotonic()
        deadline = since + timeout
        while time.monotonic() - since < seconds:
            if time.monotonic() > deadline:
                raise AssertionError(f"the remote kept moving for {timeout:.0f}s")
            time.sleep(0.2)
            now = self.remote.head()
            if now != head:
                head, since = now, time.monotonic()

    def story(self) -> str:
        """Which hosts have not reported, and what their daemons logged last."""
        done = self.hosts_done(self.remote.head(), changed=None)
        waiting = [d for h, d in enumerate(self.daemons) if h not in done]
        gave_up = sum("giving up" in d.log_text() for d in self.daemons)
        tails = "\n".join(f"--- {d.workdir.name}:\n{d.log_tail(12)}" for d in waiting[:3])
        return (
            f"{len(waiting)} of {self.hosts} hosts not reported; {gave_up} daemons gave up a"
            f" status push at least once\n{tails}"
        )

    def stop(self) -> list[float]:
        """Peak memory (MiB) of each daemon, read before it stops."""
        peaks = []
        for daemon in self.daemons:
            if daemon.process is not None and daemon.process.poll() is None:
                peaks.append(peak_memory_mib(daemon.process.pid))
                daemon.process.terminate()
        for daemon in self.daemons:
            try:
                if daemon.process is not None:
                    daemon.process.wait(60)
            finally:
                daemon.close()
        return peaks


def _shows(text: str, host: int, changed: re.Pattern[str] | None) -> bool:
    return f"nodeName: {node_name(host)}" in text and (
        changed is None or bool(changed.search(text))
    )


@dataclass
class Change:
    seconds: float
    per_host: list[float]
    commits: int
    rejections: float
    cpu: float
    lost: int


@dataclass
class Size:
    hosts: int
    vms: int
    start_seconds: float
    changes: list[Change]
    memory: list[float]


def measure_change(lab: Lab, memory: str, timeout: float) -> Change:
    lab.write_vms(memory)
    before_rejections = sum(rejections(d) for d in lab.daemons)
    pids = [d.process.pid for d in lab.daemons if d.process is not None]
    before_cpu = sum(cpu_seconds(pid) for pid in pids)
    marker = changed_marker(memory)
    if lab.hosts_done(lab.remote.head(), changed=marker):
        raise AssertionError(f"reports show memory {memory} before it is pushed")
    pushed = lab.operator.commit_and_push(f"every VM: memory {memory}")
    clock = time.perf_counter()
    post_hooks(lab.daemons)
    landed: dict[int, float] = {}
    head = pushed
    deadline = clock + timeout
    while len(landed) < lab.hosts and time.perf_counter() < deadline:
        now = lab.remote.head()
        if now != head:
            head = now
            at = time.perf_counter() - clock
            for host in lab.hosts_done(head, changed=marker) - set(landed):
                landed[host] = at
        else:
            time.sleep(0.05)
    seconds = max(landed.values()) if len(landed) == lab.hosts else float("inf")
    # The daemons' counters and CPU once every report is in (or the time ran out).
    lab.wait_quiet(2.0, 60)
    head = lab.remote.head()
    commits = int(git(lab.remote.path, "rev-list", "--count", f"{pushed}..{head}"))
    lost = lab.lost(head, changed=marker)
    after_cpu = sum(cpu_seconds(pid) for pid in pids)
    after_rejections = sum(rejections(d) for d in lab.daemons)
    return Change(
        seconds=seconds,
        per_host=sorted(landed.values()),
        commits=commits,
        rejections=after_rejections - before_rejections,
        cpu=after_cpu - before_cpu,
        lost=lost,
    )


def run_size(hosts: int, vms_per_host: int, changes: int, timeout: float, verbose: bool) -> Size:
    with tempfile.TemporaryDirectory(prefix=f"vmr-fleet-{hosts}-") as temporary:
        lab = Lab(hosts, vms_per_host, Path(temporary), interval=max(3600.0, timeout * 4))
        lab.create()
        try:
            started = time.perf_counter()
            lab.start()

            def fleet_reported() -> bool:
                head = lab.remote.head()
                return len(lab.hosts_done(head, changed=None)) == hosts

            try:
                wait_until("every host's first reports", fleet_reported, timeout, interval=0.5)
            except AssertionError:
                print(lab.story())
                raise
            start_seconds = time.perf_counter() - started
            lab.wait_quiet(3.0, timeout)
            results = []
            for n in range(changes):
                result = measure_change(lab, f"{2 + n}Gi", timeout)
                results.append(result)
                if result.lost and verbose:
                    for daemon in lab.daemons:
                        print(f"--- {daemon.workdir.name}\n{daemon.log_tail(20)}")
            if verbose:
                for daemon in lab.daemons[:3]:
                    print(f"--- {daemon.workdir.name}\n{daemon.log_tail(30)}")
        finally:
            memory_peaks = lab.stop()
    return Size(hosts, hosts * vms_per_host, start_seconds, results, memory_peaks)


HEADER = (
    "| hosts | VMs | fleet-wide change | first host | median host | between landings"
    " | push retries per host | commits per change | daemons' CPU | lost | peak MiB |\n"
    + "| --- " * 11
    + "|"
)


def interval(change: Change) -> float:
    """The time between two hosts' landings, once the first has landed: the branch's
    serial part, one host after the other."""
    landed = change.per_host
    return (landed[-1] - landed[0]) / (len(landed) - 1) if len(landed) > 1 else float("nan")


def rows(size: Size) -> str:
    lines = []
    for change in size.changes:
        first = change.per_host[0] if change.per_host else float("nan")
        median = statistics.median(change.per_host) if change.per_host else float("nan")
        lines.append(
            f"| {size.hosts} | {size.vms} | {change.seconds:.2f} s | {first:.2f} s"
            f" | {median:.2f} s | {interval(change):.2f} s"
            f" | {change.rejections / size.hosts:.2f}"
            f" | {change.commits} ({change.commits / size.hosts:.2f} per host)"
            f" | {change.cpu:.1f} s | {change.lost} | {max(size.memory):.0f} |"
        )
    return "\n".join(lines)


def print_summary(sizes: list[Size], cpus: int, project: int) -> None:
    print()
    print(HEADER)
    for size in sizes:
        print(rows(size))
    print()
    base = sizes[0]
    base_time = statistics.median(c.seconds for c in base.changes)
    for size in sizes[1:]:
        time_ = statistics.median(c.seconds for c in size.changes)
        hosts_ratio, time_ratio = size.hosts / base.hosts, time_ / base_time
        print(
            f"{size.hosts} hosts against {base.hosts}: {hosts_ratio:.1f}x the hosts,"
            f" {time_ratio:.1f}x the time to a fleet-wide change"
            f" ({'at most' if time_ratio <= hosts_ratio else 'MORE than'} linear);"
            f" per host {time_ / size.hosts:.2f} s against {base_time / base.hosts:.2f} s"
        )
    for smaller, larger in itertools.pairwise(sizes):
        added = larger.hosts - smaller.hosts
        grown = statistics.median(c.seconds for c in larger.changes) - statistics.median(
            c.seconds for c in smaller.changes
        )
        print(
            f"{smaller.hosts} -> {larger.hosts} hosts: {grown / added:.2f} s more per host added"
            " (linear growth keeps this flat)"
        )
    for size in sizes:
        changes = size.changes
        cpu = statistics.median(c.cpu for c in changes) / size.hosts
        print(
            f"{size.hosts} hosts: first reports of all {size.vms} VMs {size.start_seconds:.0f} s"
            f" after start; a change's CPU per host {cpu:.2f} s (the {cpus} CPUs here run"
            f" every host's pass: {cpu * size.hosts / cpus:.1f} s of the wall time)"
        )
    largest = sizes[-1]
    first = statistics.median(c.per_host[0] for c in largest.changes if c.per_host)
    between = statistics.median(interval(c) for c in largest.changes)
    retries = statistics.median(c.rejections for c in largest.changes) / largest.hosts
    print(
        f"projection to {project} hosts, from {largest.hosts}: the first host's report after"
        f" {first:.1f} s (one pass), then one host every {between:.2f} s:"
        f" {first + (project - 1) * between:.0f} s to a fleet-wide change, about"
        f" {project} status commits and {project * retries:.0f} rejected pushes per change"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="2,10,30", help="comma-separated fleet sizes")
    parser.add_argument("--vms-per-host", type=int, default=10)
    parser.add_argument(
        "--total-vms",
        type=int,
        help="one repository of this many VMs at every size, spread over the H hosts"
        " (instead of --vms-per-host: the hosts' count alone changes between sizes)",
    )
    parser.add_argument("--changes", type=int, default=1, help="fleet-wide changes per size")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per wait")
    parser.add_argument("--verbose", action="store_true", help="print the daemons' logs")
    parser.add_argument("--project", type=int, default=300, help="hosts to project to")
    args = parser.parse_args()
    # A SIGTERM (timeout, a CI's cancel) unwinds like an error, so the daemons are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = []
    cpus = os.cpu_count() or 1
    for hosts in (int(h) for h in args.hosts.split(",")):
        started = time.perf_counter()
        per_host = args.total_vms // hosts if args.total_vms else args.vms_per_host
        size = run_size(hosts, per_host, args.changes, args.timeout, args.verbose)
        sizes.append(size)
        print(f"{rows(size)}  (in {time.perf_counter() - started:.0f}s)", flush=True)
    print_summary(sizes, cpus, args.project)
    return 1 if any(c.lost for s in sizes for c in s.changes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
