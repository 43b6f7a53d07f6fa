"""Status reports written by fresh processes, before and after issue 16, as ratios.

    python bench/reports.py                    # 100 and 1000 VMs, 3 rounds
    python bench/reports.py --vms 100 --rounds 5 --before REF

Issue 16, "nothing unchanged is rendered or written". For each size, one real
`reconciler apply` on libvirt's test driver (tests/libvirt/host.xml) makes the
inputs: N VMs with a disk each and a generated address (VirtualMachine,
VirtualDisk, VirtualMachineIPAddress, lease and node reports, the README), and
the host the pass left, with its domains and volumes, as a test-driver XML.
Then, in alternating rounds, each in a new Python process (as a one-shot command
and a daemon's first pass are), for the code before (a `git archive` of --before)
and after (this checkout):

  first     write_host_reports into an empty status tree and an empty cache
  no-op     the same pass again over that tree: nothing changed
  one       the same pass with one VM changed

timed around write_host_reports itself (imports and unpickling the inputs are not
counted), and, at the smallest size, a whole one-shot `reconciler apply` that finds
nothing to do on the test driver (the host the cold pass left), timed as a command.
Each figure is the median of the rounds; the ratio is before / after. The reports
both write must be byte for byte the same: the run fails if they are not.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST_XML = ROOT / "tests" / "libvirt" / "host.xml"
# The last commit before issue 16's report work: the code "before" is measured at.
BEFORE = "6ad22c6"
CIDR = "10.66.0.0/16"
NAMESPACES = 4

CLASS = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: bench
spec:
  cpu:
    type: Host
  sizingPolicies:
    - cores: {min: 1, max: 4}
      memory: {min: 128Mi, max: 8Gi}
      coreFractions: [5, 10, 20, 50, 100]
"""

VM = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: bench-{index}
  namespace: {namespace}
spec:
  virtualMachineClassName: bench
  runPolicy: AlwaysOn
  cpu:
    cores: 1
    coreFraction: 5%
  memory:
    size: 128Mi
  blockDeviceRefs:
    - kind: VirtualDisk
      name: bench-{index}-root
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: bench-{index}-root
  namespace: {namespace}
spec:
  persistentVolumeClaim:
    size: 16Mi
"""


def host_options(uri: str) -> list[str]:
    return [
        "--libvirt-uri",
        uri,
        "--storage-pool",
        "default-pool",
        "--network",
        "default",
        "--domain-type",
        "qemu",
        "--node-name",
        "bench",
        "--cidr",
        CIDR,
    ]


# ------------------------------------------------------------------ prepare (after code)


def prepare(vms: int, folder: Path) -> None:
    """The repository, the inputs of write_host_reports as a cold pass gives them, and
    the host that pass left (folder/host.xml)."""
    import reconciler.cli.engine as engine
    from reconciler.cli import main

    repo = folder / "repo"
    repo.mkdir(parents=True)
    (repo / "class.yaml").write_text(CLASS)
    for index in range(vms):
        namespace = f"team-{index % NAMESPACES}"
        (repo / f"vm-{index}.yaml").write_text(VM.format(index=index, namespace=namespace))
    connections: list[Any] = []
    captured: list[tuple[Any, ...]] = []
    original_open, original_write = engine.open_connection, engine.write_host_reports

    def keep_open(uri: str) -> Any:
        connections.append(original_open(uri))
        return connections[-1]

    def capture(*args: Any) -> list[Path]:
        captured.append(args)
        return original_write(*args)

    engine.open_connection = keep_open  # type: ignore[assignment]
    engine.write_host_reports = capture  # type: ignore[assignment]
    status = folder / "cold-status"
    argv = ["apply", str(repo), *host_options(f"test://{HOST_XML}"), "--status-dir", str(status)]
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            code = main(argv)
        finally:
            sys.stdout = stdout
    if code != 0 or not captured:
        raise SystemExit(f"the cold apply failed (exit {code})")
    (folder / "host.xml").write_text(_host_xml(connections[-1]))
    args = captured[-1]
    plan, changed = args[1], args[1]
    first = sorted(plan.statuses)[0]
    resized = replace(plan.statuses[first], memory="256Mi")
    changed = replace(plan, statuses={**plan.statuses, first: resized})
    with (folder / "inputs.pickle").open("wb") as file:
        pickle.dump({"same": args, "one": (args[0], changed, *args[2:])}, file)


def _host_xml(connection: Any) -> str:
    """tests/libvirt/host.xml with the domains and volumes the pass made."""
    tree = ET.parse(HOST_XML)
    node = tree.getroot()
    for domain in node.findall("domain"):
        node.remove(domain)
    network = node.find("network")
    position = list(node).index(network) if network is not None else len(node)
    for offset, domain in enumerate(connection.listAllDomains()):
        node.insert(position + offset, ET.fromstring(domain.XMLDesc(0)))
    pool_element = node.find("pool")
    assert pool_element is not None
    pool = connection.storagePoolLookupByName("default-pool")
    for volume in pool.listAllVolumes():
        pool_element.append(ET.fromstring(volume.XMLDesc(0)))
    return ET.tostring(node, encoding="unicode")


# ------------------------------------------------------------------ one measurement


def measure(inputs: Path, which: str, status: Path) -> None:
    """One write_host_reports in this (new) process; prints its seconds and the files
    it changed, as JSON."""
    from reconciler.reports.tree import write_host_reports

    with inputs.open("rb") as file:
        args = pickle.load(file)[which]
    try:
        from reconciler.reports import known  # after issue 16 only
    except ImportError:
        known = None  # type: ignore[assignment]
    cache = os.environ.get("BENCH_CACHE")
    if known is not None and cache:
        known.keep_known_reports(Path(cache))  # as `reconciler apply` does (cli/engine.py)
    start, cpu = time.perf_counter(), time.process_time()
    changed = write_host_reports(status, *args[1:])
    if known is not None:
        known.save_known_reports()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "changed": len(changed)}))


# ------------------------------------------------------------------ the run


def _child(code: Path, *argv: str, cache: Path | None = None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code), "BENCH_CACHE": str(cache or "")}
    env["XDG_CACHE_HOME"] = str(cache or "/nonexistent")
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *argv],
        env=env,
        cwd=code,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} ({code}) failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _apply_seconds(code: Path, folder: Path, status: Path, cache: Path) -> tuple[float, float]:
    """The command's wall time and CPU time (user + system)."""
    env = {**os.environ, "PYTHONPATH": str(code), "XDG_CACHE_HOME": str(cache)}
    argv = [sys.executable, "-m", "reconciler", "apply", str(folder / "repo")]
    argv += [*host_options(f"test://{folder / 'host.xml'}"), "--status-dir", str(status)]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=code, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"reconciler apply failed: {done.stderr[-2000:]}")
    if "\n0 VM(s) with changes" not in "\n" + done.stdout:
        raise SystemExit(f"reconciler apply was not a no-op:\n{done.stdout[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    return seconds, cpu


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _export(ref: str, into: Path) -> Path:
    archive = into / "before.tar"
    with archive.open("wb") as file:
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "reconciler", "policies"],
            stdout=file,
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "before", filter="data")
    return into / "before"


