"""A VM's provisioning seed (cloud-init `cidata` or sysprep): the image its domain
attaches, uploaded into the pool when new, and its old seeds removed once no definition
uses them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler import provisioning
from reconciler.api import ObjectId, VirtualMachine
from reconciler.model.actions import Action, DeleteSeedVolume, EnsureSeedVolume
from reconciler.model.domain import ObservedDomain, VolumeFacts
from reconciler.model.names import seed_volume_name
from reconciler.provisioning import (
    NetworkConfig,
    ProvisioningKind,
    resolve_provisioning,
    seed_instance_id,
)
from reconciler.rules.inventory import Inventory


@dataclass(frozen=True)
class SeedVolume:
    """A provisioning seed image (cloud-init `cidata` or sysprep) to upload into the pool.

    Named by its content; `content` stays out of reprs and plan output (it may carry a
    Secret's data), `digest` of the payload is what an operator is shown instead.
    """

    pool: str
    volume: str
    kind: str
    digest: str
    content: bytes = field(repr=False, compare=False)


def provisioning_seeds(
    vm: VirtualMachine,
    inventory: Inventory,
    pool: str,
    network_config: NetworkConfig | None,
) -> tuple[SeedVolume, ...]:
    """The VM's provisioning seed; NotReady (ProvisioningReady) when its Secret is not usable."""
    payload = resolve_provisioning(vm, inventory)
    if payload is None:
        return ()
    network = network_config if payload.kind is ProvisioningKind.CLOUD_INIT else None
    # Through the package: pycdlib is imported when the first seed is made.
    image = provisioning.build_seed_iso(
        payload,
        instance_id=seed_instance_id(vm.namespace, vm.name, payload, network),
        hostname=vm.name,
        network=network,
    )
    volume = seed_volume_name(vm.namespace, vm.name, image)
    return (SeedVolume(pool, volume, str(payload.kind), payload.digest, image),)


def seed_actions(
    vm_id: ObjectId,
    seeds: tuple[SeedVolume, ...],
    observed: ObservedDomain | None,
    volumes: Mapping[tuple[str, str], VolumeFacts],
    existing: tuple[tuple[str, str], ...],
) -> list[Action]:
    """Upload the VM's seed when it is new; remove its old seeds (`existing`: the VM's
    seed volumes in the pools) once no definition (next boot or running) uses them."""
    actions: list[Action] = [
        EnsureSeedVolume(vm_id, seed.pool, seed.volume, seed.kind, seed.digest, seed.content)
        for seed in seeds
        if (seed.pool, seed.volume) not in volumes
    ]
    if not existing:
        return actions  # no seed of the VM in the pools: none to remove
    # Disk sources read back from libvirt are "pool/volume" for pool volumes.
    in_use = {f"{seed.pool}/{seed.volume}" for seed in seeds}
    if observed is not None:
        for view in (observed.config, observed.live):
            if view is not None:
                in_use |= {source for _target, source, _device in view.facts.disks}
    actions.extend(
        DeleteSeedVolume(vm_id, pool, volume)
        for pool, volume in existing
        if f"{pool}/{volume}" not in in_use
    )
    return actions
