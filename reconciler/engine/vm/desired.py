"""From a VM manifest, its class and the host to the domain it should be (SPEC §5).

Pure: identities, UUIDs and MACs are derived from the object's identity, so a
redefinition or a reinstall keeps them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any, Literal

from reconciler.api import (
    CPUType,
    ObjectId,
    VirtualMachine,
    VirtualMachineClass,
)
from reconciler.api.vm import OsType
from reconciler.engine.devices.vm_devices import ResolvedDevice
from reconciler.engine.vm.disk_layout import attached_disks, own_disks, seed_cdrom
from reconciler.engine.vm.seeds import SeedVolume, provisioning_seeds
from reconciler.model.cpu import requested_millicores
from reconciler.model.domain import DomainMetadata, DomainSpec, KernelBoot, Nic
from reconciler.model.migration import StorageMode
from reconciler.model.names import (
    domain_mac,
    domain_name,
    domain_uuid,
)
from reconciler.model.volumes import DEFAULT_IMAGE_DIRECTORIES
from reconciler.policies import TopologyPolicy
from reconciler.provisioning import NetworkConfig
from reconciler.rules.inventory import Inventory
from reconciler.rules.sizing import effective_core_fraction
from reconciler.rules.topology import topology_for

TCG_CPU_MODEL = "qemu64"


@dataclass(frozen=True)
class HostContext:
    """What the host contributes to every domain definition."""

    node_name: str
    domain_type: Literal["qemu", "kvm"] = "kvm"
    storage_pool: str = "default"
    network: str | None = None
    cpu_capacity_millicores: int = 1000
    # The host's guaranteed memory (its Node manifest's, else libvirt's count); None
    # when not known. Reported in its Node report for the fleet's placement.
    memory_capacity_bytes: int | None = None
    change_profile: str = "default"
    # This host's labels from its configuration, added to its Node object's.
    node_labels: tuple[tuple[str, str], ...] = ()
    # The only directories image files may come from (imageDirectories).
    image_directories: tuple[str, ...] = DEFAULT_IMAGE_DIRECTORIES
    # The libvirt URIs this host may migrate a guest to (migrationPeers).
    migration_peers: tuple[str, ...] = ()
    # How a live migration moves the disks: copied, or not at all from a pool the
    # configuration marks shared (storagePoolShared).
    migration_storage: StorageMode = StorageMode.COPY


@dataclass(frozen=True)
class DesiredDomain:
    spec: DomainSpec
    # The VM spec with the class defaults resolved: the baseline it will run with.
    spec_json: dict[str, Any]
    requested_millicores: int
    topology_sockets: int
    topology_cores_per_socket: int
    seeds: tuple[SeedVolume, ...] = ()


def cpu_shares(millicores: int) -> int:
    # The weight kubelet gives a CPU request: 1024 per guaranteed core, at least 2.
    return max(2, millicores * 1024 // 1000)


def desired_spec_json(vm: VirtualMachine, vmclass: VirtualMachineClass | None) -> dict[str, Any]:
    # Through the VM's serializer, built when the VM was validated: the spec's own would
    # be built for this alone (issue 16, some 5 ms of every command's pass).
    spec: dict[str, Any] = vm.model_dump(
        by_alias=True, mode="json", exclude_none=True, include={"spec"}
    )["spec"]
    spec["cpu"]["coreFraction"] = str(effective_core_fraction(vm.spec, vmclass))
    return spec


def build_domain(
    vm: VirtualMachine,
    vmclass: VirtualMachineClass,
    inventory: Inventory,
    topology: TopologyPolicy,
    host: HostContext,
    revision: str,
    network_config: NetworkConfig | None = None,
    devices: tuple[ResolvedDevice, ...] = (),
) -> DesiredDomain:
    """The domain a valid VM should be; NotReady when a dependency is missing.

    `network_config`: the VM's static address for its cloud-init seed, if it has one.
    `devices`: its block devices as the host has them (vm_devices.static_devices, then the
    attachments' devices). Served from `_MEMO` when every input is the very object of
    an earlier call, and the devices are equal.
    """
    secret = (_provisioning_secret(vm, inventory),)
    inputs = (vm, vmclass, topology, host, revision, secret, network_config, devices)
    desired = _MEMO.get(inputs)
    if desired is None:
        desired = _build_domain(
            vm, vmclass, inventory, topology, host, revision, network_config, devices
        )
        _MEMO.put(inputs, desired)
    elif desired.spec.metadata.revision != revision:
        # A new revision that left this VM as it was: only the stamp differs.
        metadata = replace(desired.spec.metadata, revision=revision)
        desired = replace(desired, spec=replace(desired.spec, metadata=metadata))
        _MEMO.put(inputs, desired)
    return desired


def _provisioning_secret(vm: VirtualMachine, inventory: Inventory) -> object:
    """The Secret the VM's provisioning names (its seed is built from it), if any."""
    provisioning = vm.spec.provisioning
    ref = None
    if provisioning is not None:
        ref = provisioning.user_data_ref or provisioning.sysprep_ref
    if ref is None:
        return None
    # The decrypted one of an encrypted Secret: the seed is built from its values.
    return inventory.secret_content(ObjectId("Secret", vm.namespace, ref.name))


_Inputs = tuple[
    VirtualMachine,
    VirtualMachineClass,
    TopologyPolicy,
    HostContext,
    str,
    tuple[object, ...],
    "NetworkConfig | None",
    tuple[ResolvedDevice, ...],
]


class _DesiredMemo:
    """Desired domains by the identity of the objects they were built from.

    A daemon plans every VM on every pass, but between two revisions most
    manifests are the very same (frozen) objects: building their domains again
    would give the same result (build_domain is pure). An entry is served only
    when each input *is* the object it was built from (the host, a plain value,
    only needs to be equal; a new revision only restamps the metadata), so an object loaded again
    from an edited file, a different class or a replaced disk always misses.
    Entries hold their inputs, so an id is never reused while cached. Bounded:
    the oldest entries go first.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: dict[int, tuple[_Inputs, DesiredDomain]] = {}

    def get(self, inputs: _Inputs) -> DesiredDomain | None:
        entry = self._entries.get(id(inputs[0]))
        if entry is None:
            return None
        cached, desired = entry
        vm, vmclass, topology, host, _revision, secret, network_config, devices = inputs
        if (
            cached[0] is vm
            and cached[1] is vmclass
            and cached[2] is topology
            and (cached[3] is host or cached[3] == host)
            and cached[6] == network_config
            and cached[7] == devices
            and len(cached[5]) == len(secret)
            and all(a is b for a, b in zip(cached[5], secret, strict=True))
        ):
            return desired
        return None

    def put(self, inputs: _Inputs, desired: DesiredDomain) -> None:
        key = id(inputs[0])
        self._entries.pop(key, None)
        while len(self._entries) >= self._limit:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (inputs, desired)

    def clear(self) -> None:
        self._entries.clear()


# Room for the VMs of a large host over a couple of revisions.
_MEMO = _DesiredMemo(limit=20_000)


def _build_domain(
    vm: VirtualMachine,
    vmclass: VirtualMachineClass,
    inventory: Inventory,
    topology: TopologyPolicy,
    host: HostContext,
    revision: str,
    network_config: NetworkConfig | None = None,
    devices: tuple[ResolvedDevice, ...] = (),
) -> DesiredDomain:
    spec = vm.spec
    layout = topology_for(topology, spec.cpu.cores)
    fraction = effective_core_fraction(spec, vmclass)
    millicores = requested_millicores(spec.cpu.cores, fraction.value)
    # Device names taken so far, per prefix: the seed CD-ROM comes after the block devices,
    # the hot-plugged ones after both.
    used: dict[str, int] = {}
    disks = own_disks(vm, devices, host.storage_pool, used)
    seeds = provisioning_seeds(vm, inventory, host.storage_pool, network_config)
    if seeds:
        disks = (*disks, seed_cdrom(vm, seeds[0].pool, seeds[0].volume, used))
    disks = (*disks, *attached_disks(devices, host.storage_pool, used))
    cpu_mode, cpu_model, features = _cpu(vmclass, host)
    spec_json = desired_spec_json(vm, vmclass)
    kernel = spec.kernel_boot
    domain = DomainSpec(
        name=domain_name(vm),
        uuid=domain_uuid(vm.id),
        domain_type=host.domain_type,
        machine="pc" if spec.os_type is OsType.LEGACY else "q35",
        vcpus=spec.cpu.cores,
        sockets=layout.sockets,
        max_cores_per_socket=layout.max_cores_per_socket,
        cpu_mode=cpu_mode,
        cpu_model=cpu_model,
        cpu_features=features,
        shares=cpu_shares(millicores),
        memory_kib=-(-spec.memory.size.bytes // 1024),
        disks=disks,
        nic=Nic(domain_mac(vm.id), host.network, _nic_model(vm)) if host.network else None,
        kernel_boot=KernelBoot(kernel.kernel, kernel.initrd, kernel.cmdline) if kernel else None,
        metadata=DomainMetadata(vm.KIND, vm.namespace, vm.name),
        title=f"{vm.id}",
    )
    digest = hashlib.sha256(
        (
            repr(replace(domain, metadata=DomainMetadata("", "", ""))) + _canonical(spec_json)
        ).encode()
    ).hexdigest()[:16]
    metadata = DomainMetadata(
        kind=vm.KIND,
        namespace=vm.namespace,
        name=vm.name,
        revision=revision,
        digest=digest,
        spec=spec_json,
        last_run_policy=spec.run_policy.value,
    )
    return DesiredDomain(
        spec=replace(domain, metadata=metadata),
        spec_json=spec_json,
        requested_millicores=millicores,
        topology_sockets=layout.sockets,
        topology_cores_per_socket=layout.cores_per_socket,
        seeds=seeds,
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _nic_model(vm: VirtualMachine) -> Literal["virtio", "e1000", "rtl8139"]:
    # dvp-api.md §1.1 enableParavirtualization.
    if vm.spec.enable_paravirtualization:
        return "virtio"
    return "rtl8139" if vm.spec.os_type is OsType.LEGACY else "e1000"


def _cpu(
    vmclass: VirtualMachineClass, host: HostContext
) -> tuple[Literal["host-model", "host-passthrough", "custom"], str | None, tuple[str, ...]]:
    cpu = vmclass.spec.cpu
    if cpu.type is CPUType.MODEL:
        return "custom", cpu.model, ()
    if cpu.type is CPUType.FEATURES:
        return "custom", TCG_CPU_MODEL, tuple(cpu.features)
    # Software emulation (TCG) cannot pass the host CPU through; it gets a
    # generic model instead, as QEMU itself would.
    if host.domain_type == "qemu" or cpu.type is CPUType.DISCOVERY:
        return "custom", TCG_CPU_MODEL, ()
    if cpu.type is CPUType.HOST_PASSTHROUGH:
        return "host-passthrough", None, ()
    return "host-model", None, ()
