"""What a pass makes from the last pass's values (engine/from_last.py, the fleet's
assignment, the device index, the plan memo's world) equals what a full computation
makes.

Random fleets (Nodes, classes, VMs with their disks, attachments, other hosts'
reports, this host's domains) are changed at random: a manifest edited, a file read
again with the same objects, one added or deleted, a class, a Node or a disk edited,
a report or a domain moved. After each change, every value is compared with the one
made with nothing kept, and so is the whole plan. Unchanged files keep their objects,
as the daemon's manifest cache keeps them (source/cache.py).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.api import ObjectId
from reconciler.engine import from_last
from reconciler.engine.devices import device_index as device_index_module
from reconciler.engine.fleet import assignment as assignment_module
from reconciler.engine.plan import Observation, Plan, plan
from reconciler.engine.reconcile import EarlierReports, plan_context
from reconciler.engine.vm import plan_memo
from reconciler.engine.vm.plan_memo import PlanMemo
from reconciler.loader import LoadResult
from reconciler.policies import load_change_rules, load_topology_policy
from reconciler.rules import check
from reconciler.rules import inventory as inventory_module
from reconciler.rules.inventory import Inventory
from tests.engine.conftest import HOST
from tests.engine.kept_texts import load_keeping
from tests.hosts import CLASS, vm_yaml

plan_module = sys.modules["reconciler.engine.plan"]
NODES = ("hv1", "a", "b")
VMS = tuple(f"vm-{n}" for n in range(6))
TOPOLOGY = load_topology_policy(None)
CHANGE_RULES = load_change_rules(HOST.change_profile, None)
NODE = """\
---
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {name}
  labels:
    group: {group}
spec:
  capacity:
    cpu: {cpu}
    memory: 64Gi
"""
ATTACHMENT = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineBlockDeviceAttachment
metadata:
  name: attach
  namespace: default
spec:
  virtualMachineName: {vm}
  blockDeviceRef:
    kind: VirtualDisk
    name: {disk}
"""
SPARE_DISK = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: spare
  namespace: default
spec:
  persistentVolumeClaim:
    size: {size}
"""


@dataclass
class Fleet:
    """Files by name (an unchanged file keeps its loaded objects), where the other
    hosts' reports put each VM, and the domains this host has."""

    texts: dict[str, str]
    reported: dict[str, str]
    domains: set[str]
    _loaded: dict[str, tuple[str, LoadResult]] = field(default_factory=dict)
    touched: int = 0

    def load(self) -> LoadResult:
        result, self._loaded = load_keeping(self.texts, self._loaded)
        return result

    def earlier(self) -> EarlierReports:
        return EarlierReports(
            nodes={ObjectId("VirtualMachine", "default", vm): n for vm, n in self.reported.items()}
        )


@st.composite
def vm_text(draw: st.DrawFn, name: str) -> str:
    cores = draw(st.sampled_from((1, 2, 3)))
    text = vm_yaml(name=name, cores=cores, run_policy=draw(st.sampled_from(("AlwaysOn", "Manual"))))
    group = draw(st.sampled_from((*NODES, None)))
    if group is not None:
        text = text.replace("spec:\n", f"spec:\n  nodeSelector:\n    group: {group}\n", 1)
    if draw(st.booleans()):
        # Another VM's root disk too: a claim, and devices that differ from the last.
        other = draw(st.sampled_from(VMS))
        text = text.replace(
            f"      name: {name}-root\n",
            f"      name: {name}-root\n    - kind: VirtualDisk\n      name: {other}-root\n",
            1,
        )
    return text


def nodes_text(draw: st.DrawFn) -> str:
    """Nodes hv1 (this host), b, and maybe a: with a, this host is not the fleet's first
    (the first reports what no host runs)."""
    cpu = draw(st.sampled_from((1, 2, 100)))
    names = [n for n in NODES if n != "a" or draw(st.booleans())]
    return "".join(NODE.format(name=n, group=n, cpu=cpu if n == "b" else 100) for n in names)


def change(fleet: Fleet, draw: st.DrawFn) -> None:
    texts = fleet.texts
    files = sorted(name for name in texts if name.startswith("vm-"))
    kind = draw(
        st.sampled_from(
            ("edit", "edit", "touch", "add", "delete", "class", "nodes", "disk", "report", "domain")
        )
    )
    if kind in ("edit", "touch", "delete") and not files:
        kind = "add"
    if kind == "edit":
        name = draw(st.sampled_from(files))
        texts[name] = draw(vm_text(name.removesuffix(".yaml")))
    elif kind == "touch":
        # The same objects read again: a comment changes the file, not its manifests.
        name = draw(st.sampled_from(files))
        fleet.touched += 1
        texts[name] = f"# {fleet.touched}\n" + texts[name].lstrip("#0123456789 \n")
    elif kind == "add":
        name = draw(st.sampled_from(VMS))
        texts[f"{name}.yaml"] = draw(vm_text(name))
    elif kind == "delete":
        del texts[draw(st.sampled_from(files))]
    elif kind == "class":
        texts["class.yaml"] = CLASS.replace("max: 4}", f"max: {draw(st.sampled_from((2, 4)))}}}")
    elif kind == "nodes":
        texts["nodes.yaml"] = nodes_text(draw)
    elif kind == "disk":
        size = draw(st.sampled_from(("1Gi", "2Gi")))
        texts["spare.yaml"] = SPARE_DISK.format(size=size)
        vm = draw(st.sampled_from(VMS))
        disk = draw(st.sampled_from(("spare", f"{vm}-root")))
        texts["attach.yaml"] = ATTACHMENT.format(vm=vm, disk=disk)
    elif kind == "report":
        vm = draw(st.sampled_from(VMS))
        node = draw(st.sampled_from((*NODES, "gone", None)))
        if node is None:
            fleet.reported.pop(vm, None)
        else:
            fleet.reported[vm] = node
    else:
        fleet.domains ^= {f"{draw(st.sampled_from(VMS))}.default"}


