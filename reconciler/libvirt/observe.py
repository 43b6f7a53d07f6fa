"""What libvirt runs: the domains this project owns, and the volumes of a pool."""

from __future__ import annotations

from collections.abc import Mapping

import libvirt

from reconciler.engine.domain import DefinitionView, ObservedDomain, PowerState, VolumeFacts
from reconciler.libvirt.facts import parse_definition

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


def state_of(domain: libvirt.virDomain) -> tuple[PowerState, str]:
    code, reason = domain.state()
    state = _STATES.get(code, PowerState.NOSTATE)
    return state, _REASONS.get(state, {}).get(reason, "unknown")


class Observer:
    """Reads the owned domains; XML already parsed is not parsed again.

    A resync that finds nothing changed still asks libvirt for every definition
    (cheap), but parses none of them twice (SPEC §11).
    """

    def __init__(self, connection: libvirt.virConnect) -> None:
        self._connection = connection
        self._parsed: dict[str, DefinitionView] = {}

    def _view(self, xml: str) -> DefinitionView:
        view = self._parsed.get(xml)
        if view is None:
            view = parse_definition(xml)
            self._parsed[xml] = view
        return view

    def observe(self) -> Mapping[str, ObservedDomain]:
        seen: dict[str, DefinitionView] = {}
        observed: dict[str, ObservedDomain] = {}
        for domain in self._connection.listAllDomains(0):
            try:
                state, reason = state_of(domain)
                persistent = bool(domain.isPersistent())
                config_xml = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                live_xml = domain.XMLDesc(0) if state.active else None
            except libvirt.libvirtError as error:
                if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue  # undefined while we looked
                raise
            config = self._view(config_xml)
            seen[config_xml] = config
            live = None
            if live_xml is not None:
                live = self._view(live_xml)
                seen[live_xml] = live
            found = ObservedDomain(
                name=domain.name(),
                uuid=domain.UUIDString(),
                state=state,
                reason=reason,
                persistent=persistent,
                config=config,
                live=live,
            )
            if found.owner is not None:
                observed[found.name] = found
        # Forget definitions that are gone, so the cache does not grow forever.
        self._parsed = seen
        return observed

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
        found: dict[str, VolumeFacts] = {}
        for volume in storage.listAllVolumes(0):
            _type, capacity, _allocation = volume.info()
            found[volume.name()] = VolumeFacts(pool, volume.name(), capacity, volume.path())
        return found
