"""The fleet's schedule: which host each VM belongs on, computed alike by every host.

A pure function of values every host reads the same way (the revision's VMs and
classes, the fleet's hosts with their labels and capacity, and where the reports say
each VM is), so two hosts never pick different homes for one VM and no coordinator
is needed. Rules, in the platform's terms (dvp-virtual-machines.txt, "Placement of
virtual machines on nodes"):

- A VM that is somewhere stays there. Whether its rules still hold there is asked of
  the schedule (`rules_broken`): the change profile decides what follows (a restart
  moves it, or a live migration does).
- Every other VM goes to a schedulable host that satisfies all its strict rules: the
  VM's nodeSelector, required node affinity and its class's nodeSelector; required
  VM affinity (a VM matching the term already in the same topology domain, or none
  anywhere while the VM matches its own term, as Kubernetes allows the first of a
  group); required VM anti-affinity, both its own and that of the VMs already there;
  and guaranteed capacity: the requested CPU (cores x coreFraction) and memory of the
  VMs meant to run there stay within the host's capacity (its Node manifest's, else
  what its latest Node report states: placement.fleet).
- Among those, soft rules score (preferred node affinity, preferred VM affinity and
  anti-affinity, by weight); the rendezvous hash of (VM, host) breaks ties, so the
  answer is stable when hosts come and go.
- VMs are placed in the order of their ids, in rounds until nothing more can be
  placed, so a VM whose affinity names a VM placed later still finds it.
- A VM no host can take is left out with the strict rule that excluded the last
  candidates, for its Pending condition.

Topology domains: `kubernetes.io/hostname` is the host's name; any other key is the
host's label of that name (a host without the label is in no domain). Namespaces
carry no labels here, so an empty namespaceSelector means every namespace and any
other one matches none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.api import ObjectId, VirtualMachine
from reconciler.api.vm import RunPolicy
from reconciler.api.vmclass import VirtualMachineClass
from reconciler.engine.fleet.affinity import (
    affinity_holds,
    anti_affinity_terms,
    neighbours,
    preference,
    same_domain,
    selects,
)
from reconciler.engine.fleet.placement import FleetNode, fits
from reconciler.model.cpu import requested_millicores


@dataclass(frozen=True)
class FleetHost:
    """A host as the schedule sees it; a capacity of None is not known and not limited."""

    node: FleetNode
    cpu_millicores: int | None = None
    memory_bytes: int | None = None

    @property
    def name(self) -> str:
        return self.node.name

    @classmethod
    def of(cls, node: FleetNode) -> FleetHost:
        """The host with the capacity its Node states (its manifest, else its report)."""
        return cls(node, node.cpu_millicores, node.memory_bytes)


@dataclass(frozen=True)
class Demand:
    """One VM to place: its manifest, its class, and what it reserves while it runs."""

    vm: VirtualMachine
    vmclass: VirtualMachineClass | None
    millicores: int
    memory_bytes: int
    reserves: bool  # a VM that never runs (AlwaysOff) takes no capacity

    @classmethod
    def of(cls, vm: VirtualMachine, vmclass: VirtualMachineClass | None) -> Demand:
        return cls(
            vm,
            vmclass,
            requested_millicores(vm.spec.cpu.cores, vm.spec.cpu.core_fraction.value),
            vm.spec.memory.size.bytes,
            vm.spec.run_policy is not RunPolicy.ALWAYS_OFF,
        )


@dataclass(frozen=True)
class Home:
    """Where a VM belongs: `host` "" when none can take it, `rule` then names why."""

    host: str
    reason: str
    rule: str = ""


@dataclass
class _Load:
    millicores: int = 0
    memory_bytes: int = 0


@dataclass
class _State:
    """Who is where while the schedule is worked out."""

    hosts: Mapping[str, FleetHost]
    loads: dict[str, _Load] = field(default_factory=dict)
    where: dict[ObjectId, str] = field(default_factory=dict)
    placed: dict[ObjectId, Demand] = field(default_factory=dict)
    # The placed VMs with a strict anti-affinity: checked against every newcomer.
    refusing: dict[ObjectId, Demand] = field(default_factory=dict)

    @classmethod
    def empty(cls, hosts: Sequence[FleetHost]) -> _State:
        # Sorted by name: the rule a waiting VM reports must not depend on reading order.
        ordered = sorted(hosts, key=lambda h: h.name)
        return cls({h.name: h for h in ordered}, {h.name: _Load() for h in ordered})

    def take(self, host: str, demand: Demand) -> None:
        vm_id = demand.vm.id
        self.where[vm_id] = host
        self.placed[vm_id] = demand
        if demand.reserves:
            self.loads[host].millicores += demand.millicores
            self.loads[host].memory_bytes += demand.memory_bytes
        if anti_affinity_terms(demand.vm):
            self.refusing[vm_id] = demand

    def others(self, vm_id: ObjectId) -> list[tuple[Demand, FleetHost]]:
        return [
            (demand, self.hosts[self.where[other]])
            for other, demand in self.placed.items()
            if other != vm_id
        ]


class Schedule:
    """Every VM's home; who ends up where (the hosts' loads) is worked out only when a
    question needs it (rules_broken, target_for, a VM to place): a pass at thousands of
    VMs that all stay where they are needs none of it."""

    def __init__(
        self,
        homes: Mapping[ObjectId, Home],
        hosts: Sequence[FleetHost],
        demands: Mapping[ObjectId, Demand],
        state: _State | None = None,
        *,
        placed_anew: bool = False,
    ) -> None:
        self.homes = homes
        self.hosts = hosts
        self.demands = demands
        self._state = state
        # Whether some VM was not somewhere already and was given a place (or none):
        # then the homes depend on every VM's demand, not only on where each one is.
        self.placed_anew = placed_anew

    def home_of(self, vm_id: ObjectId) -> Home | None:
        return self.homes.get(vm_id)

    @property
    def state(self) -> _State:
        if self._state is None:
            state = _State.empty(self.hosts)
            for vm_id, home in self.homes.items():
                if home.host:
                    state.take(home.host, self.demands[vm_id])
            self._state = state
        return self._state

    def rules_broken(self, vm_id: ObjectId) -> str:
        """The first strict rule a placed VM breaks where it is; "" when it keeps them.
        Asked per VM, not worked out for all: a pass at thousands of VMs has no use
        for the answer of those whose placement nothing changed."""
        state = self.state
        where = state.where.get(vm_id)
        if where is None:
            return ""
        return _strict_rule_broken(state.placed[vm_id], state.hosts[where], state, placed=True)


def schedule(
    demands: Iterable[Demand], hosts: Sequence[FleetHost], current: Mapping[ObjectId, str]
) -> Schedule:
    """Every VM's home; `current`: the host each VM is on now, as reported."""
    names = {host.name for host in hosts}
    ordered = sorted(demands, key=_order)
    stays: dict[str, Home] = {}  # one value per host: thousands of VMs share it
    homes: dict[ObjectId, Home] = {}
    waiting: list[Demand] = []
    for demand in ordered:
        where = current.get(demand.vm.id, "")
        if where in names:
            home = stays.get(where)
            if home is None:
                home = stays[where] = Home(where, f"runs on {where}")
            homes[demand.vm.id] = home
        else:
            waiting.append(demand)
    by_id = {d.vm.id: d for d in ordered}
    if not waiting:
        return Schedule(homes, sorted(hosts, key=lambda h: h.name), by_id)
    state = _State.empty(hosts)
    for vm_id, home in homes.items():
        state.take(home.host, by_id[vm_id])
    while waiting:
        still: list[Demand] = []
        for demand in waiting:
            chosen, rule = _best_host(demand, state, exclude=())
            if chosen is None:
                still.append(demand)
                homes[demand.vm.id] = Home(
                    "", f"no host of the fleet can take it: {rule}", rule=rule
                )
                continue
            state.take(chosen.name, demand)
            homes[demand.vm.id] = Home(chosen.name, f"placed on {chosen.name}")
        if len(still) == len(waiting):
            break
        waiting = still
    return Schedule(homes, list(state.hosts.values()), by_id, state, placed_anew=True)


