"""One-shot `reconciler apply` on a real libvirtd beside kcli, Ansible and bare libvirt calls.

    python bench/oneshot.py                        # 100 VMs, 3 rounds, Ansible in round 1
    python bench/oneshot.py --vms 20 --rounds 5 --skip-ansible

Issue 16, "Done when", first row. Run as root on a machine with libvirt's daemons
installed (`make deps`): the bench starts a libvirtd of its own (oneshot_host.py),
never qemu:///system, where `reconciler apply` would shut down and undefine the
project's domains of anyone else (the e2e tests, another bench). N VMs, defined and not
started, each with one 1 GiB qcow2 disk, 1 vCPU and 512 MiB, made by four tools, each
run as the command a user types (whole process, wall clock):

  bare        bench/oneshot_bare.py: list the domains and volumes, create and define
              what is missing or different, nothing more (the floor)
  reconciler  `reconciler apply REPO --status-dir REPO/status` (the venv's script,
              PYTHONPATH this checkout), REPO a Git checkout of N VirtualMachine +
              VirtualDisk manifests (runPolicy AlwaysOff), its known-reports cache
              in a fresh directory
  baseline    with --baseline CHECKOUT: the same as reconciler, running that checkout
              (a worktree of main), to compare a branch with it in the same rounds
  kcli        `kcli create plan -f plan.yml` (cold), `kcli update plan -f plan.yml`
              (the others), one plan of N VMs (`start: false`, `disks: [1]`)
  ansible     `ansible-playbook`: community.libvirt.virt_volume (state: present, the
              volume's XML) and community.libvirt.virt (command: define, the bare
              script's domain XML), one task each looped over the N VMs

Scenarios, in this order for each tool in each round:

  cold        nothing exists
  no-op       the same again: nothing to do
  one         one VM's memory raised to 1 GiB in the tool's input, then the same run

Rounds alternate the tools (bare, reconciler, kcli, ansible, bare, ...) so that a
busy neighbour slows all of them alike. After every step the harness checks
through libvirt that each VM is defined, shut off, with its memory, vCPU and a
1 GiB volume of the bench's pool, that a no-op changed no definition and that a
one-change run changed only that VM's. Medians (and the ratios of medians) are
printed, with the issue's targets beside them, never asserted: the exit status is
non-zero only when a tool failed or a check did not hold.

Everything runs in that daemon, in a transient dir pool `obench-<token>` in a fresh
directory under /var/tmp, with domains whose names hold the token. Every round
removes what it made, domains and volumes, even when it fails; the pool, the
daemon and the directory go at the end. kcli and Ansible (the `ansible` package,
which bundles community.libvirt) live in a venv of their own under
.cache/bench-tools/venv, created with pip on the first run, never in the project's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oneshot_bare import domain_xml, volume_xml
from oneshot_host import private_libvirtd
from oneshot_tools import TOOLS_VENV, ensure_tools, kcli_config, kcli_plan, manifests, playbook

CHECKOUT = Path(__file__).resolve().parents[1]
BARE_SCRIPT = Path(__file__).resolve().parent / "oneshot_bare.py"
MEMORY_MIB = 512
CHANGED_MIB = 1024
VCPUS = 1
DISK_BYTES = 1 << 30
SCENARIOS = ("cold", "no-op", "one")
# Issue 16: reconciler / bare at most this; no-op and one also under kcli's.
BARE_TARGETS = {"cold": 1.5, "no-op": 4.0, "one": 4.0}

libvirt.registerErrorHandler(lambda _ctx, _error: None, None)


class BenchError(Exception):
    """A tool failed or left libvirt other than it should: the run's figures are void."""


