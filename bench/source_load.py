"""The source, load and rules stages of a one-change pass, in process, at N VMs.

    python bench/source_load.py                         # 10,000 VMs, 5 rounds
    python bench/source_load.py --size 1000 --tree /tmp/before

Issue 16's "fleet-sized repository", the part a daemon pays before planning: a bare
remote on disk holds N VMs (one file each, bench/fleetsize.py's layout) and two
reports per VM under status/; a GitSource follows it with the status folder left
out of its clone (as the daemon does once its publisher has a clone), a
ManifestCache loads each revision and rules.check checks it. Each round pushes one
changed VM and one changed report, then times update(), load() and check(). With
--tree, the same runs on another checkout too (each in a child process), and the
ratios are printed (best rounds: on a shared machine, the least disturbed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The checkout measured: the one PYTHONPATH names (run() sets it for each tree), imported
# before this checkout's folders join sys.path for fleetsize's layout and the tests'
# manifests.
from reconciler.config import RepositoryConfig
from reconciler.rules import check
from reconciler.source import ManifestCache, open_source

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "bench")]

import fleetsize  # noqa: E402

from tests.hosts import CLASS  # noqa: E402

STAGES = ("source", "load", "check")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def commit(work: Path, message: str) -> None:
    git(work, "add", "--all")
    git(work, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", message)
    git(work, "push", "--quiet", "origin", "HEAD:main")


def child(size: int, rounds: int, work: Path) -> dict[str, list[float]]:
    """The measurement, in a process whose PYTHONPATH names the checkout measured."""
    remote, author = work / "remote.git", work / "author"
    git(work, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    git(work, "init", "--quiet", "--initial-branch=main", str(author))
    git(author, "remote", "add", "origin", str(remote))
    (author / "class.yaml").write_text(CLASS, encoding="utf-8")
    groups = range(max(size // fleetsize.PER_HOST, 1))
    nodes = (fleetsize.node_of(group * fleetsize.PER_HOST, size) for group in groups)
    text = "".join(fleetsize.NODE.format(name=node, group=node) for node in nodes)
    (author / "nodes.yaml").write_text(text, encoding="utf-8")
    for folder in ("vms", "status/vms/default", "status/disks/default"):
        (author / folder).mkdir(parents=True)
    for index in range(size):
        name = fleetsize.vm_name(index)
        (author / "vms" / f"{name}.yaml").write_text(fleetsize.vm_manifest(index, size))
        (author / "status/vms/default" / f"{name}.yaml").write_text(f"phase: Running\n# {index}\n")
        (author / "status/disks/default" / f"{name}-root.yaml").write_text(
            f"phase: Ready\n# {index}\n"
        )
    commit(author, f"{size} VMs")

    source = open_source(RepositoryConfig(url=str(remote)), work / "cache", "status")
    cache = ManifestCache()
    check(cache.load(source.update()))
    source.leave_out_status(True)
    check(cache.load(source.update()))
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for round_ in range(rounds):
        index = round_ * 7 % min(size, fleetsize.PER_HOST)
        name = fleetsize.vm_name(index)
        manifest = fleetsize.vm_manifest(index, size, cores=2 + round_ % 2)
        (author / "vms" / f"{name}.yaml").write_text(f"{manifest}# round {round_}\n")
        (author / "status/vms/default" / f"{name}.yaml").write_text(f"phase: Running\n# {round_}\n")
        commit(author, f"{name}: round {round_}")
        started = time.perf_counter()
        revision = source.update()
        updated = time.perf_counter()
        loaded = cache.load(revision)
        load_done = time.perf_counter()
        check(loaded)
        checked = time.perf_counter()
        times["source"].append(updated - started)
        times["load"].append(load_done - updated)
        times["check"].append(checked - load_done)
    return times


def run(tree: Path, size: int, rounds: int) -> dict[str, list[float]]:
    environment = {**os.environ, "PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}
    command = [sys.executable, __file__, "--child", "--size", str(size), "--rounds", str(rounds)]
    output = subprocess.run(command, env=environment, check=True, capture_output=True, text=True)
    times: dict[str, list[float]] = json.loads(output.stdout.splitlines()[-1])
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", type=Path, help="an older checkout to run alternately")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory(prefix="vmr-sourceload-") as temporary:
            print(json.dumps(child(args.size, args.rounds, Path(temporary))))
        return 0
    trees = [(REPO_ROOT, "this tree")]
    if args.tree is not None:
        trees.append((args.tree.resolve(), str(args.tree)))
    results = {label: run(tree, args.size, args.rounds) for tree, label in trees}
    print(f"{args.size} VMs, one change a round: seconds, best/median of {args.rounds} rounds")
    for label, times in results.items():
        cells = "  ".join(
            f"{stage} {min(times[stage]):.3f}/{statistics.median(times[stage]):.3f}"
            for stage in STAGES
        )
        print(f"{label:>16}: {cells}")
    if len(results) == 2:
        (_, new), (old_label, old) = results.items()
        ratios = "  ".join(f"{stage} {min(new[stage]) / min(old[stage]):.2f}" for stage in STAGES)
        print(f"{'/ ' + old_label:>16}: {ratios}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
