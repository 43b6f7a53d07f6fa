"""A host the engine reconciles, and manifests for it: shared by the test tiers.

`Host` runs whole passes (observe, plan, apply, re-plan) the way the CLI does,
on any libvirt connection: the test driver's or a real libvirtd's.
"""

from __future__ import annotations

import ipaddress
import json
import textwrap
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

import libvirt

from reconciler.engine.network.addressing import AddressInputs
from reconciler.engine.reconcile import PassResult, reconcile_once
from reconciler.engine.vm.desired import HostContext
from reconciler.libvirt.apply import Applier
from reconciler.libvirt.informer import InformedObserver, InformedRunner
from reconciler.libvirt.observe import Observer
from reconciler.loader import load_directory
from reconciler.model.domain import METADATA_NAMESPACE, ObservedDomain
from reconciler.reports.addresses import read_leases
from reconciler.reports.pass_inputs import read_plan_context
from reconciler.reports.tree import desired_vms, revision_objects, write_host_reports
from reconciler.source.secrets import SecretOpener

CLASS = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: generic
spec:
  cpu:
    type: Host
  sizingPolicies:
    - cores: {min: 1, max: 4}
      memory: {min: 1Gi, max: 8Gi}
      coreFractions: [5, 10, 20, 50, 100]
    - cores: {min: 5, max: 8}
      memory: {min: 5Gi, max: 16Gi}
      coreFractions: [20, 50, 100]
"""

VM = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: {name}
  namespace: {namespace}
  labels: {labels}
spec:
  virtualMachineClassName: generic
  runPolicy: {run_policy}
  terminationGracePeriodSeconds: {grace}
  kernelBoot: {kernel_boot}
  disruptions:
    restartApprovalMode: {approval}
  cpu:
    cores: {cores}
    coreFraction: {fraction}
  memory:
    size: {memory}
  blockDeviceRefs:
    - kind: VirtualDisk
      name: {name}-root
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: {name}-root
  namespace: {namespace}
spec:
  persistentVolumeClaim:
    size: 1Gi
"""


def vm_yaml(
    name: str = "linux-vm",
    cores: int = 1,
    fraction: str = "10%",
    memory: str = "1Gi",
    run_policy: str = "AlwaysOnUnlessStoppedManually",
    approval: str = "Manual",
    labels: str = "{}",
    namespace: str = "default",
    grace: int = 1,
    kernel_boot: dict[str, str] | None = None,
) -> str:
    """A VM and its blank root disk; `kernel_boot` boots the end-to-end guest."""
    return VM.format(
        namespace=namespace,
        grace=grace,
        kernel_boot=json.dumps(kernel_boot) if kernel_boot else "null",
        name=name,
        cores=cores,
        fraction=fraction,
        memory=memory,
        run_policy=run_policy,
        approval=approval,
        labels=labels,
    )


# The test driver's host of tests/libvirt: a pool `default-pool`, a network `default`.
HOST_XML = Path(__file__).with_name("libvirt") / "host.xml"


def host_options(libvirt_uri: str, node_name: str | None = None) -> list[str]:
    """The options of `reconciler plan`/`apply` for a test-driver host: its pool
    `default-pool`, network `default`, domain type qemu (no KVM needed)."""
    options = ["--libvirt-uri", libvirt_uri, "--storage-pool", "default-pool"]
    options += ["--network", "default", "--domain-type", "qemu"]
    return options + (["--node-name", node_name] if node_name else [])