@dataclass
class Lab:
    """What this run owns on the host: one pool, and the domains that hold its token."""

    conn: libvirt.virConnect
    uri: str
    token: str
    workdir: Path
    pool: libvirt.virStoragePool | None = None

    @property
    def namespace(self) -> str:
        return f"obench-{self.token}"

    def owns(self, domain_name: str) -> bool:
        return self.namespace in domain_name

    def create_pool(self) -> None:
        target = self.workdir / "pool"
        target.mkdir()
        self.pool = self.conn.storagePoolCreateXML(
            f"<pool type='dir'><name>{self.namespace}</name>"
            f"<target><path>{target}</path></target></pool>",
            0,
        )

    def clean(self) -> None:
        """Every domain holding the token and every volume of the pool, gone."""
        for domain in self.conn.listAllDomains(0):
            if self.owns(domain.name()):
                with contextlib.suppress(libvirt.libvirtError):
                    if domain.isActive():
                        domain.destroy()
                domain.undefine()
        if self.pool is not None:
            self.pool.refresh(0)
            for volume in self.pool.listAllVolumes(0):
                volume.delete(0)

    def remove(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self.clean()
        if self.pool is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self.pool.destroy()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Tool:
    """One tool's VMs, the input it is given and the command for each scenario."""

    label: str
    lab: Lab
    vms: int
    memory: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = self.lab.workdir / self.label
        self.home.mkdir()

    def domain(self, index: int) -> str:
        return f"{self.lab.namespace}-{self.label}-{index:03d}"

    def reset(self) -> None:
        self.memory = dict.fromkeys(range(self.vms), MEMORY_MIB)

    def write(self) -> None:
        raise NotImplementedError

    def command(self, scenario: str) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # Bytecode as an installed package has it (the checkout's is compiled up front).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def wanted(self) -> list[dict[str, object]]:
        return [
            {
                "name": self.domain(i),
                "memory_mib": self.memory[i],
                "vcpus": VCPUS,
                "disk_bytes": DISK_BYTES,
            }
            for i in range(self.vms)
        ]


class Bare(Tool):
    def write(self) -> None:
        (self.home / "vms.json").write_text(json.dumps(self.wanted()))

    def command(self, scenario: str) -> list[str]:
        return [
            sys.executable,
            str(BARE_SCRIPT),
            "--uri",
            self.lab.uri,
            "--pool",
            self.lab.namespace,
            "--vms",
            str(self.home / "vms.json"),
        ]


@dataclass
class Reconciler(Tool):
    # --baseline: another checkout (main's worktree) run the same way, in the same rounds.
    checkout: Path = CHECKOUT

    def domain(self, index: int) -> str:
        return f"vm-{index:03d}.{self.lab.namespace}-rec"

    def write(self) -> None:
        repo = self.home / "repo"
        if not repo.exists():
            repo.mkdir()
            _git(repo, "init", "-q")
        for name, text in manifests(f"{self.lab.namespace}-rec", self.memory).items():
            path = repo / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "--allow-empty", "-m", "bench")

    def reset(self) -> None:
        super().reset()
        # A first apply on this host: no reports, nothing remembered of them.
        shutil.rmtree(self.home / "repo" / "status", ignore_errors=True)
        shutil.rmtree(self.home / "cache", ignore_errors=True)

    def command(self, scenario: str) -> list[str]:
        repo = self.home / "repo"
        return [
            str(Path(sys.executable).parent / "reconciler"),
            "apply",
            str(repo),
            "--libvirt-uri",
            self.lab.uri,
            "--storage-pool",
            self.lab.namespace,
            "--node-name",
            self.lab.namespace,
            "--status-dir",
            str(repo / "status"),
        ]

    def environment(self) -> dict[str, str]:
        # The venv's `reconciler` script, as a user types it, running this checkout.
        return {
            **super().environment(),
            "XDG_CACHE_HOME": str(self.home / "cache"),
            "PYTHONPATH": str(self.checkout),
        }


class Kcli(Tool):
    def write(self) -> None:
        config = self.home / ".kcli" / "config.yml"
        config.parent.mkdir(exist_ok=True)
        config.write_text(kcli_config(self.lab.uri, self.lab.namespace))
        (self.home / "plan.yml").write_text(
            kcli_plan(self.lab.namespace, [(self.domain(i), self.memory[i]) for i in self.memory])
        )

    def command(self, scenario: str) -> list[str]:
        verb = "create" if scenario == "cold" else "update"
        plan = f"{self.lab.namespace}-kcli"
        return [
            str(TOOLS_VENV / "bin" / "kcli"),
            verb,
            "plan",
            "-f",
            str(self.home / "plan.yml"),
            plan,
        ]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "HOME": str(self.home)}


