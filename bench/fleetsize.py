"""A host that owns 100 VMs of a fleet-sized repository: what it pays for the others.

    python bench/fleetsize.py                          # 100, 1,000 and 10,000 VMs
    python bench/fleetsize.py --sizes 100 1000 --rounds 3
    python bench/fleetsize.py --tree /tmp/before       # also the same on another checkout,
                                                       # alternating with this one

Issue 16's "fleet-sized repository". A bare remote on disk holds N VMs (one file
each) and N/100 Nodes, each labelled with a group; every VM's nodeSelector names a
group, so host `hv` (this daemon) owns 100 of them and the other Nodes the rest.
The other hosts are not run: their reports are written into the status tree as they
would write them (hv's own report of one of its VMs, renamed), so hv sees the steady
state of a fleet: 100 of its own VMs, N - 100 VMs reported Running elsewhere.

`reconciler run` follows the remote as a subprocess on libvirt's test driver with the
webhook on and the interval timer at --interval seconds. Measured from its own log
line of each pass ("pass (...) at SHA: ... 0.42s (source ..., load ..., ...)"):

  no-op        an interval pass over a revision it has applied (nothing changed)
  one-own      the pass after a push that changes one of hv's VMs (cores: 2)
  one-other    the pass after a push that changes one VM of another host
  memory       the daemon's peak resident size (VmHWM from /proc) at the end

Each is the best and the median over --rounds (the best is the least disturbed on a
shared machine, and the ratios use it); the one-change passes are ratios to the same
pass at the smallest size (issue 16: within 2x at 1,000 VMs, within 3x at 10,000; peak
memory under 150 MiB at 1,000 and 400 MiB at 10,000). With --tree, every size runs
on both checkouts in alternating order and the new/old ratios are printed. The exit
status is non-zero only when a push goes unanswered, never because of a time.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.daemonlab import Daemon, Remote, Workspace, git, wait_until  # noqa: E402
from tests.hosts import CLASS, vm_yaml  # noqa: E402

LOCAL = "hv"
PER_HOST = 100
NODE = """\
---
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
  labels:
    group: {group}
spec:
  capacity:
    cpu: 1000
    memory: 64Ti