def target_for(
    vm_id: ObjectId, planned: Schedule, required_labels: Mapping[str, str] | None = None
) -> Home:
    """Where to move a placed VM, never its own host; host "" with the rule when none fits.
    `required_labels`: labels the target must also have (a Migrate's nodeSelector).

    Every host computes it from the same values, so a migration's target is agreed
    without a word between them.
    """
    demand = planned.demands[vm_id]
    source = planned.homes[vm_id].host if vm_id in planned.homes else ""
    state = _State.empty(planned.hosts)
    for other, home in planned.homes.items():
        if home.host and other != vm_id:
            state.take(home.host, planned.demands[other])
    wanted = required_labels or {}
    unlabelled = [
        h.name for h in planned.hosts if any(h.node.labels.get(k) != v for k, v in wanted.items())
    ]
    if wanted and len(unlabelled) == len(planned.hosts):
        return Home("", "no host has the labels of its nodeSelector", rule="nodeSelector")
    chosen, rule = _best_host(demand, state, exclude=(source, *unlabelled))
    if chosen is None:
        return Home("", f"no other host of the fleet can take it: {rule}", rule=rule)
    return Home(chosen.name, f"moves to {chosen.name}")


def _best_host(
    demand: Demand, state: _State, exclude: Iterable[str]
) -> tuple[FleetHost | None, str]:
    excluded = set(exclude)
    candidates = [h for h in state.hosts.values() if h.name not in excluded and h.node.schedulable]
    if not candidates:
        return None, "no schedulable host"
    rule = ""
    fitting: list[FleetHost] = []
    for host in candidates:
        broken = _strict_rule_broken(demand, host, state, placed=False)
        if broken:
            rule = rule or broken
        else:
            fitting.append(host)
    if not fitting:
        return None, rule
    best = max(
        fitting,
        key=lambda h: (
            preference(demand, h, lambda: state.others(demand.vm.id)),
            _score(demand.vm.id, h.name),
        ),
    )
    return best, ""


