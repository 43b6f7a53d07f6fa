"""A VM's plan served from the last pass (vm/plan_memo.py) is the plan a full pass makes.

Random repositories and hosts are planned, changed at random (a manifest edited,
added or deleted, a domain started, stopped or redefined behind the daemon's back, a
volume gone, the host's capacity, a new revision), and every plan made with the memo
is compared with the plan made without it. Unchanged files keep their objects, as
the daemon's manifest cache keeps them (source/cache.py).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from ipaddress import ip_network

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.engine.network.addressing import AddressInputs
from reconciler.engine.plan import Observation, Plan, plan
from reconciler.engine.reconcile import with_addressing
from reconciler.engine.vm.plan_memo import PlanMemo
from reconciler.loader import LoadResult
from reconciler.model.actions import DefineDomain, EnsureDiskVolume
from reconciler.model.domain import PowerState, VolumeFacts
from reconciler.reports.pass_inputs import read_plan_context
from tests.engine.conftest import HOST, observed_as_defined, vm_yaml
from tests.engine.kept_texts import load_keeping
from tests.hosts import CLASS

# The module, not its function of the same name that reconciler.engine exports.
plan_module = sys.modules["reconciler.engine.plan"]
_NEIGHBOUR_STATE = {
    PowerState.RUNNING: PowerState.PAUSED,
    PowerState.PAUSED: PowerState.RUNNING,
    PowerState.SHUTOFF: PowerState.CRASHED,
    PowerState.CRASHED: PowerState.SHUTOFF,
}
RUN_POLICIES = ("AlwaysOn", "AlwaysOff", "Manual", "AlwaysOnUnlessStoppedManually")


@dataclass
class Repository:
    """Files by name; an unchanged file keeps its loaded objects, as the manifest cache."""

    texts: dict[str, str] = field(default_factory=dict)
    _loaded: dict[str, tuple[str, LoadResult]] = field(default_factory=dict)

    def load(self) -> LoadResult:
        result, self._loaded = load_keeping(self.texts, self._loaded)
        return result


@dataclass
class World:
    repository: Repository
    observation: Observation
    cpu_millicores: int
    revision: int = 1
    pool: tuple[str, ...] = ()

    def context(self):  # type: ignore[no-untyped-def]
        host = replace(HOST, cpu_capacity_millicores=self.cpu_millicores)
        addresses = (
            AddressInputs(
                tuple(ip_network(c) for c in self.pool), (), datetime(2026, 1, 1, tzinfo=UTC)
            )
            if self.pool
            else None
        )
        context = read_plan_context(
            self.repository.load(), host, revision=f"rev{self.revision}", addresses=addresses
        )
        # As reconcile_once does before its plans: the pass's address allocation.
        return with_addressing(context, self.observation)


NAMES = tuple(f"vm-{index}" for index in range(8))
# Every VM's disk, in one file that never changes: a VM added or deleted changes only its
# own manifest, as most pushes do, and the other VMs' plans may be served.
DISKS = "".join(textwrap.dedent(vm_yaml(name=name)).split("---")[1] + "---\n" for name in NAMES)


def vm_text(name: str, draw: st.DrawFn) -> str:
    return vm_manifest(
        vm_yaml(
            name=name,
            cores=draw(st.sampled_from((1, 2))),
            fraction=draw(st.sampled_from(("10%", "50%", "100%"))),
            memory=draw(st.sampled_from(("1Gi", "2Gi"))),
            run_policy=draw(st.sampled_from(RUN_POLICIES)),
            approval=draw(st.sampled_from(("Manual", "Automatic"))),
        )
    )


def vm_manifest(text: str) -> str:
    """The VirtualMachine of a conftest manifest, without its disk (in DISKS)."""
    return textwrap.dedent(text).split("---")[0]


@contextmanager
def memo_of_its_own() -> Iterator[PlanMemo]:
    """A plan made with an empty memo: the full plan."""
    kept = plan_module.PLANS
    plan_module.PLANS = PlanMemo()
    try:
        yield plan_module.PLANS
    finally:
        plan_module.PLANS = kept


def carried_out(world: World, first: Plan, draw: st.DrawFn) -> Observation:
    """The host once a plan's definitions and volumes exist, each domain running or not."""
    domains = dict(world.observation.domains)
    volumes = dict(world.observation.volumes)
    for action in first.actions:
        if isinstance(action, DefineDomain):
            state = draw(st.sampled_from((PowerState.RUNNING, PowerState.SHUTOFF)))
            domains[action.spec.name] = observed_as_defined(action.spec, state)
        if isinstance(action, EnsureDiskVolume):
            volumes[(action.pool, action.volume)] = VolumeFacts(
                action.pool, action.volume, action.capacity_bytes or 0, f"/p/{action.volume}"
            )
    return Observation(domains, volumes)


