"""libvirt lifecycle events: a guest that stopped, crashed or was started behind our back,
and a guest agent that connected or went away.

libvirt delivers events through an event loop the client runs; one thread
runs it for the whole process. The watch holds its own connection with
keep-alives, so a libvirtd restart is noticed and the watch comes back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import libvirt

from reconciler.libvirt.connection import LibvirtUnavailable, open_connection

_loop_lock = threading.Lock()
_loop_started = False

_EVENT_NAMES = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}


# Agent lifecycle events arrive as on_event(domain, "agent-connected"/"agent-disconnected").
_AGENT_EVENT_NAMES = {
    libvirt.VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED: "agent-connected",
    libvirt.VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_DISCONNECTED: "agent-disconnected",
}


# Events after which a domain reads differently (its definitions, devices, metadata,
# media, jobs) though its lifecycle did not change: the observation reads it again.
_CHANGE_EVENTS = (
    libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
    libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
    libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
    libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
    libvirt.VIR_DOMAIN_EVENT_ID_TRAY_CHANGE,
    libvirt.VIR_DOMAIN_EVENT_ID_DISK_CHANGE,
    libvirt.VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
    libvirt.VIR_DOMAIN_EVENT_ID_TUNABLE,
    libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
    libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2,
    libvirt.VIR_DOMAIN_EVENT_ID_REBOOT,
    libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
)


def start_event_loop() -> None:
    """Register libvirt's default event loop and run it in a daemon thread (once).

    Must happen before the connections whose events are wanted are opened.
    """
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _loop_started = True


class LifecycleWatch:
    """Calls `on_event(domain_name, event)` for every lifecycle and agent lifecycle event
    of any domain."""

    def __init__(
        self,
        uri: str,
        on_event: Callable[[str, str], None],
        on_connection: Callable[[bool, str], None] = lambda _up, _why: None,
        retry_seconds: float = 2.0,
        on_changed: Callable[[str], None] = lambda _name: None,
    ) -> None:
        self._uri = uri
        self._on_event = on_event
        self._on_changed = on_changed
        self._on_connection = on_connection
        self._retry = retry_seconds
        self._connection: libvirt.virConnect | None = None
        self._stopped = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="libvirt-watch", daemon=True)

    def start(self) -> None:
        start_event_loop()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._lost.set()

    def _keep(self) -> None:
        while not self._stopped.is_set():
            try:
                self._connect()
            except (LibvirtUnavailable, libvirt.libvirtError) as error:
                self._on_connection(False, str(error))
                self._stopped.wait(self._retry)
                continue
            self._on_connection(True, "")
            self._lost.wait()
            self._lost.clear()
            self._disconnect()

    def _connect(self) -> None:
        connection = open_connection(self._uri)
        # Keep-alives turn a dead libvirtd into a close event within seconds. Drivers
        # that run in this process (test:///) have no daemon to lose and support neither.
        with contextlib.suppress(libvirt.libvirtError):
            connection.setKeepAlive(5, 3)
        with contextlib.suppress(libvirt.libvirtError):
            connection.registerCloseCallback(self._closed, None)
        connection.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None
        )
        # A guest agent that connects changes the VM's status (AgentReady, guestOSInfo):
        # reported at once, not at the next interval. Drivers without agents may refuse.
        with contextlib.suppress(libvirt.libvirtError):
            connection.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE, self._agent_lifecycle, None
            )
        for event_id in _CHANGE_EVENTS:
            # Drivers refuse the events they never send.
            with contextlib.suppress(libvirt.libvirtError):
                connection.domainEventRegisterAny(None, event_id, self._changed, None)
        self._connection = connection

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.unregisterCloseCallback()
            connection.close()
        except libvirt.libvirtError:
            pass  # already gone with the daemon

    def _closed(self, _connection: libvirt.virConnect, reason: int, _opaque: object) -> None:
        self._on_connection(False, f"connection to {self._uri} closed (reason {reason})")
        self._lost.set()

    def _lifecycle(
        self,
        _connection: libvirt.virConnect,
        domain: libvirt.virDomain,
        event: int,
        _detail: int,
        _opaque: object,
    ) -> None:
        name = domain.name()
        self._on_changed(name)
        self._on_event(name, _EVENT_NAMES.get(event, str(event)))

    def _agent_lifecycle(
        self,
        _connection: libvirt.virConnect,
        domain: libvirt.virDomain,
        state: int,
        _reason: int,
        _opaque: object,
    ) -> None:
        name = domain.name()
        self._on_changed(name)
        self._on_event(name, _AGENT_EVENT_NAMES.get(state, f"agent-{state}"))

    def _changed(
        self, _connection: libvirt.virConnect, domain: libvirt.virDomain, *_details: object
    ) -> None:
        """Any event of _CHANGE_EVENTS; their details differ, the domain comes second."""
        self._on_changed(domain.name())
