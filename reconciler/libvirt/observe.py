"""What libvirt runs: the domains this project owns, and the volumes of a pool."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial

import libvirt

from reconciler.engine.devices.storage import ImageSourceFacts
from reconciler.engine.network.addressing import NetworkFacts, Reservation
from reconciler.libvirt.agent import GuestAgents
from reconciler.libvirt.disk_steps import is_test_driver, simulated_source
from reconciler.libvirt.facts import parse_definition
from reconciler.libvirt.migrate import MigrationProgress
from reconciler.libvirt.storage import ImageSourceMissing, StorageError, inspect_source
from reconciler.libvirt.together import Answer, together
from reconciler.model.domain import (
    DefinitionView,
    MigrationJob,
    ObservedDomain,
    PowerState,
    VolumeFacts,
)
from reconciler.model.guest import GuestAgent

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.BLOCKED,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.PMSUSPENDED,
}


def _reason_names(prefix: str) -> dict[int, str]:
    names: dict[int, str] = {}
    for attribute in dir(libvirt):
        if attribute.startswith(prefix) and not attribute.endswith("_LAST"):
            names[getattr(libvirt, attribute)] = attribute[len(prefix) :].lower()
    return names


# libvirt's state reasons by state, named as `virsh domstate --reason` names them.
_REASONS = {
    PowerState.RUNNING: _reason_names("VIR_DOMAIN_RUNNING_"),
    PowerState.PAUSED: _reason_names("VIR_DOMAIN_PAUSED_"),
    PowerState.SHUTDOWN: _reason_names("VIR_DOMAIN_SHUTDOWN_"),
    PowerState.SHUTOFF: _reason_names("VIR_DOMAIN_SHUTOFF_"),
    PowerState.CRASHED: _reason_names("VIR_DOMAIN_CRASHED_"),
}


def _state(code_and_reason: tuple[int, int]) -> tuple[PowerState, str]:
    code, reason = code_and_reason
    state = _STATES.get(code, PowerState.NOSTATE)
    return state, _REASONS.get(state, {}).get(reason, "unknown")


def state_of(domain: libvirt.virDomain) -> tuple[PowerState, str]:
    code, reason = domain.state()
    return _state((code, reason))


class Observer:
    """Reads the owned domains; XML already parsed is not parsed again.

    A resync that finds nothing changed still asks libvirt for every definition
    (cheap), but parses none of them twice (SPEC §11). Per domain it makes only
    the calls the bare reading needs: the next-boot definition, and the live one
    of a running domain; states and reasons come for all domains in one call,
    and so does the (usually empty) set of transient domains.
    """

    def __init__(self, connection: libvirt.virConnect) -> None:
        self._connection = connection
        self._parsed: dict[str, DefinitionView] = {}
        # Kept as long as the observer, so an agent is asked once per boot (agent.py).
        self.agents = GuestAgents()
        # Whether this process's migration runner moves the domain now (migrations.py).
        # libvirt's job shows a migration only from its start to its end; around those
        # moments a pass would see the guest running here with no migration and begin
        # it again, or, once its volumes here are deleted, make them anew.
        self.in_flight: Callable[[str], bool] = lambda _name: False

    def _view(self, xml: str, seen: dict[str, DefinitionView]) -> DefinitionView:
        view = self._parsed.get(xml)
        if view is None:
            view = parse_definition(xml)
            self._parsed[xml] = view
        seen[xml] = view
        return view

    def _states(self) -> list[tuple[libvirt.virDomain, tuple[int, int] | None]]:
        """Every domain with its (state, reason), None where libvirt did not say."""
        try:
            records = self._connection.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)
        except libvirt.libvirtError as error:
            if error.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            return [(domain, None) for domain in self._connection.listAllDomains(0)]
        found: list[tuple[libvirt.virDomain, tuple[int, int] | None]] = []
        for domain, stats in records:
            code, reason = stats.get("state.state"), stats.get("state.reason")
            known = isinstance(code, int) and isinstance(reason, int)
            found.append((domain, (code, reason) if known else None))
        return found

    def _read(
        self,
        domain: libvirt.virDomain,
        state_code: tuple[int, int] | None,
        transient: set[str],
        seen: dict[str, DefinitionView],
        definition: Answer[str] | None = None,
    ) -> ObservedDomain | None:
        """One domain as observed; None when it went away while we looked. `definition`:
        its next-boot definition, asked for already."""
        name = domain.name()
        try:
            state, reason = _state(state_code) if state_code else state_of(domain)
            config_xml = (
                definition.value()
                if definition is not None
                else domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            )
            live_xml = domain.XMLDesc(0) if state.active else None
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None  # undefined while we looked
            raise
        config = self._view(config_xml, seen)
        live = self._view(live_xml, seen) if live_xml is not None else None
        ours = config.metadata is not None or (live is not None and live.metadata is not None)
        return ObservedDomain(
            name=name,
            uuid=domain.UUIDString(),
            state=state,
            reason=reason,
            persistent=name not in transient,
            config=config,
            live=live,
            agent=self._agent(domain, name, live) if ours else None,
            migration=self._migration(domain, name, config) if live is not None else None,
        )

    def _migration(
        self, domain: libvirt.virDomain, name: str, config: DefinitionView
    ) -> MigrationJob | None:
        job = _migration(domain, config)
        if job is None and self.in_flight(name):
            return MigrationJob(0, "the migration this host began is under way")
        return job

    def _agent(
        self, domain: libvirt.virDomain, name: str, live: DefinitionView | None
    ) -> GuestAgent | None:
        """The guest agent of a running domain; None for one that is not running."""
        return self.agents.read(domain, name, live.agent_channel) if live is not None else None

    def _transient(self) -> set[str]:
        flags = libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT
        return {domain.name() for domain in self._connection.listAllDomains(flags)}

    def observe(self) -> Mapping[str, ObservedDomain]:
        seen: dict[str, DefinitionView] = {}
        observed: dict[str, ObservedDomain] = {}
        transient = self._transient()
        states = self._states()
        definitions = together(
            [partial(domain.XMLDesc, libvirt.VIR_DOMAIN_XML_INACTIVE) for domain, _ in states]
        )
        for (domain, state_code), definition in zip(states, definitions, strict=True):
            found = self._read(domain, state_code, transient, seen, definition)
            if found is not None and found.owner is not None:
                observed[found.name] = found
        # Forget definitions that are gone, so the cache does not grow forever.
        self._parsed = seen
        self.agents.keep(observed)
        return observed

    def refresh(self, names: Collection[str]) -> Mapping[str, ObservedDomain | None]:
        """The named domains read again; None for one that is gone or not ours."""
        refreshed: dict[str, ObservedDomain | None] = {}
        transient = self._transient() if names else set()
        for name in names:
            try:
                domain = self._connection.lookupByName(name)
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                refreshed[name] = None
                continue
            found = self._read(domain, None, transient, self._parsed)
            refreshed[name] = found if found is not None and found.owner is not None else None
        return refreshed

    def volumes(self, pool: str) -> Mapping[str, VolumeFacts]:
        try:
            storage = self._connection.storagePoolLookupByName(pool)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                # Reported when a volume is to be created in it.
                return {}
            raise
        if not storage.isActive():
            return {}
        try:
            return _volume_facts(storage, pool)
        except libvirt.libvirtError as error:
            if error.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise
        # A file removed behind libvirt's back stays listed until the pool is refreshed,
        # and every pass would fail on it.
        storage.refresh(0)
        return _volume_facts(storage, pool)

    def network(self, name: str) -> NetworkFacts | None:
        """The network's addresses and DHCP reservations; None when it does not exist."""
        try:
            network = self._connection.networkLookupByName(name)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                return None
            raise
        return network_facts(name, bool(network.isActive()), network.XMLDesc(0))

    def image_source(self, path: str, directories: Sequence[str]) -> ImageSourceFacts:
        """An image file not imported yet: its format and size, or what is wrong with it.
        A file outside `directories` is not opened, not even simulated on the test driver."""
        try:
            found = inspect_source(path, directories)
        except ImageSourceMissing as error:
            if not is_test_driver(self._connection):
                return ImageSourceFacts(path, problem=str(error))
            # A simulated host: it "has" every image, as its volumes "hold" their data.
            found = simulated_source(path)
        except StorageError as error:
            return ImageSourceFacts(path, problem=str(error))
        return ImageSourceFacts(path, found.format, found.virtual_bytes)