def run(sizes: list[int], rounds: int, before_ref: str) -> int:
    failures = []
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as temporary:
        work = Path(temporary)
        codes = {"before": _export(before_ref, work), "after": ROOT}
        print(f"before: {before_ref} (git archive), after: {ROOT}; median of {rounds} rounds")
        for vms in sizes:
            folder = work / f"n{vms}"
            folder.mkdir()
            subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--prepare", str(vms), str(folder)],
                env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(work / "prep")},
                cwd=ROOT,
                check=True,
                stderr=subprocess.DEVNULL,
            )
            inputs = folder / "inputs.pickle"
            times: dict[tuple[str, str], list[float]] = {}
            cpus: dict[tuple[str, str], list[float]] = {}
            written: dict[tuple[str, str], int] = {}
            trees: dict[str, dict[str, bytes]] = {}
            for round_ in range(rounds):
                for name, code in codes.items() if round_ % 2 == 0 else reversed(codes.items()):
                    status = work / f"status-{vms}-{name}-{round_}"
                    cache = work / f"cache-{vms}-{name}-{round_}"
                    for scenario, which in (("first", "same"), ("no-op", "same"), ("one", "one")):
                        found = _child(
                            code, "--measure", str(inputs), which, str(status), cache=cache
                        )
                        times.setdefault((name, scenario), []).append(found["seconds"])
                        cpus.setdefault((name, scenario), []).append(found["cpu"])
                        written[(name, scenario)] = found["changed"]
                    trees[name] = _tree(status)
            if trees["before"] != trees["after"]:
                failures.append(f"{vms} VMs: the reports before and after differ")
            reports = len([key for key in trees["after"] if key.endswith(".yaml")])
            print(f"\n{vms} VMs: {reports} report files; write_host_reports in a new process")
            print(
                f"  {'':8} {'CPU before':>11} {'after':>9} {'ratio':>7}   wall before/after   files"
            )
            for scenario in ("first", "no-op", "one"):
                old, new = (statistics.median(cpus[(name, scenario)]) for name in codes)
                wall_old, wall_new = (statistics.median(times[(name, scenario)]) for name in codes)
                print(
                    f"  {scenario:8} {old:10.3f}s {new:8.3f}s {old / new:6.1f}x"
                    f"   {wall_old:7.3f}s/{wall_new:.3f}s {wall_old / wall_new:5.1f}x"
                    f"   {written[('after', scenario)]}"
                )
            if vms == min(sizes):
                failures.extend(_apply_round(vms, folder, codes, rounds, work))
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def _apply_round(
    vms: int, folder: Path, codes: dict[str, Path], rounds: int, work: Path
) -> list[str]:
    """A one-shot `reconciler apply` that finds nothing to do, as a whole command."""
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in codes}
    statuses = {}
    for name, code in codes.items():
        # Its first run on the host writes the reports (and this version's cache).
        statuses[name] = work / f"apply-status-{name}"
        _apply_seconds(code, folder, statuses[name], work / f"apply-cache-{name}")
    for round_ in range(rounds):
        for name, code in codes.items() if round_ % 2 == 0 else reversed(codes.items()):
            before = _tree(statuses[name])
            seconds[name].append(
                _apply_seconds(code, folder, statuses[name], work / f"apply-cache-{name}")
            )
            if _tree(statuses[name]) != before:
                return [f"{name}: a one-shot apply with nothing to do changed a report"]
    print(f"\none-shot `reconciler apply`, nothing to do, {vms} VMs (test driver), whole command")
    for label, index in (("wall", 0), ("CPU", 1)):
        old, new = (statistics.median(run[index] for run in seconds[name]) for name in codes)
        print(f"  {label:4} before {old:.3f}s  after {new:.3f}s  ratio {old / new:.1f}x")
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default=BEFORE, help="the git ref measured as before")
    parser.add_argument("--prepare", nargs=2, metavar=("VMS", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--measure", nargs=3, metavar=("INPUTS", "WHICH", "STATUS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.prepare:
        prepare(int(args.prepare[0]), Path(args.prepare[1]))
        return 0
    if args.measure:
        measure(Path(args.measure[0]), args.measure[1], Path(args.measure[2]))
        return 0
    return run(sorted(args.vms), args.rounds, args.before)


if __name__ == "__main__":
    raise SystemExit(main())
