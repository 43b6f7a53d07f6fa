"""`reconciler validate` of hostile files, as a ratio to the 1 s target.

    python bench/hostile.py
    python bench/hostile.py --repeat 5

Issue 12's benchmark. A pull request can add a small file that asks the loader for
unbounded work: a 1 KB alias bomb (9 levels of ten aliases: a billion values once
expanded), a 20 KB sequence 10,000 deep, a 15 KB mapping 3,000 deep, a file just over
maxFileBytes. For each, in a repository that holds only that file:

  command     `python -m reconciler validate` in a fresh interpreter, as CI runs
              it: wall time (start-up included, best of --repeat) and the child's
              peak resident memory
  load        load_text of the file in this process: time (best of --repeat) and
              the peak of what it allocated (tracemalloc)

and, for reference, the command on a repository of one valid manifest: the start-up
every run pays. The target, from the issue: each command under 1 s with one finding.

Then the daemon: `reconciler run` (test driver, a bare remote on disk) on a revision
of 20 VMs, once clean and once with every case above added (plus the same poisons as
status reports), its peak memory (VmHWM) once the revision's node report is pushed,
against the daemon's budget of 150 MiB (bench/latency.py) and against the clean run.

Ratios are reported, never asserted; the exit status is non-zero only when a case
does not end in exactly one `limits` finding and exit code 1, or the poisoned daemon
does not name the poisoned files in its node report.

Runs this checkout's reconciler (not an installed copy): the repository root is put
first on the module path, also for the child.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.loader import load_text  # noqa: E402
from reconciler.policies import load_limits  # noqa: E402
from tests.daemonlab import Daemon, Remote, Workspace, settings, wait_until  # noqa: E402
from tests.hostile_yaml import alias_bomb, deep_mapping, deep_sequence  # noqa: E402
from tests.hosts import CLASS, vm_yaml  # noqa: E402

TARGET_SECONDS = 1.0
DAEMON_BUDGET_MIB = 150.0
DAEMON_VMS = 20
VALID = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: data
spec:
  persistentVolumeClaim:
    size: 10Gi
"""
# The child reports its own peak resident set, as the kernel counts it, on stderr's
# last line.
CHILD = """\
import resource, sys
from reconciler.cli import main
try:
    code = main(sys.argv[1:])
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def cases() -> dict[str, Callable[[], str]]:
    oversize = load_limits().max_file_bytes + 1
    return {
        "alias bomb, 9 levels of 10": lambda: alias_bomb(9, 10),
        "sequence 10,000 deep": lambda: deep_sequence(10_000),
        "mapping 3,000 deep": lambda: deep_mapping(3_000),
        f"file of {oversize:,} bytes": lambda: "a: " + "x" * oversize + "\n",
    }


def command(directory: Path) -> tuple[float, float, int, list[dict[str, object]]]:
    """Seconds, peak MiB, exit code and findings of `reconciler validate DIR`."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "validate", str(directory), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        timeout=600,
    )
    seconds = time.perf_counter() - start
    peak_mib = int(done.stderr.strip().splitlines()[-1]) / 1024
    return seconds, peak_mib, done.returncode, json.loads(done.stdout or "[]")


def load(text: str) -> tuple[float, float]:
    """Seconds and peak MiB allocated to load the text in this process."""
    tracemalloc.start()
    load_text(text, "case.yaml")
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    start = time.perf_counter()
    load_text(text, "case.yaml")
    return time.perf_counter() - start, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, best kept")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    problems = []
    print(
        f"{'case':<28} {'bytes':>9} {'command s':>10} {'x target':>9} {'peak MiB':>9}"
        f" {'load s':>8} {'load MiB':>9}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        rows = {"one valid manifest (start-up)": lambda: VALID, **cases()}
        for label, make in rows.items():
            text = make()
            directory = Path(tmp) / str(len(os.listdir(tmp)))
            directory.mkdir()
            (directory / "case.yaml").write_text(text, encoding="utf-8")
            runs = [command(directory) for _ in range(args.repeat)]
            seconds = min(run[0] for run in runs)
            peak = max(run[1] for run in runs)
            _, _, code, findings = runs[-1]
            load_runs = [load(text) for _ in range(args.repeat)]
            load_seconds = min(run[0] for run in load_runs)
            load_peak = max(run[1] for run in load_runs)
            print(
                f"{label:<28} {len(text.encode()):>9,} {seconds:>10.3f} "
                f"{seconds / TARGET_SECONDS:>8.2f}x {peak:>9.1f} {load_seconds:>8.4f} "
                f"{load_peak:>9.2f}"
            )
            if label in cases() and (code != 1 or [f.get("rule") for f in findings] != ["limits"]):
                problems.append(f"{label}: exit {code}, findings {findings}")
            if label not in cases() and code != 0:
                problems.append(f"{label}: exit {code}, findings {findings}")
    clean, poisoned, named = daemon_peaks()
    print(
        f"daemon peak memory (VmHWM), {DAEMON_VMS} VMs: clean {clean:.0f} MiB, with every"
        f" poison {poisoned:.0f} MiB ({poisoned / clean:.2f}x clean,"
        f" {poisoned / DAEMON_BUDGET_MIB:.2f}x the {DAEMON_BUDGET_MIB:.0f} MiB budget)"
    )
    if not named:
        problems.append("the poisoned daemon's node report does not name the poisoned files")
    for problem in problems:
        print(f"bench/hostile.py: {problem}")
    return 1 if problems else 0


def daemon_peaks() -> tuple[float, float, bool]:
    """Peak MiB of a daemon on a clean revision and on a poisoned one; whether the
    poisoned one's node report named what was refused."""
    with tempfile.TemporaryDirectory(prefix="bench-hostile-daemon-") as tmp:
        clean, _ = daemon_peak(Path(tmp) / "clean", poisoned=False)
        poisoned, last_error = daemon_peak(Path(tmp) / "poisoned", poisoned=True)
    named = all(f"hostile-{n}.yaml" in last_error for n in range(len(cases())))
    return clean, poisoned, named


def daemon_peak(work: Path, *, poisoned: bool) -> tuple[float, str]:
    """VmHWM of `reconciler run` once its node report for the pushed revision is in
    the remote, and that report's lastError."""
    remote = Remote.create(work / "remote.git")
    operator = Workspace.clone(remote, work / "operator")
    operator.write("class.yaml", CLASS)
    for number in range(DAEMON_VMS):
        operator.write(f"vms/vm-{number}.yaml", vm_yaml(f"vm-{number}"))
    if poisoned:
        for number, make in enumerate(cases().values()):
            text = make()
            (operator.path / f"hostile-{number}.yaml").write_text(text, encoding="utf-8")
            report = operator.path / "status" / "virtualmachines" / "default"
            report.mkdir(parents=True, exist_ok=True)
            (report / f"stray-{number}.yaml").write_text(text, encoding="utf-8")
    head = operator.commit_and_push("the fleet")
    daemon = Daemon(
        work / "hv",
        settings(remote, "hv", **{"repository": {"url": remote.url, "intervalSeconds": 3600}}),
    )
    daemon.start()
    try:
        daemon.wait_ready()

        def reported() -> dict[str, object] | None:
            daemon.check_alive()
            document = remote.document("status/nodes/hv.yaml")
            status = (document or {}).get("status") or {}
            return status if status.get("lastAppliedRevision") == head else None

        status = wait_until("the node report of the revision", reported, 300, interval=0.2)
        assert daemon.process is not None
        return peak_memory_mib(daemon.process.pid), str(status.get("lastError", ""))
    finally:
        daemon.close()


def peak_memory_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
