"""Reading the guest agents of running domains, once per boot.

A pass over a thousand running guests must not make a thousand agent calls, and
must not hang on one agent that does not answer. So:

- whether an agent is there at all comes for free: libvirt tracks the state of the
  agent's channel and shows it in the live XML the observer reads anyway (qemu-ga
  opening its port makes it "connected"); a guest without an agent costs no call;
- a connected agent is asked once per running instance (domain UUID and ID: a new
  boot gets a new ID) with `virDomainGetGuestInfo`, the supported API, which answers
  in milliseconds (its guest-sync gives up after libvirt's 5 s on a hung agent);
- an agent that did not answer is asked again on a later pass, but no sooner than
  `retry_seconds`, so a hung agent costs a pass at most one short wait per period;
- an agent lifecycle event (`agent_changed`, from the event thread) makes the next
  pass ask again: a guest that rebooted into another kernel keeps its domain ID.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import libvirt

from reconciler.model.guest import DISCONNECTED, GuestAgent, GuestOSInfo

CONNECTED = "connected"
RETRY_SECONDS = 10.0

# guestInfo's keys (libvirt's "os." typed parameters) to KubeVirt's guestOSInfo fields.
_OS_FIELDS = {
    "os.id": "id",
    "os.name": "name",
    "os.pretty-name": "pretty_name",
    "os.version": "version",
    "os.version-id": "version_id",
    "os.kernel-release": "kernel_release",
    "os.kernel-version": "kernel_version",
    "os.machine": "machine",
}


def os_info_of(parameters: Mapping[str, object]) -> GuestOSInfo:
    """guestInfo(VIR_DOMAIN_GUEST_INFO_OS)'s answer as guestOSInfo; unknown keys ignored."""
    values = {field: str(parameters[key]) for key, field in _OS_FIELDS.items() if key in parameters}
    return GuestOSInfo(**values)


@dataclass(frozen=True)
class _Answer:
    boot: tuple[str, int]  # (UUID, domain ID) of the instance that was asked
    agent: GuestAgent
    asked_at: float


class GuestAgents:
    """The agents of one libvirt connection's running domains; `asks` counts agent calls."""

    def __init__(
        self,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retry = retry_seconds
        self._clock = clock
        self._answers: dict[str, _Answer] = {}
        self._changed: set[str] = set()
        self._lock = threading.Lock()
        self.asks = 0

    def agent_changed(self, domain_name: str) -> None:
        """An agent (dis)connected: ask it again on the next pass. Any thread."""
        with self._lock:
            self._changed.add(domain_name)

    def read(self, domain: libvirt.virDomain, name: str, channel: str) -> GuestAgent:
        """The agent of a running domain whose live XML shows the agent channel in
        state `channel`."""
        if channel != CONNECTED:
            self._answers.pop(name, None)
            return DISCONNECTED
        with self._lock:
            changed = name in self._changed
            self._changed.discard(name)
        boot = (domain.UUIDString(), domain.ID())
        known = self._answers.get(name)
        if known is not None and known.boot == boot and not changed and self._still(known):
            return known.agent
        agent = self._ask(domain)
        self._answers[name] = _Answer(boot, agent, self._clock())
        return agent

    def _still(self, known: _Answer) -> bool:
        """Whether an earlier answer stands: an agent that answered, for the whole boot;
        one that did not, until the retry period is over."""
        return known.agent.ready or self._clock() - known.asked_at < self._retry

    def keep(self, names: Collection[str]) -> None:
        """Forget the domains that are gone, so the memory does not grow forever."""
        for name in [n for n in self._answers if n not in names]:
            del self._answers[name]
        with self._lock:
            self._changed.intersection_update(names)  # events of domains not ours

    def _ask(self, domain: libvirt.virDomain) -> GuestAgent:
        self.asks += 1
        try:
            answer = domain.guestInfo(libvirt.VIR_DOMAIN_GUEST_INFO_OS, 0)
        except libvirt.libvirtError as error:
            return GuestAgent(connected=True, error=str(error.get_error_message() or error))
        return GuestAgent(connected=True, os_info=os_info_of(answer))
