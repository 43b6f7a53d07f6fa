"""The fleet's schedule as a pure function (issue 14): every host computes the same homes
from the same revision and reports, no strict rule is ever broken, no host's guaranteed
capacity is overcommitted, and a VM no host can take names the rule that kept it out."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.api import ObjectId, VirtualMachine
from reconciler.engine.fleet.affinity import HOSTNAME_KEY
from reconciler.engine.fleet.placement import FleetNode, fits
from reconciler.engine.fleet.schedule import (
    Demand,
    FleetHost,
    Schedule,
    schedule,
    target_for,
)

GIB = 1 << 30


def vm(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    cores: int = 1,
    fraction: int = 100,
    memory_gib: int = 1,
    affinity: dict[str, Any] | None = None,
    node_selector: dict[str, str] | None = None,
    namespace: str = "ns",
) -> VirtualMachine:
    spec: dict[str, Any] = {
        "virtualMachineClassName": "generic",
        "cpu": {"cores": cores, "coreFraction": f"{fraction}%"},
        "memory": {"size": f"{memory_gib}Gi"},
        "blockDeviceRefs": [{"kind": "VirtualDisk", "name": f"{name}-root"}],
    }
    if affinity:
        spec["affinity"] = affinity
    if node_selector:
        spec["nodeSelector"] = node_selector
    return VirtualMachine.model_validate(
        {
            "apiVersion": "virtualization.deckhouse.io/v1alpha2",
            "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": spec,
        }
    )


def term(labels: dict[str, str], key: str = HOSTNAME_KEY) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key}


def apart(labels: dict[str, str], key: str = HOSTNAME_KEY) -> dict[str, Any]:
    return {
        "virtualMachineAndPodAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term(labels, key)]
        }
    }


def together(labels: dict[str, str], key: str = HOSTNAME_KEY) -> dict[str, Any]:
    return {
        "virtualMachineAndPodAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term(labels, key)]
        }
    }


def host(
    name: str, cpu: int | None = None, memory_gib: int | None = None, **labels: str
) -> FleetHost:
    return FleetHost(
        FleetNode(name, labels, True),
        None if cpu is None else cpu * 1000,
        None if memory_gib is None else memory_gib * GIB,
    )


def cordoned(name: str) -> FleetHost:
    return FleetHost(FleetNode(name, {}, False))


def homes(result: Schedule) -> dict[str, str]:
    return {vm_id.name: home.host for vm_id, home in result.homes.items()}


def demands(*vms: VirtualMachine) -> list[Demand]:
    return [Demand.of(one, None) for one in vms]


# --- examples -------------------------------------------------------------------------


def test_strict_anti_affinity_keeps_replicas_on_separate_hosts_and_the_third_waits() -> None:
    # given three replicas that must not share a host, and two hosts
    replicas = [vm(f"db{i}", labels={"app": "db"}, affinity=apart({"app": "db"})) for i in range(3)]
    # when the fleet is scheduled
    result = schedule(demands(*replicas), [host("hv1"), host("hv2")], {})
    # then two run on different hosts and the third names the rule that keeps it out
    placed = [h for h in homes(result).values() if h]
    assert sorted(placed) == ["hv1", "hv2"]
    waiting = [home for home in result.homes.values() if not home.host]
    assert len(waiting) == 1
    assert "virtualMachineAndPodAntiAffinity" in waiting[0].rule


def test_anti_affinity_of_a_vm_already_there_keeps_a_newcomer_out() -> None:
    # given a VM on hv1 that refuses company labelled app=web, and a web VM without rules
    loner = vm("loner", affinity=apart({"app": "web"}))
    web = vm("web", labels={"app": "web"})
    # when the web VM is placed
    result = schedule(demands(loner, web), [host("hv1"), host("hv2")], {loner.id: "hv1"})
    # then it goes to the other host
    assert homes(result) == {"loner": "hv1", "web": "hv2"}


def test_strict_affinity_follows_the_vm_it_names_even_when_that_one_sorts_later() -> None:
    # given an app that must sit beside its database, named so that it is placed first
    app = vm("a-app", affinity=together({"app": "db"}))
    db = vm("z-db", labels={"app": "db"})
    hosts = [host(f"hv{i}") for i in range(1, 6)]
    # when scheduled
    result = homes(schedule(demands(app, db), hosts, {}))
    # then both share a host
    assert result["a-app"] == result["z-db"] != ""


def test_the_first_of_a_group_that_must_stay_together_may_go_anywhere() -> None:
    # given two VMs that must sit beside a VM labelled group=g, themselves labelled so
    members = [
        vm(f"m{i}", labels={"group": "g"}, affinity=together({"group": "g"})) for i in range(2)
    ]
    # when scheduled on three hosts
    result = homes(schedule(demands(*members), [host("a"), host("b"), host("c")], {}))
    # then they are placed, together
    assert result["m0"] == result["m1"] != ""


def test_guaranteed_cpu_is_never_overcommitted_and_the_waiting_vm_says_so() -> None:
    # given a host with 2 cores and three VMs of one full core each
    vms = [vm(f"v{i}") for i in range(3)]
    # when scheduled
    result = schedule(demands(*vms), [host("hv1", cpu=2)], {})
    # then two are placed; the third waits for guaranteed CPU
    assert sorted(homes(result).values()) == ["", "hv1", "hv1"]
    assert next(h for h in result.homes.values() if not h.host).rule.startswith("guaranteed CPU")


def test_a_core_fraction_reserves_only_its_share() -> None:
    # given a host with 1 core and four VMs of one core at 25%
    vms = [vm(f"v{i}", fraction=25) for i in range(4)]
    # then all four fit
    assert all(schedule(demands(*vms), [host("hv1", cpu=1)], {}).homes[v.id].host for v in vms)


def test_guaranteed_memory_is_never_overcommitted() -> None:
    big = [vm(f"v{i}", memory_gib=3) for i in range(2)]
    result = schedule(demands(*big), [host("hv1", memory_gib=4), host("hv2", memory_gib=4)], {})
    assert sorted(homes(result).values()) == ["hv1", "hv2"]


def test_a_preferred_node_affinity_wins_when_possible_and_falls_back_when_not() -> None:
    # given a VM preferring ssd hosts
    prefers_ssd = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {
                        "matchExpressions": [
                            {"key": "disktype", "operator": "In", "values": ["ssd"]}
                        ]
                    },
                }
            ]
        }
    }
    fast = vm("fast", affinity=prefers_ssd)
    hosts = [host("h1", disktype="hdd"), host("h2", disktype="ssd"), host("h3", disktype="hdd")]
    # then it lands on the ssd host
    assert homes(schedule(demands(fast), hosts, {}))["fast"] == "h2"
    # and when the ssd host is full, on another host rather than nowhere
    hosts[1] = host("h2", cpu=0, disktype="ssd")
    assert homes(schedule(demands(fast), hosts, {}))["fast"] in {"h1", "h3"}


def test_a_cordoned_host_takes_no_new_vm_but_keeps_its_own() -> None:
    # given hv1 cordoned, running one VM, and a new VM
    here, new = vm("here"), vm("new")
    result = homes(schedule(demands(here, new), [cordoned("hv1"), host("hv2")], {here.id: "hv1"}))
    assert result == {"here": "hv1", "new": "hv2"}


def test_a_placed_vm_whose_rules_no_longer_hold_stays_and_says_which_rule() -> None:
    # given a VM on hv1 whose nodeSelector now asks for ssd, which only hv2 has
    moved = vm("moved", node_selector={"disktype": "ssd"})
    result = schedule(demands(moved), [host("hv1"), host("hv2", disktype="ssd")], {moved.id: "hv1"})
    home = result.homes[moved.id]
    # then it stays where it runs, with the rule it breaks there
    assert home.host == "hv1" and "nodeSelector" in result.rules_broken(moved.id)
    # and the target of a move is the host that satisfies them
    assert target_for(moved.id, result).host == "hv2"


def test_a_move_never_targets_the_source_nor_a_host_that_breaks_anti_affinity() -> None:
    # given db0 on hv1 to be evicted, db1 on hv2 refusing company, and hv3 free
    db0 = vm("db0", labels={"app": "db"}, affinity=apart({"app": "db"}))
    db1 = vm("db1", labels={"app": "db"}, affinity=apart({"app": "db"}))
    hosts = [host("hv1"), host("hv2"), host("hv3")]
    result = schedule(demands(db0, db1), hosts, {db0.id: "hv1", db1.id: "hv2"})
    assert target_for(db0.id, result).host == "hv3"
    # and with hv3 gone no move is possible, with the reason
    result = schedule(demands(db0, db1), hosts[:2], {db0.id: "hv1", db1.id: "hv2"})
    target = target_for(db0.id, result)
    assert target.host == "" and "AntiAffinity" in target.rule


def test_another_label_as_topology_key_spreads_across_zones() -> None:
    replicas = [
        vm(f"r{i}", labels={"app": "r"}, affinity=apart({"app": "r"}, "zone")) for i in range(2)
    ]
    hosts = [host("a1", zone="a"), host("a2", zone="a"), host("b1", zone="b")]
    result = homes(schedule(demands(*replicas), hosts, {}))
    zones = {"a1": "a", "a2": "a", "b1": "b"}
    assert {zones[result["r0"]], zones[result["r1"]]} == {"a", "b"}


# --- properties -----------------------------------------------------------------------

LABELS = st.sampled_from([{}, {"app": "db"}, {"app": "web"}, {"tier": "x"}])


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[Demand], list[FleetHost], dict[ObjectId, str]]:
    count = draw(st.integers(1, 5))
    hosts = [
        FleetHost(
            FleetNode(
                f"hv{i}",
                draw(st.sampled_from([{}, {"disktype": "ssd"}, {"zone": "a"}, {"zone": "b"}])),
                draw(st.booleans()) or i == 0,
            ),
            draw(st.sampled_from([None, 1000, 2000, 4000])),
            draw(st.sampled_from([None, 2 * GIB, 8 * GIB])),
        )
        for i in range(count)
    ]
    vms = []
    for i in range(draw(st.integers(0, 10))):
        labels = draw(LABELS)
        rule = draw(st.sampled_from(["none", "apart", "together", "ssd", "apart-zone"]))
        affinity = None
        selector = None
        if rule == "apart":
            affinity = apart(labels or {"app": "db"})
        elif rule == "apart-zone":
            affinity = apart(labels or {"app": "db"}, "zone")
        elif rule == "together":
            affinity = together(draw(LABELS) or {"app": "db"})
        elif rule == "ssd":
            selector = {"disktype": "ssd"}
        vms.append(
            vm(
                f"vm{i}",
                labels=labels,
                cores=draw(st.integers(1, 2)),
                fraction=draw(st.sampled_from([10, 50, 100])),
                memory_gib=draw(st.integers(1, 3)),
                affinity=affinity,
                node_selector=selector,
            )
        )
    current = {
        one.id: draw(st.sampled_from([h.name for h in hosts]))
        for one in vms
        if draw(st.integers(0, 4)) == 0
    }
    return [Demand.of(one, None) for one in vms], hosts, current


def selects(labels: dict[str, str], other: VirtualMachine) -> bool:
    return all(other.metadata.labels.get(k) == v for k, v in labels.items())


def domain(key: str, fleet_host: FleetHost) -> str | None:
    return fleet_host.name if key == HOSTNAME_KEY else fleet_host.node.labels.get(key)


@settings(max_examples=300, deadline=None)
@given(fleets(), st.randoms(use_true_random=False))
def test_every_host_computes_the_same_schedule_whatever_order_it_reads_things_in(
    fleet: tuple[list[Demand], list[FleetHost], dict[ObjectId, str]], shuffler: random.Random
) -> None:
    # given the same revision and reports, read in two different orders
    wanted, hosts, current = fleet
    other_wanted, other_hosts = list(wanted), list(hosts)
    shuffler.shuffle(other_wanted)
    shuffler.shuffle(other_hosts)
    # then both hosts compute the same home for every VM
    assert (
        schedule(wanted, hosts, current).homes == schedule(other_wanted, other_hosts, current).homes
    )


@settings(max_examples=300, deadline=None)
@given(fleets())
def test_no_new_placement_breaks_a_strict_rule_or_overcommits_a_host(
    fleet: tuple[list[Demand], list[FleetHost], dict[ObjectId, str]],
) -> None:
    wanted, hosts, current = fleet
    result = schedule(wanted, hosts, current)
    by_name = {h.name: h for h in hosts}
    placed = {
        d.vm.id: (d, by_name[result.homes[d.vm.id].host])
        for d in wanted
        if result.homes[d.vm.id].host
    }
    # every VM has a home entry; a VM without a host names a rule
    assert set(result.homes) == {d.vm.id for d in wanted}
    assert all(home.rule for home in result.homes.values() if not home.host)
    for vm_id, (demand, where) in placed.items():
        if vm_id in current:
            continue  # a VM stays where it runs; its rules are reported, not enforced
        # node rules and schedulability
        assert where.node.schedulable and fits(demand.vm, None, where.node)
        affinity = demand.vm.spec.affinity
        # strict anti-affinity, both ways
        for other_id, (other, other_where) in placed.items():
            if other_id == vm_id:
                continue
            for owner, target, owner_where, target_where in (
                (demand, other, where, other_where),
                (other, demand, other_where, where),
            ):
                rules = owner.vm.spec.affinity
                anti = rules.virtual_machine_and_pod_anti_affinity if rules else None
                for t in anti.required_during_scheduling_ignored_during_execution if anti else []:
                    assert t.label_selector is not None
                    if (
                        selects(t.label_selector.match_labels, target.vm)
                        and owner.vm.id != target.vm.id
                    ):
                        d1 = domain(t.topology_key, owner_where)
                        assert d1 is None or d1 != domain(t.topology_key, target_where), (
                            f"{owner.vm.id} beside {target.vm.id} on {owner_where.name}"
                        )
        # strict affinity: a selected VM in the same domain, or none anywhere and it selects itself
        pos = affinity.virtual_machine_and_pod_affinity if affinity else None
        for t in pos.required_during_scheduling_ignored_during_execution if pos else []:
            assert t.label_selector is not None
            wanted_labels = t.label_selector.match_labels
            beside = [
                o
                for oid, (o, ow) in placed.items()
                if oid != vm_id
                and selects(wanted_labels, o.vm)
                and domain(t.topology_key, ow) == domain(t.topology_key, where)
            ]
            assert beside or selects(wanted_labels, demand.vm)
    # capacity: what the schedule added to a host never exceeds it
    for fleet_host in hosts:
        on_it = [d for d, w in placed.values() if w.name == fleet_host.name and d.reserves]
        new = [d for d in on_it if d.vm.id not in current]
        if not new:
            continue
        if fleet_host.cpu_millicores is not None:
            assert sum(d.millicores for d in on_it) <= fleet_host.cpu_millicores
        if fleet_host.memory_bytes is not None:
            assert sum(d.memory_bytes for d in on_it) <= fleet_host.memory_bytes


@settings(max_examples=200, deadline=None)
@given(fleets())
def test_a_move_target_is_never_the_source_and_keeps_the_strict_rules(
    fleet: tuple[list[Demand], list[FleetHost], dict[ObjectId, str]],
) -> None:
    wanted, hosts, current = fleet
    result = schedule(wanted, hosts, current)
    for demand in wanted:
        home = result.homes[demand.vm.id]
        if not home.host:
            continue
        target = target_for(demand.vm.id, result)
        assert target.host != home.host
        if target.host:
            where = next(h for h in hosts if h.name == target.host)
            assert where.node.schedulable and fits(demand.vm, None, where.node)
        else:
            assert target.rule