# Pool types whose volumes are files, keyed by their path (libvirt's storage_backend_fs).
_FILE_POOLS = frozenset({"dir", "fs", "netfs"})


def network_facts(name: str, active: bool, xml: str) -> NetworkFacts:
    root = ET.fromstring(xml)
    gateways: list[ipaddress.IPv4Address] = []
    subnets: list[ipaddress.IPv4Network] = []
    reservations: list[Reservation] = []
    for ip in root.findall("ip"):
        if ip.get("family", "ipv4") != "ipv4":
            continue
        address = ip.get("address")
        if address:
            gateways.append(ipaddress.IPv4Address(address))
            mask = ip.get("prefix") or ip.get("netmask") or "24"
            subnets.append(ipaddress.IPv4Interface(f"{address}/{mask}").network)
        for host in ip.findall("dhcp/host"):
            mac, host_ip = host.get("mac"), host.get("ip")
            if mac and host_ip:
                reservations.append(Reservation(mac.lower(), host_ip, host.get("name", "")))
    return NetworkFacts(name, active, tuple(gateways), tuple(reservations), tuple(subnets))


def _volume_facts(storage: libvirt.virStoragePool, pool: str) -> dict[str, VolumeFacts]:
    # In a pool of files a volume's key is its path, and the key comes with the
    # listing: one call to libvirt per volume fewer (100 of a no-op pass's 300 at
    # 100 VMs). Other pools' keys are not paths (an LV's UUID, an RBD's pool/image).
    keyed_by_path = ET.fromstring(storage.XMLDesc(0)).get("type") in _FILE_POOLS
    found: dict[str, VolumeFacts] = {}
    volumes = storage.listAllVolumes(0)
    for volume, info in zip(volumes, together([v.info for v in volumes]), strict=True):
        _type, capacity, _allocation = info.value()
        path = volume.key() if keyed_by_path else volume.path()
        found[volume.name()] = VolumeFacts(pool, volume.name(), capacity, path)
    return found


def _migration(domain: libvirt.virDomain, config: DefinitionView) -> MigrationJob | None:
    """The outgoing migration of a running domain, asked of libvirt only while one of its
    operations is recorded as started: a migration is begun only after that record, and
    thousands of domains without one cost no call."""
    meta = config.metadata
    if meta is None or not any(":started" in e for e in meta.completed_operations):
        return None
    try:
        stats = domain.jobStats()
    except libvirt.libvirtError:
        return None  # gone, or the job ended while we asked
    if stats.get("operation") != libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT:
        return None
    progress = MigrationProgress.from_job_stats(stats)
    if progress is None:
        return None
    return MigrationJob(progress.percent, progress.line())