def change(world: World, draw: st.DrawFn, fresh: Plan) -> None:
    """One random change of the repository or of the host."""
    vms = sorted(name for name in world.repository.texts if name.startswith("vm-"))
    kind = draw(
        st.sampled_from(
            (
                "edit",
                "add",
                "delete",
                "power",
                "state",
                "redefine",
                "volume",
                "capacity",
                "revision",
            )
        )
    )
    texts = world.repository.texts
    domains = dict(world.observation.domains)
    if kind == "edit" and vms:
        name = draw(st.sampled_from(vms))
        texts[name] = vm_text(name.removesuffix(".yaml"), draw)
    elif kind == "add" or not vms:
        name = draw(st.sampled_from(NAMES))
        texts[f"{name}.yaml"] = vm_text(name, draw)
    elif kind == "delete":
        del texts[draw(st.sampled_from(vms))]
    elif kind == "power" and domains:
        name = draw(st.sampled_from(sorted(domains)))
        was = domains[name]
        state = PowerState.SHUTOFF if was.state.active else PowerState.RUNNING
        config = next(
            (a.spec for a in fresh.actions if isinstance(a, DefineDomain) and a.spec.name == name),
            None,
        )
        domains[name] = replace(was, state=state, live=was.config if state.active else None)
        if config is not None and state.active:
            domains[name] = observed_as_defined(config, state)
    elif kind == "state" and domains:
        # Paused, crashed and back: states that hold the same share of the host's CPU.
        name = draw(st.sampled_from(sorted(domains)))
        was = domains[name]
        state = _NEIGHBOUR_STATE[was.state]
        domains[name] = replace(was, state=state, reason=draw(st.sampled_from(("user", "booted"))))
    elif kind == "redefine":
        defined = [a.spec for a in fresh.actions if isinstance(a, DefineDomain)]
        if defined:
            spec = draw(st.sampled_from(defined))
            state = draw(st.sampled_from((PowerState.RUNNING, PowerState.SHUTOFF)))
            domains[spec.name] = observed_as_defined(spec, state)
    elif kind == "volume" and world.observation.volumes:
        volumes = dict(world.observation.volumes)
        del volumes[draw(st.sampled_from(sorted(volumes)))]
        world.observation = replace(world.observation, volumes=volumes)
    elif kind == "capacity":
        world.cpu_millicores = draw(st.sampled_from((600, 1500, 8000)))
    else:
        world.revision += 1
    world.observation = replace(world.observation, domains=domains)


@st.composite
def worlds_and_changes(draw: st.DrawFn) -> tuple[World, list[int]]:
    count = draw(st.integers(1, 5))
    texts = {"class.yaml": textwrap.dedent(CLASS), "disks.yaml": DISKS}
    for name in NAMES[:count]:
        texts[f"{name}.yaml"] = vm_text(name, draw)
    pool = draw(st.sampled_from(((), ("10.0.0.0/30",))))
    world = World(
        Repository(texts), Observation({}, {}), draw(st.sampled_from((1500, 8000))), pool=pool
    )
    return world, draw(st.lists(st.integers(0, 3), min_size=1, max_size=6))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_plan_with_the_memo_is_the_plan_without_it(data: st.DataObject) -> None:
    world, steps = data.draw(worlds_and_changes())
    with memo_of_its_own():
        first = plan(world.context(), world.observation)
        world.observation = carried_out(world, first, data.draw)
        for _ in steps:
            context = world.context()
            with_memo = plan(context, world.observation)
            with memo_of_its_own():
                full = plan(context, world.observation)
            assert with_memo == full
            # The pass again on the same host and revision: served from the memo.
            assert plan(world.context(), world.observation) == full
            change(world, data.draw, full)


def test_a_change_to_one_vm_plans_only_that_vm_again() -> None:
    texts = {"class.yaml": textwrap.dedent(CLASS), "disks.yaml": DISKS}
    for name in NAMES[:4]:
        texts[f"{name}.yaml"] = vm_manifest(vm_yaml(name=name))
    world = World(Repository(texts), Observation({}, {}), 8000)
    with memo_of_its_own() as memo:
        first = plan(world.context(), world.observation)
        world.observation = carried_out_running(first)
        plan(world.context(), world.observation)
        assert len(memo) == 4  # every VM settled, every plan kept
        texts["vm-2.yaml"] = vm_manifest(vm_yaml(name="vm-2", memory="2Gi"))
        world.revision += 1
        served_before = memo.served
        changed = plan(world.context(), world.observation)
        assert memo.served - served_before == 3
        vm2 = next(p for p in changed.vms if p.object_id.name == "vm-2")
        assert vm2.actions  # its memory change is planned, not served from the memo


def carried_out_running(first: Plan) -> Observation:
    domains, volumes = {}, {}
    for action in first.actions:
        if isinstance(action, DefineDomain):
            domains[action.spec.name] = observed_as_defined(action.spec, PowerState.RUNNING)
        if isinstance(action, EnsureDiskVolume):
            volumes[(action.pool, action.volume)] = VolumeFacts(
                action.pool, action.volume, action.capacity_bytes or 0, f"/p/{action.volume}"
            )
    return Observation(domains, volumes)


@pytest.fixture(autouse=True)
def _no_memo_left_over() -> Iterator[None]:
    yield
    plan_module.PLANS.clear()