def host_with_domain_of(
    path: Path, vm: str, spec: Mapping[str, object], namespace: str = "default"
) -> Path:
    """HOST_XML written to `path` with one more domain, `VM.NAMESPACE`, whose <metadata>
    says this project defined it for that VirtualMachine with `spec` as its baseline: a
    host where the VM ran before its manifest was deleted, or whose baseline someone
    edited by hand. Open it as `test://PATH`."""
    metadata = (
        f'<vmr:domain xmlns:vmr="{METADATA_NAMESPACE}">'
        f"<vmr:kind>VirtualMachine</vmr:kind><vmr:namespace>{escape(namespace)}</vmr:namespace>"
        f"<vmr:name>{escape(vm)}</vmr:name><vmr:spec>{escape(json.dumps(spec))}</vmr:spec>"
        "</vmr:domain>"
    )
    domain = (
        f'<domain type="test"><name>{escape(vm)}.{escape(namespace)}</name>'
        "<memory>1048576</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
        f"<metadata>{metadata}</metadata></domain>\n  "
    )
    text = HOST_XML.read_text(encoding="utf-8").replace("<network>", domain + "<network>", 1)
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Host:
    """One libvirt test-driver host and the manifests directory it follows."""

    repo: Path
    connection: libvirt.virConnect
    storage_pool: str = "default-pool"
    network: str | None = "default"
    capacity_cpus: int = 16
    domain_type: Literal["qemu", "kvm"] = "qemu"
    passes: list[PassResult] = field(default_factory=list)
    node_name: str = "hv1"
    # IP address management: off without CIDRs; `now` is the clock leases are kept by.
    cidrs: tuple[ipaddress.IPv4Network, ...] = ()
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    # Only the domains of these namespaces are this host's (none: every owned domain). On a
    # libvirtd shared with other tests, a pass must not take their VMs for deleted ones.
    namespaces: tuple[str, ...] = ()
    # The host's imageDirectories; None: the folder that holds the repository, where the
    # tests make their image files (tmp_path).
    image_directories: tuple[str, ...] | None = None
    # Decrypts the SOPS-encrypted Secrets as a daemon does, once per revision; without an
    # age key file an encrypted Secret's VMs wait for one.
    secrets: SecretOpener = field(default_factory=lambda: SecretOpener(None))

    def write(self, relative: str, text: str) -> Path:
        path = self.repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def remove(self, relative: str) -> None:
        (self.repo / relative).unlink()

    @property
    def context(self) -> HostContext:
        return HostContext(
            node_name=self.node_name,
            domain_type=self.domain_type,
            storage_pool=self.storage_pool,
            network=self.network,
            cpu_capacity_millicores=self.capacity_cpus * 1000,
            image_directories=(
                self.image_directories
                if self.image_directories is not None
                else (str(self.repo.parent),)
            ),
        )

    def reconcile(
        self,
        *,
        apply: bool = True,
        revision: str = "rev1",
        observer: Observer | None = None,
        informer: InformedObserver | None = None,
    ) -> tuple[PassResult, int]:
        """One pass; returns it and the number of libvirt calls that changed something.

        `observer`: one kept across passes, as the daemon keeps it (its agent answers);
        `informer`: the daemon's event-fed observation instead, told of every action."""
        loaded = load_directory(self.repo)
        context = read_plan_context(
            loaded,
            self.context,
            revision,
            self.cidrs,
            addresses=AddressInputs(self.cidrs, read_leases(self.repo / "status"), self.now),
            disk_reports_root=self.repo / "status",
            secrets=self.secrets.open(loaded),
        )
        applier = Applier(self.connection, poll_seconds=0.1) if apply else None
        if informer is not None:
            runner = InformedRunner(applier, informer) if applier else None
            result = reconcile_once(context, informer, runner)
            self.passes.append(result)
            return result, applier.mutations if applier else 0
        observer = observer or NamespaceObserver(self.connection, self.namespaces)
        result = reconcile_once(context, observer, applier)
        self.passes.append(result)
        return result, applier.mutations if applier else 0

    def write_statuses(self, result: PassResult) -> list[Path]:
        return write_host_reports(
            self.repo / "status",
            result.statuses_plan,
            self.context,
            result.context.revision,
            desired_vms=desired_vms(result.context),
            addressing=result.context.addressing,
            moment=self.now,
            present=revision_objects(result.context),
        )

    def domain(self, name: str = "linux-vm.default") -> libvirt.virDomain:
        return self.connection.lookupByName(name)


class NamespaceObserver(Observer):
    """An observer that sees only the domains of some namespaces (`<vm>.<namespace>`)."""

    def __init__(self, connection: libvirt.virConnect, namespaces: tuple[str, ...] = ()) -> None:
        super().__init__(connection)
        self.namespaces = frozenset(namespaces)

    def _mine(self, name: str) -> bool:
        return not self.namespaces or name.rpartition(".")[2] in self.namespaces

    def observe(self) -> Mapping[str, ObservedDomain]:
        return {n: d for n, d in super().observe().items() if self._mine(n)}

    def refresh(self, names: Collection[str]) -> Mapping[str, ObservedDomain | None]:
        return super().refresh([n for n in names if self._mine(n)])
