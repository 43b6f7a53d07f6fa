"""Reconcile passes against libvirt, as ratios to the bare libvirt calls they need.

    python bench/reconcile.py                      # 100 and 1000 VMs, test driver
    python bench/reconcile.py --uri qemu:///system --vms 5 --pool NAME --domain-type qemu

For each size it times, in one run:
  cold      the first pass: volumes, definitions, starts
  no-op     a pass over the same revision that finds nothing to do
  one       a pass after one VM's manifest changed (a live-applied runPolicy)
and the floor each is compared with: the same libvirt calls made directly
(createXML/defineXML/create for cold; listAllDomains, state and two XMLDesc
per domain for a no-op). Exits non-zero only when a pass is wrong (errors, or
a no-op pass that changed something), never because of a time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import libvirt

from reconciler.engine.desired import HostContext
from reconciler.engine.reconcile import plan_context, reconcile_once
from reconciler.libvirt.apply import Applier
from reconciler.libvirt.connection import open_connection
from reconciler.libvirt.observe import Observer
from reconciler.loader import load_directory

HOST_XML = Path(__file__).resolve().parent.parent / "tests" / "testdriver" / "host.xml"

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


def write_vm(repo: Path, index: int, namespace: str, run_policy: str = "AlwaysOn") -> None:
    text = VM.format(index=index, namespace=namespace, run_policy=run_policy, cores=1 + index % 4)
    (repo / f"vm-{index:04d}.yaml").write_text(text, encoding="utf-8")


def timed(action):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


class Bench:
    def __init__(self, uri: str, pool: str, network: str | None, domain_type: str) -> None:
        self.uri = uri
        self.pool = pool
        self.network = network
        self.domain_type = domain_type
        self.failures: list[str] = []

    def host(self) -> HostContext:
        return HostContext(
            node_name="bench",
            domain_type="qemu" if self.domain_type == "qemu" else "kvm",
            storage_pool=self.pool,
            network=self.network,
            cpu_capacity_millicores=10**9,
        )

    def one_pass(self, connection: libvirt.virConnect, repo: Path, observer: Observer):  # type: ignore[no-untyped-def]
        context = plan_context(load_directory(repo), self.host(), "bench")
        applier = Applier(connection, poll_seconds=0.05)
        result = reconcile_once(context, observer, applier)
        for failure in result.errors:
            self.failures.append(f"{failure.action.describe()}: {failure.error}")
        return result, applier.mutations

    def floor_cold(self, connection: libvirt.virConnect, xmls: list[str]) -> None:
        pool = connection.storagePoolLookupByName(self.pool)
        for index, xml in enumerate(xmls):
            pool.createXML(
                f"<volume><name>floor-{index}.qcow2</name><capacity>16777216</capacity>"
                "<target><format type='qcow2'/></target></volume>",
                0,
            )
            connection.defineXML(xml).create()

    @staticmethod
    def floor_noop(connection: libvirt.virConnect) -> None:
        for domain in connection.listAllDomains(0):
            domain.state()
            domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            domain.XMLDesc(0)

    def run(self, count: int) -> list[tuple[str, float, float]]:
        namespace = f"bench{count}"
        with tempfile.TemporaryDirectory() as directory:
            repo = Path(directory)
            (repo / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
            for index in range(count):
                write_vm(repo, index, namespace)
            connection = open_connection(self.uri)
            observer = Observer(connection)
            cold, _ = timed(lambda: self.one_pass(connection, repo, observer))
            noop, (second, mutations) = timed(lambda: self.one_pass(connection, repo, observer))
            if mutations or second.plan.has_changes:
                self.failures.append(f"{count} VMs: the no-op pass changed {mutations} thing(s)")
            write_vm(repo, 0, namespace, run_policy="AlwaysOnUnlessStoppedManually")
            one, _ = timed(lambda: self.one_pass(connection, repo, observer))
            noop_floor, _ = timed(lambda: self.floor_noop(connection))
            rendered = self._floor_xmls(connection, count)
            cold_floor, _ = timed(lambda: self.floor_cold(connection, rendered))
            self._clean(connection, namespace, len(rendered))
            connection.close()
        return [
            (f"cold pass, {count} VMs", cold, cold_floor),
            (f"no-op pass, {count} VMs", noop, noop_floor),
            (f"one VM changed, {count} VMs", one, noop_floor),
        ]

    def _floor_xmls(self, connection: libvirt.virConnect, count: int) -> list[str]:
        # The floor defines the same domains under other names and UUIDs.
        xmls = []
        for index, domain in enumerate(connection.listAllDomains(0)[:count]):
            xml = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            if "<vmr:domain" not in xml:
                continue
            name = domain.name()
            xml = xml.replace(f"<name>{name}</name>", f"<name>floor-{index}</name>")
            xml = xml.replace(f"<uuid>{domain.UUIDString()}</uuid>", "")
            xmls.append(xml)
        return xmls

    def _clean(self, connection: libvirt.virConnect, namespace: str, floors: int) -> None:
        """Remove what the run made, on a real host; the test driver forgets by itself."""
        if self.uri.startswith("test:"):
            return
        for domain in connection.listAllDomains(0):
            if domain.name().endswith(f".{namespace}") or domain.name().startswith("floor-"):
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
        pool = connection.storagePoolLookupByName(self.pool)
        for volume in pool.listAllVolumes(0):
            if volume.name().startswith(("floor-", f"vd-{namespace}-")):
                volume.delete(0)
        del floors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uri", default=f"test://{HOST_XML}")
    parser.add_argument("--vms", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--pool", default="default-pool")
    parser.add_argument("--network", default="default")
    parser.add_argument("--domain-type", choices=("qemu", "kvm"), default="qemu")
    args = parser.parse_args()
    bench = Bench(args.uri, args.pool, args.network or None, args.domain_type)
    print(f"{'measure':34} {'reconciler':>11} {'bare calls':>11} {'ratio':>7}")
    for count in args.vms:
        for label, ours, floor in bench.run(count):
            ratio = ours / floor if floor > 0 else float("inf")
            print(f"{label:34} {ours:10.3f}s {floor:10.3f}s {ratio:6.1f}x")
    for failure in bench.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
