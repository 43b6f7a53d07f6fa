"""Reconcile passes against libvirt, as ratios to the bare libvirt calls they need.

    python bench/reconcile.py                      # 100 and 1000 VMs, test driver
    python bench/reconcile.py --uri qemu:///system --vms 5 --pool NAME --domain-type qemu

Issue 3's benchmark, in one process, with the manifests already loaded: the
YAML files are parsed and the plan context is built before any clock starts;
the clock measures `reconcile_once` (observe, plan, apply, observe and plan
again for the statuses). For each size, in the same run:

  cold      the first pass on an empty host: volumes, definitions, starts.
            Floor: a plain loop of createXML for the same volumes, then a plain
            loop of defineXML + create for the same domains (renamed, on their
            own volumes and MACs). The volume share is printed on its own line.
  no-op     a pass over the same revision that finds nothing to do.
            Floor (observation): listing every domain and reading its
            definitions, two XMLDesc for a running domain (live and next boot),
            one for a stopped one.
  one       a pass after one VM's manifest changed (runPolicy, applied live:
            a redefinition and a live metadata update); only that file is
            loaded again, the other objects are the ones already loaded.
            Floor: the observation floor plus that VM's own calls
            (defineXML and setMetadata with the same XML).

no-op and one are the best of three passes, and so are their floors. The
issue's targets at 1,000 VMs are printed beside the ratios. The exit status is
non-zero only when a pass is wrong (an action failed, a no-op pass made a
mutating call or rendered a domain, a one-change pass touched another VM),
never because of a time.

Against a real libvirtd (`--uri qemu:///system`) the run refuses to start when
a name it would create already exists, and removes exactly the domains and
volumes it created, even when it fails half-way.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import libvirt

import reconciler.libvirt.apply as apply_module
from reconciler.api import ObjectId
from reconciler.engine.plan import PlanContext
from reconciler.engine.reconcile import PassResult, reconcile_once
from reconciler.engine.vm.desired import HostContext
from reconciler.libvirt.apply import Applier
from reconciler.libvirt.connection import open_connection
from reconciler.libvirt.metadata import metadata_xml
from reconciler.libvirt.observe import Observer
from reconciler.loader import LoadResult, load_file, manifest_files
from reconciler.model.actions import DefineDomain, EnsureDiskVolume, SetLiveMetadata
from reconciler.model.domain import METADATA_NAMESPACE, METADATA_PREFIX
from reconciler.reports.pass_inputs import read_plan_context

HOST_XML = Path(__file__).resolve().parent.parent / "tests" / "libvirt" / "host.xml"
REPEATS = 3
# Issue 3, "Done when": the ratios at 1,000 VMs.
TARGETS = {"cold": 3.0, "no-op": 5.0, "one": 5.0}
# Floor domains carry the metadata element under another namespace: the same
# bytes to define, but not a domain any reconciler owns.
FLOOR_NAMESPACE = "https://vm-reconciler.io/xmlns/bench-floor/1"

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
  runPolicy: {run_policy}
  terminationGracePeriodSeconds: 1
  cpu:
    cores: {cores}
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

T = TypeVar("T")


def timed(action: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def best_of(action: Callable[[], object], repeats: int = REPEATS) -> float:
    return min(timed(action)[0] for _ in range(repeats))


@contextmanager
def counting_renders() -> Iterator[list[int]]:
    """Counts the domain XML the applier renders while the block runs."""
    count = [0]
    original = apply_module.render_domain

    def counted(spec):  # type: ignore[no-untyped-def]
        count[0] += 1
        return original(spec)

    apply_module.render_domain = counted  # type: ignore[assignment]
    try:
        yield count
    finally:
        apply_module.render_domain = original


@dataclass
class Repository:
    """A manifests directory loaded file by file, so one file can be loaded again."""

    root: Path
    loaded: dict[str, LoadResult] = field(default_factory=dict)

    def load_all(self) -> None:
        for path in manifest_files(self.root):
            self.reload(path)

    def reload(self, path: Path) -> None:
        relative = path.relative_to(self.root).as_posix()
        self.loaded[relative] = load_file(path, relative)

    def result(self) -> LoadResult:
        merged = LoadResult()
        for relative in sorted(self.loaded):
            merged.extend(self.loaded[relative])
        return merged


@dataclass
class Row:
    label: str
    ours: float
    floor: float
    target: float | None = None
    note: str = ""


class Bench:
    def __init__(
        self, uri: str, pool: str, network: str | None, domain_type: Literal["qemu", "kvm"]
    ) -> None:
        self.uri = uri
        self.pool = pool
        self.network = network
        self.domain_type = domain_type
        self.failures: list[str] = []
        # What this run created on the host, removed at the end on a real libvirtd.
        self.domains: list[str] = []
        self.volumes: list[str] = []

    @property
    def test_driver(self) -> bool:
        return self.uri.startswith("test:")

    def host(self) -> HostContext:
        return HostContext(
            node_name="bench",
            domain_type=self.domain_type,
            storage_pool=self.pool,
            network=self.network,
            cpu_capacity_millicores=10**9,
        )

    def write_vm(self, repo: Path, index: int, namespace: str, run_policy: str) -> Path:
        path = repo / f"vm-{index:04d}.yaml"
        text = VM.format(
            index=index, namespace=namespace, run_policy=run_policy, cores=1 + index % 4
        )
        path.write_text(text, encoding="utf-8")
        return path

    def one_pass(
        self, connection: libvirt.virConnect, context: PlanContext, observer: Observer
    ) -> tuple[float, PassResult, Applier]:
        applier = Applier(connection, poll_seconds=0.05)
        seconds, result = timed(lambda: reconcile_once(context, observer, applier))
        for failure in result.errors:
            self.failures.append(f"{failure.action.describe()}: {failure.error}")
        return seconds, result, applier

    # The floors: the same libvirt work done by hand, nothing else.

    @staticmethod
    def floor_observe(connection: libvirt.virConnect) -> None:
        for domain in connection.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            domain.XMLDesc(0)
            domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        for domain in connection.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE):
            domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)

    def floor_volumes(self, connection: libvirt.virConnect, names: list[str]) -> None:
        pool = connection.storagePoolLookupByName(self.pool)
        for name in names:
            self.volumes.append(name)
            pool.createXML(
                f"<volume><name>{name}</name><capacity>16777216</capacity>"
                "<allocation>0</allocation><target><format type='qcow2'/></target></volume>",
                0,
            )

    def floor_domains(self, connection: libvirt.virConnect, xmls: dict[str, str]) -> None:
        for name, xml in xmls.items():
            self.domains.append(name)
            connection.defineXML(xml).create()

    def floor_xmls(
        self, connection: libvirt.virConnect, names: list[str], count: int
    ) -> dict[str, str]:
        """The reconciler's own definitions, renamed onto their own volumes and MACs."""
        xmls: dict[str, str] = {}
        for index, name in enumerate(names):
            xml = connection.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            root = ET.fromstring(xml.replace(METADATA_NAMESPACE, FLOOR_NAMESPACE))
            floor = self.floor_name(count, index)
            name_element = root.find("name")
            assert name_element is not None
            name_element.text = floor
            for tag in ("uuid", "devices/interface/mac"):
                found = root.find(tag)
                parent = root.find(tag.rpartition("/")[0]) if "/" in tag else root
                if found is not None and parent is not None:
                    parent.remove(found)
            for source in root.iterfind("devices/disk/source"):
                if source.get("volume"):
                    source.set("volume", f"{floor}.qcow2")
            xmls[floor] = ET.tostring(root, encoding="unicode")
        return xmls

    @staticmethod
    def floor_name(count: int, index: int) -> str:
        return f"vmr-bench-floor-{count}-{index}"

    @staticmethod
    def own_calls(connection: libvirt.virConnect, result: PassResult) -> list[Callable[[], object]]:
        """The bare calls that carry out a pass's actions, prepared ahead of the clock."""
        calls: list[Callable[[], object]] = []
        for action in result.plan.actions:
            if isinstance(action, DefineDomain):
                xml = connection.lookupByName(action.spec.name).XMLDesc(
                    libvirt.VIR_DOMAIN_XML_INACTIVE
                )
                calls.append(lambda xml=xml: connection.defineXML(xml))
            elif isinstance(action, SetLiveMetadata):
                element = metadata_xml(action.metadata)

                def set_metadata(name: str = action.domain, element: str = element) -> None:
                    connection.lookupByName(name).setMetadata(
                        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                        element,
                        METADATA_PREFIX,
                        METADATA_NAMESPACE,
                        libvirt.VIR_DOMAIN_AFFECT_LIVE,
                    )

                calls.append(set_metadata)
            else:
                raise AssertionError(f"no bare call for {action.describe()}")
        return calls

    def refuse_leftovers(self, connection: libvirt.virConnect, namespace: str, count: int) -> None:
        names = {d.name() for d in connection.listAllDomains(0)}
        ours = {f"bench-{i}.{namespace}" for i in range(count)}
        floors = {self.floor_name(count, i) for i in range(count)}
        clash = names & (ours | floors)
        try:
            volumes = set(connection.storagePoolLookupByName(self.pool).listVolumes())
        except libvirt.libvirtError:
            volumes = set()
        clash |= {v for v in volumes if v.startswith((f"vd-{namespace}-", "vmr-bench-floor-"))}
        if clash:
            raise SystemExit(
                f"refusing to run: {len(clash)} name(s) this run would create already exist"
                f" (for example {sorted(clash)[0]}); remove them first"
            )

    def clean(self, connection: libvirt.virConnect) -> None:
        """Remove what this run created, on a real host; the test driver forgets by itself."""
        if self.test_driver:
            return
        for name in self.domains:
            try:
                domain = connection.lookupByName(name)
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
            except libvirt.libvirtError as error:
                print(f"could not remove domain {name}: {error}", file=sys.stderr)
        pool = connection.storagePoolLookupByName(self.pool)
        for name in self.volumes:
            try:
                pool.storageVolLookupByName(name).delete(0)
            except libvirt.libvirtError as error:
                print(f"could not remove volume {name}: {error}", file=sys.stderr)
        self.domains.clear()
        self.volumes.clear()

    def run(self, count: int) -> list[Row]:
        namespace = f"bench{count}"
        with tempfile.TemporaryDirectory() as directory:
            repo = Repository(Path(directory))
            (repo.root / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
            for index in range(count):
                self.write_vm(repo.root, index, namespace, "AlwaysOn")
            repo.load_all()
            context = read_plan_context(repo.result(), self.host(), "bench")
            connection = open_connection(self.uri)
            self.refuse_leftovers(connection, namespace, count)
            try:
                return self._measure(connection, repo, context, namespace, count)
            finally:
                self.clean(connection)
                connection.close()

    def _measure(
        self,
        connection: libvirt.virConnect,
        repo: Repository,
        context: PlanContext,
        namespace: str,
        count: int,
    ) -> list[Row]:
        observer = Observer(connection)
        cold, first, _ = self.one_pass(connection, context, observer)
        for action in first.plan.actions:
            if isinstance(action, DefineDomain):
                self.domains.append(action.spec.name)
            elif isinstance(action, EnsureDiskVolume):
                self.volumes.append(action.volume)

        noop = float("inf")
        for _ in range(REPEATS):
            with counting_renders() as renders:
                seconds, result, applier = self.one_pass(connection, context, observer)
            noop = min(noop, seconds)
            if applier.mutations or result.plan.has_changes or renders[0]:
                self.failures.append(
                    f"{count} VMs: the no-op pass made {applier.mutations} mutating call(s)"
                    f" and rendered {renders[0]} domain(s)"
                )
        observe_floor = best_of(lambda: self.floor_observe(connection))

        one, one_floor = float("inf"), float("inf")
        for index in range(min(REPEATS, count)):
            changed = ObjectId("VirtualMachine", namespace, f"bench-{index}")
            repo.reload(self.write_vm(repo.root, index, namespace, "AlwaysOnUnlessStoppedManually"))
            context = read_plan_context(repo.result(), self.host(), "bench")
            seconds, result, applier = self.one_pass(connection, context, observer)
            one = min(one, seconds)
            owners = {action.owner for action in result.plan.actions}
            if owners != {changed} or not applier.mutations:
                self.failures.append(f"{count} VMs: the one-change pass acted on {owners}")
                continue
            calls = self.own_calls(connection, result)

            def floor(calls: list[Callable[[], object]] = calls) -> None:
                self.floor_observe(connection)
                for call in calls:
                    call()

            one_floor = min(one_floor, timed(floor)[0])

        names = [f"bench-{i}.{namespace}" for i in range(count)]
        xmls = self.floor_xmls(connection, names, count)
        volumes_floor, _ = timed(
            lambda: self.floor_volumes(connection, [f"{n}.qcow2" for n in xmls])
        )
        domains_floor, _ = timed(lambda: self.floor_domains(connection, xmls))
        return [
            Row(
                f"cold pass, {count} VMs",
                cold,
                volumes_floor + domains_floor,
                TARGETS["cold"],
                f"floor: {volumes_floor:.3f}s createXML + {domains_floor:.3f}s defineXML+create",
            ),
            Row(f"no-op pass, {count} VMs", noop, observe_floor, TARGETS["no-op"]),
            Row(f"one VM changed, {count} VMs", one, one_floor, TARGETS["one"]),
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uri", default=f"test://{HOST_XML}")
    parser.add_argument("--vms", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--pool", default="default-pool")
    parser.add_argument("--network", default="default")
    parser.add_argument("--domain-type", choices=("qemu", "kvm"), default="qemu")
    args = parser.parse_args()
    bench = Bench(args.uri, args.pool, args.network or None, args.domain_type)
    print(f"libvirt {args.uri}; targets apply at 1,000 VMs")
    print(f"{'measure':28} {'reconciler':>11} {'bare calls':>11} {'ratio':>7} {'target':>7}")
    for count in args.vms:
        for row in bench.run(count):
            ratio = row.ours / row.floor if row.floor > 0 else float("inf")
            target = f"<={row.target:.0f}x" if row.target else ""
            print(f"{row.label:28} {row.ours:10.3f}s {row.floor:10.3f}s {ratio:6.1f}x {target:>7}")
            if row.note:
                print(f"{'':28} {row.note}")
    for failure in bench.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
