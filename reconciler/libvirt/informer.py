"""The daemon's observation of its domains, kept current by libvirt's events.

A pass used to read every domain (two definitions of each running one) whatever
triggered it: a push that changed one VM paid for a thousand. Like a Kubernetes
informer, this keeps the last observation and reads again only the domains an event
named (defined, started, a device added, metadata changed...) or an action of ours
touched, plus those whose state moves without an event (a migration job under way, a
guest agent that did not answer yet). Events can be missed (a libvirtd restart, a
driver that sends none to another connection), so the whole host is read again:
  - on the first pass, and after the event connection was lost or came back;
  - when the pass asks for it (`resync`: the interval trigger's pass, so drift is
    corrected as often as before);
  - when the last whole reading is older than `full_every_s`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from reconciler.engine.devices.storage import ImageSourceFacts
from reconciler.engine.network.addressing import NetworkFacts
from reconciler.engine.reconcile import ActionRunner
from reconciler.libvirt.agent import GuestAgents
from reconciler.libvirt.observe import Observer
from reconciler.model.actions import ADDRESS_ACTIONS, VOLUME_ACTIONS, Action, touched_domain
from reconciler.model.domain import ObservedDomain, VolumeFacts

# The longest a pass trusts events alone: then it reads the whole host again.
FULL_OBSERVATION_S = 300.0


class InformedObserver:
    """An Observer whose `observe` reads only what changed since the last one.

    Thread-safe where it must be: `changed` and `resync` are called from libvirt's event
    thread, everything else from the pass's.
    """

    def __init__(
        self,
        observer: Observer,
        full_every_s: float = FULL_OBSERVATION_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.observer = observer
        self._full_every = full_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._known: dict[str, ObservedDomain] = {}
        self._full_due = True
        self._changed: set[str] = set()
        self._last_full = 0.0
        # What each observe did, for the pass's log line and the tests: "full" or the
        # number of domains read again.
        self.last_reading = ""

    @property
    def agents(self) -> GuestAgents:
        return self.observer.agents

    def in_flight(self, name: str) -> bool:
        return self.observer.in_flight(name)

    # ------------------------------------------------------------- from the events

    def changed(self, name: str) -> None:
        """An event named this domain: read it again on the next observe. Any thread."""
        with self._lock:
            self._changed.add(name)

    def resync(self) -> None:
        """Events may have been missed: the next observe reads the whole host. Any thread."""
        with self._lock:
            self._full_due = True

    def acted(self, action: Action) -> None:
        """An action of ours ran (or failed half-way): what it touched is read again,
        whether or not the driver sends an event for it."""
        name = touched_domain(action)
        if name is not None:
            self.changed(name)
        elif not isinstance(action, VOLUME_ACTIONS + ADDRESS_ACTIONS):
            # Of unknown reach (a pass reads volumes and the network again anyway).
            self.resync()

    # ------------------------------------------------------------ the DomainSource

    def observe(self) -> Mapping[str, ObservedDomain]:
        known = self._known
        with self._lock:
            # Taken before reading: an event that comes while we read stays for next time.
            changed, self._changed = self._changed, set()
            full = self._full_due or self._clock() - self._last_full > self._full_every
            self._full_due = False
        changed |= {name for name, found in known.items() if _moves_without_events(found)}
        changed |= {name for name in known if self.observer.in_flight(name)}
        if full or len(changed) > len(known) // 2:
            # Most of the host changed (a first pass): one bulk reading is cheaper.
            self._last_full = self._clock()
            self._known = dict(self.observer.observe())
            self.last_reading = "full"
        else:
            self._merge(known, self.observer.refresh(sorted(changed)))
            self.last_reading = f"{len(changed)} read again"
        return dict(self._known)

    def refresh(self, names: Collection[str]) -> Mapping[str, ObservedDomain | None]:
        found = self.observer.refresh(names)
        self._merge(self._known, found)
        return found

    def volumes(self, pool: str) -> Mapping[str, VolumeFacts]:
        # libvirt has no events for volumes: read each time (one call per pool).
        return self.observer.volumes(pool)

    def network(self, name: str) -> NetworkFacts | None:
        return self.observer.network(name)

    def image_source(self, path: str, directories: Sequence[str]) -> ImageSourceFacts:
        return self.observer.image_source(path, directories)

    # ------------------------------------------------------------------- inside

    def _merge(
        self, known: dict[str, ObservedDomain], found: Mapping[str, ObservedDomain | None]
    ) -> None:
        gone = False
        for name, domain in found.items():
            if domain is None:
                gone = known.pop(name, None) is not None or gone
            else:
                known[name] = domain
        if gone:
            self.observer.agents.keep(known)


def _moves_without_events(domain: ObservedDomain) -> bool:
    """State a pass reads that libvirt announces no event for: a migration job's
    progress, and an agent that is connected but has not answered (asked again after
    its retry period)."""
    if domain.migration is not None:
        return True
    agent = domain.agent
    return agent is not None and agent.connected and not agent.ready


class InformedRunner:
    """The pass's action runner, telling the informer what each action touched."""

    def __init__(self, runner: ActionRunner, informer: InformedObserver) -> None:
        self._runner = runner
        self._informer = informer

    def run(self, action: Action) -> None:
        try:
            self._runner.run(action)
        finally:
            self._informer.acted(action)