@contextmanager
def nothing_kept() -> Iterator[None]:
    """Every value of the pass made whole; what was kept is back afterwards."""
    kept = [(value, value._last) for value in from_last.KEPT]
    last_assignment = list(assignment_module._LAST)
    indexes = device_index_module._INDEXES
    made = list(inventory_module._LAST_MADE)
    plans = plan_module.PLANS
    for value, _last in kept:
        value.clear()
    assignment_module._LAST.clear()
    device_index_module._INDEXES = weakref.WeakKeyDictionary()
    inventory_module._LAST_MADE.clear()
    plan_module.PLANS = PlanMemo()
    try:
        yield
    finally:
        for value, last in kept:
            value._last = last
        assignment_module._LAST[:] = last_assignment
        device_index_module._INDEXES = indexes
        inventory_module._LAST_MADE[:] = made
        plan_module.PLANS = plans


def context_of(fleet: Fleet, result: LoadResult):  # type: ignore[no-untyped-def]
    return plan_context(
        result,
        HOST,
        "rev",
        findings=check(result),
        topology=TOPOLOGY,
        change_rules=CHANGE_RULES,
        earlier=fleet.earlier(),
    )


def values(fleet: Fleet, result: LoadResult) -> tuple[object, ...]:
    """Every value the pass may make from the last one, and the plan."""
    context = context_of(fleet, result)
    inventory = context.inventory
    vms = from_last.sorted_vms(inventory)
    made = assignment_module.assign(
        vms,
        inventory,
        context.members,
        local=HOST.node_name,
        domains=fleet.domains,
        reported_nodes=context.reported_nodes,
    )
    schedule = made.fleet_schedule
    assert schedule is not None
    return (
        [id(vm) for vm in vms],
        vms,
        from_last.desired_names(inventory, context.broken),
        device_index_module.device_index(inventory, context.broken),
        plan_memo._OTHERS(inventory),
        [(id(vm), vm, placement) for vm, placement in made.here],
        made.elsewhere,
        dict(schedule.homes),
        dict(schedule.demands),
        schedule.hosts,
        [schedule.rules_broken(vm.id) for vm in vms],
        plan_of(context, fleet),
    )


def plan_of(context, fleet: Fleet) -> Plan:  # type: ignore[no-untyped-def]
    return plan(context, Observation({}, {}))


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    texts = {"class.yaml": CLASS, "nodes.yaml": nodes_text(draw)}
    if draw(st.booleans()):
        texts["spare.yaml"] = SPARE_DISK.format(size="1Gi")
    for name in draw(st.lists(st.sampled_from(VMS), min_size=1, max_size=5, unique=True)):
        texts[f"{name}.yaml"] = draw(vm_text(name))
    reported = {
        vm: draw(st.sampled_from((*NODES, "gone")))
        for vm in draw(st.lists(st.sampled_from(VMS), unique=True))
    }
    return Fleet(texts, reported, {f"{vm}.default" for vm in draw(st.sets(st.sampled_from(VMS)))})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet=fleets(), data=st.data())
def test_values_made_from_the_last_pass_are_the_full_ones(
    fleet: Fleet, data: st.DataObject
) -> None:
    for _ in range(data.draw(st.integers(1, 8))):
        result = fleet.load()
        kept = values(fleet, result)
        with nothing_kept():
            assert kept == values(fleet, result)
        change(fleet, data.draw)


def test_an_edited_vm_makes_the_values_from_the_last_ones() -> None:
    texts = {"class.yaml": CLASS, "nodes.yaml": NODE.format(name="hv1", group="hv1", cpu=100)}
    for name in VMS:
        texts[f"{name}.yaml"] = vm_yaml(name=name)
    fleet = Fleet(texts, {vm: "hv1" for vm in VMS}, set())
    first = values(fleet, fleet.load())
    updated = [value.updated for value in from_last.KEPT]
    last_homes = assignment_module._LAST[0].assignment.fleet_schedule.homes  # type: ignore[union-attr]
    texts["vm-2.yaml"] = vm_yaml(name="vm-2", cores=2)
    result = fleet.load()
    again = values(fleet, result)
    assert all(value.updated > was for value, was in zip(from_last.KEPT, updated, strict=True))
    assert assignment_module._LAST[0].assignment.fleet_schedule.homes is last_homes  # type: ignore[union-attr]
    assert first[1] != again[1]  # vm-2's cores
    with nothing_kept():
        assert again == values(fleet, result)


def test_an_inventory_knows_what_replaced_what() -> None:
    texts = {f"{name}.yaml": vm_yaml(name=name) for name in VMS[:3]}
    fleet = Fleet(texts, {}, set())
    before = Inventory(fleet.load())
    texts["vm-1.yaml"] = vm_yaml(name="vm-1", cores=2)
    after = Inventory(fleet.load())
    replaced = after.replaced_since(before)
    assert replaced is not None
    # The VM and its disk (the file was read again), nothing else.
    assert [(old.id.name, new.id.name) for old, new in replaced] == [
        ("vm-1", "vm-1"),
        ("vm-1-root", "vm-1-root"),
    ]
    del texts["vm-2.yaml"]
    assert Inventory(fleet.load()).replaced_since(after) is None
