"""Start-up of the `reconciler` command line, as a ratio to a bare `python -c pass`.

    python bench/startup.py                 # 10 rounds
    python bench/startup.py --rounds 30 --imports

Times, each in a fresh interpreter as a user's shell starts it (whole process, wall
clock), in alternating rounds so that a busy neighbour on the machine slows all of
them alike:

  python -c pass         the interpreter alone: no command can start faster
  reconciler --version   argument parsing and nothing else
  reconciler get vm      the VMs of a checkout of the sample repository with the
                         status reports one `reconciler apply` on libvirt's test
                         driver wrote
  reconciler validate    a directory of one small file: a class, a VM, its disk and
                         the image the disk is made from

The command runs as `python -m reconciler` from this checkout, so the code measured
is this tree's, not whichever copy the venv's `reconciler` script points at. It runs
with bytecode, as an installed package has it: PYTHONDONTWRITEBYTECODE is dropped and
the bytecode of every module goes to a temporary PYTHONPYCACHEPREFIX (nothing is
written to the checkout), filled by a first, untimed run of each command. --source
measures with PYTHONDONTWRITEBYTECODE=1 instead, as a sandbox that sets it runs the
checkout: every module of the checkout (without a __pycache__ of its own) is compiled
again at each start, about a sixth of the time of `get` and `validate`.

The target (under 0.3 s of wall time each, issue 13) is reported, never asserted:
the exit code is non-zero only when a command fails, which would make its time
meaningless. --imports also prints each command's slowest imports from
`python -X importtime` (cumulative microseconds), where the time goes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
SAMPLE_REPO = CHECKOUT / "sample-repo"
TARGET_SECONDS = 0.3
# The host of tests/cli/conftest.py: libvirt's built-in test driver, nothing touched.
HOST_OPTIONS = (
    "--libvirt-uri",
    "test:///default",
    "--storage-pool",
    "default-pool",
    "--network",
    "default",
    "--domain-type",
    "qemu",
    "--node-name",
    "virtlab-pt-1",
    "--cidr",
    "10.66.10.0/24",
)
# One file that validates clean on its own: every reference inside it resolves.
ONE_FILE_PARTS = (
    "classes/host.yaml",
    "vms/linux-vm.yaml",
    "disks/linux-vm-root.yaml",
    "images/ubuntu-22-04.yaml",
)


def reconciler(*argv: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *argv]


def bytecode_environment(pycache: Path | None) -> dict[str, str]:
    """The environment of every timed run: bytecode kept under pycache, or, with None,
    none written."""
    environment = dict(os.environ)
    if pycache is None:
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
        environment["PYTHONPYCACHEPREFIX"] = str(pycache)
    return environment


def make_checkout(root: Path) -> Path:
    """The sample repository with the status reports of one pass, as `get` reads them."""
    repo = root / "repo"
    shutil.copytree(SAMPLE_REPO, repo)
    subprocess.run(
        reconciler("apply", str(repo), *HOST_OPTIONS, "--status-dir", str(repo / "status")),
        cwd=CHECKOUT,
        check=True,
        capture_output=True,
    )
    return repo


def make_one_file(root: Path) -> Path:
    folder = root / "one-file"
    folder.mkdir()
    parts = [(SAMPLE_REPO / part).read_text() for part in ONE_FILE_PARTS]
    (folder / "linux-vm.yaml").write_text("---\n".join(parts))
    return folder


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float  # user + system of the process: what it would take alone on the machine
    code: int


def timed(command: list[str], environment: dict[str, str]) -> Run:
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=CHECKOUT, env=environment, capture_output=True, check=False)
    wall = time.perf_counter() - start
    return Run(wall, _children_cpu() - cpu_before, done.returncode)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def slowest_imports(
    command: list[str], count: int, environment: dict[str, str]
) -> list[tuple[int, str]]:
    """The `count` imports with the largest cumulative time, in microseconds."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        cwd=CHECKOUT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in done.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[1].strip().isdigit():
            rows.append((int(fields[1]), fields[2].rstrip()))
    return sorted(rows, reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds (default 10)")
    parser.add_argument(
        "--imports", action="store_true", help="also print each command's slowest imports"
    )
    parser.add_argument(
        "--source",
        action="store_true",
        help="set PYTHONDONTWRITEBYTECODE: the checkout's modules compile at every start",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        repo = make_checkout(Path(tmp))
        one_file = make_one_file(Path(tmp))
        environment = bytecode_environment(None if args.source else Path(tmp) / "pycache")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "reconciler --version": reconciler("--version"),
            "reconciler get vm": reconciler("get", "vm", "--dir", str(repo)),
            "reconciler validate (one file)": reconciler("validate", str(one_file)),
        }
        runs: dict[str, list[Run]] = {label: [] for label in commands}
        failed: dict[str, int] = {}
        for command in commands.values():
            timed(command, environment)  # warm the page cache and write the bytecode first
        for _ in range(args.rounds):
            for label, command in commands.items():
                run = timed(command, environment)
                runs[label].append(run)
                if run.code != 0:
                    failed[label] = run.code

        floor = statistics.median(run.wall for run in runs["python -c pass"])
        bytecode = "no bytecode of the checkout" if args.source else "with bytecode"
        print(f"{args.rounds} alternating rounds, {bytecode}; wall time (median, best), CPU time")
        print(f"{'command':<32} {'median s':>9} {'best s':>8} {'x pass':>7} {'cpu s':>7}  target")
        for label, measured in runs.items():
            median = statistics.median(run.wall for run in measured)
            best = min(run.wall for run in measured)
            cpu = statistics.median(run.cpu for run in measured)
            verdict = (
                ""
                if label == "python -c pass"
                else ("under" if median < TARGET_SECONDS else "ABOVE")
            )
            print(
                f"{label:<32} {median:>9.3f} {best:>8.3f} {median / floor:>6.1f}x"
                f" {cpu:>7.3f}  {verdict}"
            )
        print(f"target: under {TARGET_SECONDS} s of wall time each (issue 13)")
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs: on a busy machine")
        print("the wall time waits for a CPU, the CPU time (median) does not")

        if args.imports:
            for label, command in list(commands.items())[1:]:
                print(f"\nslowest imports of {label} (cumulative us):")
                for micros, module in slowest_imports(command, 12, environment):
                    print(f"  {micros:>9}  {module}")

        for label, code in failed.items():
            print(f"bench/startup.py: {label} exited {code}; its time means nothing")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