class Ansible(Tool):
    def write(self) -> None:
        target = str(self.lab.workdir / "pool")
        items = [
            {
                "volume": volume_xml(f"{vm['name']}.qcow2", DISK_BYTES),
                "domain": domain_xml(
                    _domain_type(),
                    str(vm["name"]),
                    int(str(vm["memory_mib"])),
                    VCPUS,
                    f"{target}/{vm['name']}.qcow2",
                ),
            }
            for vm in self.wanted()
        ]
        (self.home / "vms.json").write_text(json.dumps({"vms": items}))
        (self.home / "site.yml").write_text(playbook(self.lab.uri, self.lab.namespace))

    def command(self, scenario: str) -> list[str]:
        return [
            str(TOOLS_VENV / "bin" / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"@{self.home / 'vms.json'}",
            "-e",
            f"ansible_python_interpreter={TOOLS_VENV / 'bin' / 'python'}",
            str(self.home / "site.yml"),
        ]

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "ANSIBLE_HOME": str(self.home / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(self.home / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
        }


def _domain_type() -> str:
    return "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"


def _git(repo: Path, *argv: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *argv],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def run_tool(tool: Tool, scenario: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        tool.command(scenario),
        cwd=CHECKOUT,
        env=tool.environment(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise BenchError(f"{tool.label} {scenario} exited {done.returncode}:\n" + "\n".join(tail))
    return seconds


def definitions(tool: Tool) -> dict[int, str]:
    """Each VM's definition, after checking that it is what the tool was asked for."""
    lab, found = tool.lab, {}
    assert lab.pool is not None
    for index in range(tool.vms):
        name = tool.domain(index)
        try:
            domain = lab.conn.lookupByName(name)
        except libvirt.libvirtError:
            raise BenchError(f"{tool.label}: domain {name} is not defined") from None
        if domain.isActive():
            raise BenchError(f"{tool.label}: domain {name} was started")
        xml = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        root = ET.fromstring(xml)
        memory_kib = int(root.findtext("memory") or 0)
        vcpu = root.find("vcpu")
        # The reconciler defines room for hot-plugged vCPUs: `current` is what runs.
        vcpus = int(vcpu.get("current") or vcpu.text or 0) if vcpu is not None else 0
        if memory_kib != tool.memory[index] << 10 or vcpus != VCPUS:
            raise BenchError(f"{tool.label}: {name} has {memory_kib} KiB, {vcpus} vCPU")
        source = root.find("./devices/disk[@device='disk']/source")
        if source is None:
            raise BenchError(f"{tool.label}: {name} has no disk")
        if source.get("file"):
            volume = lab.conn.storageVolLookupByPath(source.get("file"))
        else:
            volume = lab.conn.storagePoolLookupByName(source.get("pool")).storageVolLookupByName(
                source.get("volume")
            )
        if volume.storagePoolLookupByVolume().name() != lab.namespace:
            raise BenchError(f"{tool.label}: {name}'s disk is not in the bench's pool")
        if volume.info()[1] != DISK_BYTES:
            raise BenchError(f"{tool.label}: {name}'s disk holds {volume.info()[1]} bytes")
        found[index] = xml
    extra = sum(1 for d in lab.conn.listAllDomains(0) if lab.owns(d.name())) - tool.vms * 1
    if extra > 0:
        raise BenchError(f"{tool.label}: {extra} domain(s) more than asked for")
    return found


def one_round(tool: Tool) -> dict[str, float]:
    times: dict[str, float] = {}
    tool.reset()
    tool.write()
    times["cold"] = run_tool(tool, "cold")
    before = definitions(tool)
    times["no-op"] = run_tool(tool, "no-op")
    after = definitions(tool)
    if after != before:
        changed = [tool.domain(i) for i in before if before[i] != after[i]]
        raise BenchError(f"{tool.label}: a run with nothing to do changed {changed[:3]}")
    tool.memory[0] = CHANGED_MIB
    tool.write()
    times["one"] = run_tool(tool, "one")
    changed = [i for i, xml in definitions(tool).items() if xml != after[i]]
    if changed != [0]:
        raise BenchError(
            f"{tool.label}: one changed VM redefined {[tool.domain(i) for i in changed][:3]}"
        )
    return times


@contextlib.contextmanager
def bench_lab() -> Iterator[Lab]:
    """The bench's own libvirtd (oneshot_host.py) and a dir pool in it; all gone after."""
    token = secrets.token_hex(3)
    workdir = Path(tempfile.mkdtemp(prefix=f"obench-{token}-", dir="/var/tmp"))
    try:
        with private_libvirtd(workdir / "libvirt") as uri:
            conn = libvirt.open(uri)
            bench = Lab(conn, uri, token, workdir)
            try:
                bench.create_pool()
                yield bench
            finally:
                bench.remove()
                conn.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(results: dict[str, dict[str, list[float]]], vms: int) -> None:
    labels = [
        label for label in ("bare", "reconciler", "baseline", "kcli", "ansible") if label in results
    ]
    print(f"\nmedian wall time of a whole command, {vms} VMs (rounds in brackets)")
    print(f"{'scenario':10}" + "".join(f"{label:>18}" for label in labels))
    medians: dict[str, dict[str, float]] = {}
    for scenario in SCENARIOS:
        cells = []
        for label in labels:
            values = results[label][scenario]
            if values:
                medians.setdefault(label, {})[scenario] = statistics.median(values)
                cells.append(f"{statistics.median(values):>12.3f} s ({len(values)})")
            else:
                cells.append(f"{'-':>18}")
        print(f"{scenario:10}" + "".join(cells))
    print("\nratios of medians")
    for scenario in SCENARIOS:

        def get(label: str, scenario: str = scenario) -> float | None:
            return medians.get(label, {}).get(scenario)

        ours = get("reconciler")
        line = (
            f"{scenario:10} reconciler/bare {ratio(ours, get('bare'))}"
            f" (target <= {BARE_TARGETS[scenario]:.1f}x)"
            f"  reconciler/kcli {ratio(ours, get('kcli'))}"
            + ("" if scenario == "cold" else " (target < 1x)")
            + f"  kcli/bare {ratio(get('kcli'), get('bare'))}"
            f"  ansible/reconciler {ratio(get('ansible'), ours)}"
        )
        if get("baseline"):
            line += f"  reconciler/baseline {ratio(ours, get('baseline'))}"
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ansible-rounds", type=int, default=1, help="Ansible in the first ones")
    parser.add_argument("--skip-ansible", action="store_true")
    parser.add_argument("--skip-kcli", action="store_true")
    parser.add_argument("--tools-only", action="store_true", help="make the tools' venv, no run")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also run `reconciler apply` of this checkout (e.g. a worktree of main), after ours",
    )
    args = parser.parse_args()
    if not args.skip_kcli or not args.skip_ansible or args.tools_only:
        ensure_tools()
    if args.tools_only:
        return 0
    # Bytecode of the checkout, as an installed package has it; written where an
    # import would write it (__pycache__, ignored by Git).
    checkouts = [CHECKOUT] + ([args.baseline.resolve()] if args.baseline else [])
    for checkout in checkouts:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(checkout / "reconciler")], check=True
        )
    results: dict[str, dict[str, list[float]]] = {}
    with bench_lab() as lab:
        tools: list[Tool] = [Bare("bare", lab, args.vms), Reconciler("reconciler", lab, args.vms)]
        if args.baseline:
            tools.append(Reconciler("baseline", lab, args.vms, checkout=checkouts[1]))
        if not args.skip_kcli:
            tools.append(Kcli("kcli", lab, args.vms))
        if not args.skip_ansible:
            tools.append(Ansible("ansible", lab, args.vms))
        for tool in tools:
            results[tool.label] = {scenario: [] for scenario in SCENARIOS}
        print(f"pool {lab.namespace} in {lab.workdir}; {args.vms} VMs; {args.rounds} round(s)")
        for number in range(1, args.rounds + 1):
            for tool in tools:
                if isinstance(tool, Ansible) and number > args.ansible_rounds:
                    continue
                try:
                    times = one_round(tool)
                except BenchError as error:
                    print(f"FAILED: {error}", file=sys.stderr)
                    report(results, args.vms)
                    return 1
                finally:
                    lab.clean()
                for scenario, seconds in times.items():
                    results[tool.label][scenario].append(seconds)
                print(
                    f"round {number} {tool.label:10} "
                    + "  ".join(f"{s} {times[s]:.3f} s" for s in SCENARIOS),
                    flush=True,
                )
    report(results, args.vms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
