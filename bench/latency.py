"""From a push to its status commit, through the daemon, with 1,000 VMs in the repository.

    python bench/latency.py                 # 1,000 VMs, 5 pushes
    python bench/latency.py --vms 200 --pushes 3

Issue 4's benchmark. A bare remote on disk holds a repository of N VMs (one file
each, as operators lay them out); `reconciler run` follows it as a subprocess on
libvirt's test driver, with the webhook enabled and the interval set out of the
way. After the first pass has reported every VM, each push changes one line of
one VM's manifest (`cpu.cores`, alternately 2 and 1: a change that waits for a
restart, so it shows in that VM's status) and the webhook is posted; the clock
runs from `git push` returning to the remote's branch holding the daemon's status
commit for that change.

In the same run, the floor: what any tool that reports back into Git pays at the
least, a fetch of the remote plus a commit and a push of one changed file.

The targets: push to status commit under 2 s, and the daemon's peak memory
(VmHWM, read from /proc before it stops) under 150 MiB. Times are printed as
ratios, never asserted; the exit status is non-zero only when a push is not
answered by a status commit naming the change.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.daemonlab import Daemon, Remote, Workspace, git, wait_until  # noqa: E402
from tests.hosts import CLASS, vm_yaml  # noqa: E402

TARGET_SECONDS = 2.0
TARGET_MEMORY_MIB = 150.0


def peak_memory_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def floor_seconds(remote: Remote, work: Path, rounds: int) -> float:
    """fetch + commit + push of one file: the least a Git round trip costs here."""
    clone = Workspace.clone(remote, work / "floor")
    times = []
    for n in range(rounds):
        started = time.perf_counter()
        git(clone.path, "fetch", "--quiet", "origin", remote.branch)
        git(clone.path, "reset", "--quiet", "--hard", f"origin/{remote.branch}")
        clone.write("floor.txt", f"{n}\n")
        git(clone.path, "add", "floor.txt")
        git(clone.path, "commit", "--quiet", "-m", "floor [skip ci]")
        git(clone.path, "push", "--quiet", "origin", f"HEAD:{remote.branch}")
        times.append(time.perf_counter() - started)
    git(clone.path, "rm", "--quiet", "floor.txt")
    git(clone.path, "commit", "--quiet", "-m", "floor done")
    git(clone.path, "push", "--quiet", "origin", f"HEAD:{remote.branch}")
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--pushes", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vmr-latency-") as temporary:
        work = Path(temporary)
        remote = Remote.create(work / "remote.git")
        operator = Workspace.clone(remote, work / "operator")
        operator.write("class.yaml", CLASS)
        names = [f"vm-{n:04d}" for n in range(args.vms)]
        for name in names:
            operator.write(f"vms/{name}.yaml", vm_yaml(name=name))
        operator.commit_and_push(f"{args.vms} VMs")

        daemon = Daemon(
            work / "daemon",
            {
                "repository": {"url": remote.url, "intervalSeconds": 86400},
                "libvirtUri": "test:///default",
                "nodeName": "hv",
                "storagePool": "default-pool",
                "network": "default",
            },
        )
        failures = 0
        try:
            started = time.perf_counter()
            daemon.start()
            daemon.wait_ready(timeout=120)
            wait_until("the first status commit", remote.status_commits, 600, interval=0.2)
            first = time.perf_counter() - started
            print(f"{args.vms} VMs: first pass and status commit {first:.1f}s after start")

            latencies = []
            for n in range(args.pushes):
                name = names[(n * 7919) % len(names)]
                cores = 2 if n % 2 == 0 else 1
                operator.write(f"vms/{name}.yaml", vm_yaml(name=name, cores=cores))
                pushed = operator.commit_and_push(f"{name}: {cores} core(s)")
                clock = time.perf_counter()
                daemon.push_hook()
                status_path = f"status/virtualmachines/default/{name}.yaml"

                def answered(
                    pushed: str = pushed, status_path: str = status_path, cores: int = cores
                ) -> bool:
                    head = remote.head()
                    if head == pushed:
                        return False
                    text = remote.show(status_path) or ""
                    return pushed in git(remote.path, "rev-list", head) and (
                        ("cpu.cores" in text) == (cores == 2)
                    )

                try:
                    wait_until(f"the status commit for push {n + 1}", answered, 60, 0.01)
                except AssertionError as error:
                    print(f"push {n + 1}: {error}")
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - clock)
            assert daemon.process is not None
            memory = peak_memory_mib(daemon.process.pid)
            daemon.terminate()
        finally:
            daemon.close()
        floor = floor_seconds(remote, work, 5)

    if latencies:
        median, worst = statistics.median(latencies), max(latencies)
        print(
            f"push -> status commit: median {median:.2f}s, worst {worst:.2f}s over"
            f" {len(latencies)} pushes"
        )
        print(
            f"  ratio to the target ({TARGET_SECONDS:.0f}s): {median / TARGET_SECONDS:.2f}"
            f" (worst {worst / TARGET_SECONDS:.2f}); ratio to the Git floor"
            f" ({floor * 1000:.0f} ms): {median / floor:.1f}x"
        )
    print(
        f"daemon peak memory (VmHWM): {memory:.0f} MiB; ratio to the target"
        f" ({TARGET_MEMORY_MIB:.0f} MiB): {memory / TARGET_MEMORY_MIB:.2f}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