"""
# Issue 16, "Done when": one-change pass ratios to the smallest size, peak memory.
PASS_TARGETS = {1000: 2.0, 10000: 3.0}
MEMORY_TARGETS_MIB = {1000: 150.0, 10000: 400.0}
PASS_LINE = re.compile(
    r"reconciler\.daemon: pass \((?P<why>[^)]*)\) at (?P<sha>[0-9a-f]+): .*?"
    r" (?P<seconds>[0-9.]+)s \((?P<stages>[^)]*)\)$",
    re.MULTILINE,
)


@dataclass
class Sample:
    size: int
    tree: str
    first_commit: float = 0.0
    noop: list[float] = field(default_factory=list)
    own: list[float] = field(default_factory=list)
    other: list[float] = field(default_factory=list)
    stages: dict[str, str] = field(default_factory=dict)
    memory_mib: float = float("nan")
    failures: int = 0


def node_of(index: int, size: int) -> str:
    """The Node VM `index` is placed on: hv the first PER_HOST, then the others in turn."""
    host = index // PER_HOST
    return LOCAL if host == 0 else f"node-{host:03d}"


def vm_name(index: int) -> str:
    return f"vm-{index:05d}"


def vm_manifest(index: int, size: int, cores: int = 1) -> str:
    text = vm_yaml(name=vm_name(index), cores=cores, run_policy="AlwaysOn", approval="Manual")
    selector = f"spec:\n  nodeSelector:\n    group: {node_of(index, size)}\n"
    return text.replace("spec:\n", selector, 1)


def peak_memory_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def passes(daemon: Daemon) -> list[re.Match[str]]:
    return list(PASS_LINE.finditer(daemon.log_text()))


def first_pass_at(daemon: Daemon, sha: str) -> re.Match[str] | None:
    """The log line of the first pass at revision `sha`: the one that applied the change,
    whether the webhook or the timer asked for it."""
    for match in passes(daemon):
        if sha.startswith(match["sha"]):
            return match
    return None


def others_reports(remote: Remote, work: Path, size: int) -> dict[str, str]:
    """The reports the other hosts would have written of their VMs: hv's own of vm 0,
    renamed, each naming its host."""
    template: dict[str, str] = {}
    for path in remote.files():
        if path.startswith("status/") and vm_name(0) in path:
            template[path] = remote.show(path) or ""
    reports: dict[str, str] = {}
    for index in range(PER_HOST, size):
        node = node_of(index, size)
        for path, text in template.items():
            renamed = text.replace(vm_name(0), vm_name(index))
            renamed = renamed.replace(f"nodeName: {LOCAL}", f"nodeName: {node}")
            reports[path.replace(vm_name(0), vm_name(index))] = renamed
    node_report = remote.show(f"status/nodes/{LOCAL}.yaml")
    if node_report:
        for host in range(1, size // PER_HOST):
            name = f"node-{host:03d}"
            reports[f"status/nodes/{name}.yaml"] = node_report.replace(
                f"name: {LOCAL}\n", f"name: {name}\n", 1
            )
    return reports


def run_size(size: int, tree: Path, label: str, args: argparse.Namespace) -> Sample:
    sample = Sample(size, label)
    with tempfile.TemporaryDirectory(prefix="vmr-fleetsize-") as temporary:
        work = Path(temporary)
        remote = Remote.create(work / "remote.git")
        operator = Workspace.clone(remote, work / "operator")
        operator.write("class.yaml", CLASS)
        nodes = [
            NODE.format(name=node_of(h * PER_HOST, size), group=node_of(h * PER_HOST, size))
            for h in range(size // PER_HOST)
        ]
        operator.write("nodes.yaml", "".join(nodes))
        for index in range(size):
            (operator.path / "vms").mkdir(exist_ok=True)
            (operator.path / "vms" / f"{vm_name(index)}.yaml").write_text(
                vm_manifest(index, size), encoding="utf-8"
            )
        operator.commit_and_push(f"{size} VMs on {size // PER_HOST} Nodes")

        daemon = Daemon(
            work / "daemon",
            {
                "repository": {"url": remote.url, "intervalSeconds": args.interval},
                "libvirtUri": "test:///default",
                "nodeName": LOCAL,
                "storagePool": "default-pool",
                "network": "default",
                "virtualMachineCIDRs": [],
            },
            # PYTHONSAFEPATH: `python -m` puts the working directory first on sys.path,
            # which would run this checkout's code whatever PYTHONPATH says.
            env={"PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"},
        )
        try:
            started = time.perf_counter()
            daemon.start()
            daemon.wait_ready(timeout=600)
            wait_until("the first status commit", remote.status_commits, 1800, interval=0.2)
            sample.first_commit = time.perf_counter() - started
            # The steady state of the fleet: every other host has reported its VMs.
            git(operator.path, "pull", "--quiet", "--rebase", "origin", remote.branch)
            others = others_reports(remote, work, size)
            for path, text in others.items():
                target = operator.path / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text + "\n", encoding="utf-8")
            if others:
                operator.commit_and_push("status(others): the other hosts' reports")
            _measure(daemon, remote, operator, size, sample, args)
            assert daemon.process is not None
            sample.memory_mib = peak_memory_mib(daemon.process.pid)
            daemon.terminate()
        except AssertionError as error:
            print(f"{label} {size}: {error}\n{daemon.log_tail(20)}", file=sys.stderr)
            sample.failures += 1
        finally:
            daemon.close()
    return sample


def _measure(
    daemon: Daemon,
    remote: Remote,
    operator: Workspace,
    size: int,
    sample: Sample,
    args: argparse.Namespace,
) -> None:
    def interval_passes() -> list[re.Match[str]]:
        return [m for m in passes(daemon) if m["why"] == "interval"]

    # Interval passes: the first after the other hosts' reports reads them; the rest
    # are the steady no-op.
    seen = len(interval_passes())
    wait_until(
        "steady interval passes",
        lambda: len(interval_passes()) >= seen + args.rounds + 1,
        args.interval * (args.rounds + 2) + 600,
        interval=0.2,
    )
    steady = interval_passes()[seen + 1 :]
    sample.noop = [float(m["seconds"]) for m in steady]
    sample.stages["no-op"] = steady[-1]["stages"]
    for round_ in range(args.rounds):
        for kind, index in (("own", round_ * 7 % PER_HOST), ("other", PER_HOST + round_ * 7919)):
            index = min(index, size - 1) if kind == "own" else index % max(size, 1)
            if kind == "other" and size <= PER_HOST:
                continue
            path = operator.path / "vms" / f"{vm_name(index)}.yaml"
            path.write_text(vm_manifest(index, size, cores=2), encoding="utf-8")
            pushed = operator.commit_and_push(f"{vm_name(index)}: 2 cores")
            daemon.push_hook()
            found = wait_until(
                f"the pass at {pushed[:12]}",
                lambda pushed=pushed: first_pass_at(daemon, pushed),
                600,
                interval=0.05,
            )
            (sample.own if kind == "own" else sample.other).append(float(found["seconds"]))
            sample.stages[f"one-{kind}"] = found["stages"]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def best(values: list[float]) -> float:
    """The fastest round: on a machine shared with other work, the least disturbed."""
    return min(values) if values else float("nan")


def cell(values: list[float]) -> str:
    return f"{best(values):.3f}/{median(values):.3f}"


def report(samples: list[Sample]) -> None:
    by_tree: dict[str, dict[int, Sample]] = {}
    for sample in samples:
        by_tree.setdefault(sample.tree, {})[sample.size] = sample
    for tree, sizes in by_tree.items():
        smallest = sizes[min(sizes)]
        base = best(smallest.own)
        print(f"\n{tree}: host {LOCAL} owns {PER_HOST} VMs of N (seconds, best/median of rounds)")
        print(
            f"{'N':>7} {'first commit':>12} {'no-op':>13} {'one-own':>13} {'one-other':>13}"
            f" {'own/base':>8} {'target':>6} {'VmHWM MiB':>9} {'target':>6}"
        )
        for size in sorted(sizes):
            s = sizes[size]
            print(
                f"{size:>7} {s.first_commit:>11.1f}s {cell(s.noop):>13} {cell(s.own):>13}"
                f" {cell(s.other):>13} {best(s.own) / base:>8.2f}"
                f" {PASS_TARGETS.get(size, 0):>6} {s.memory_mib:>9.0f}"
                f" {MEMORY_TARGETS_MIB.get(size, 0):>6.0f}"
            )
            for kind, stages in s.stages.items():
                print(f"{'':>7}   {kind}: {stages}")
    if len(by_tree) == 2:
        (new_label, new), (old_label, old) = by_tree.items()
        print(f"\n{new_label} / {old_label} (same run, alternating; best rounds):")
        for size in sorted(new.keys() & old.keys()):
            n, o = new[size], old[size]
            print(
                f"{size:>7} no-op {best(n.noop) / best(o.noop):.2f}"
                f"  one-own {best(n.own) / best(o.own):.2f}"
                f"  one-other {best(n.other) / best(o.other):.2f}"
                f"  memory {n.memory_mib / o.memory_mib:.2f}"
                f"  first commit {n.first_commit / o.first_commit:.2f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--rounds", type=int, default=3)
    # Long enough that a push's pass is not merged with the timer's (a full one).
    parser.add_argument("--interval", type=int, default=20, help="the daemon's timer, seconds")
    parser.add_argument("--tree", type=Path, help="an older checkout to run alternately")
    args = parser.parse_args()
    trees = [(REPO_ROOT, "this tree")]
    if args.tree is not None:
        trees.append((args.tree.resolve(), f"{args.tree}"))
    samples: list[Sample] = []
    for turn, size in enumerate(args.sizes):
        order = trees if turn % 2 == 0 else trees[::-1]
        for tree, label in order:
            print(f"{label}: {size} VMs ...", file=sys.stderr, flush=True)
            samples.append(run_size(size, tree, label, args))
    report(samples)
    return 1 if any(s.failures for s in samples) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