def _strict_rule_broken(demand: Demand, host: FleetHost, state: _State, *, placed: bool) -> str:
    """The first strict rule `host` breaks for `demand`, "" when it keeps them all.

    `placed`: the VM is already counted on `host` (checking a VM where it runs).
    """
    vm = demand.vm
    if not fits(vm, demand.vmclass, host.node):
        return "nodeSelector, required node affinity or the class's nodeSelector"
    load = state.loads[host.name]
    adds = demand.reserves and not placed
    cpu = load.millicores + (demand.millicores if adds else 0)
    if host.cpu_millicores is not None and cpu > host.cpu_millicores:
        return f"guaranteed CPU: {host.name} has {host.cpu_millicores}m"
    memory = load.memory_bytes + (demand.memory_bytes if adds else 0)
    if host.memory_bytes is not None and memory > host.memory_bytes:
        return f"guaranteed memory: {host.name} has {host.memory_bytes} bytes"
    affinity = vm.spec.affinity
    together = affinity.virtual_machine_and_pod_affinity if affinity else None
    apart = anti_affinity_terms(vm)
    if together is None and not apart and not state.refusing:
        return ""
    others = state.others(vm.id)
    for term in together.required_during_scheduling_ignored_during_execution if together else []:
        if not affinity_holds(vm, term, host, others):
            return f"virtualMachineAndPodAffinity (topologyKey {term.topology_key})"
    for term in apart:
        if neighbours(vm, term, host, others):
            return f"virtualMachineAndPodAntiAffinity (topologyKey {term.topology_key})"
    # Anti-affinity is kept both ways, as Kubernetes keeps it: a VM already there that
    # refuses this one's company keeps it out.
    for other_id, other in state.refusing.items():
        if other_id == vm.id:
            continue
        other_host = state.hosts[state.where[other_id]]
        for term in anti_affinity_terms(other.vm):
            if same_domain(term.topology_key, host, other_host) and selects(term, other.vm, vm):
                return f"virtualMachineAndPodAntiAffinity of {other_id}"
    return ""


def _order(demand: Demand) -> tuple[str, str, str]:
    # The id's fields as a plain tuple: a dataclass's ordering costs several times more.
    vm_id = demand.vm.id
    return (vm_id.kind, vm_id.namespace, vm_id.name)


def _score(vm_id: ObjectId, host: str) -> bytes:
    return hashlib.sha256(f"{vm_id}\0{host}".encode()).digest()
