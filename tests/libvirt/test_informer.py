"""The daemon's event-fed observation (libvirt/informer.py) on libvirt's test driver.

A pass after a push reads again only the domains an event named or an action of
ours touched; what changed without an event is found at the next whole reading (the
interval's pass, a lost event connection, or after `full_every_s`).
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from reconciler.api import ObjectId
from reconciler.libvirt.connection import open_connection
from reconciler.libvirt.events import LifecycleWatch
from reconciler.libvirt.informer import InformedObserver
from reconciler.libvirt.observe import Observer
from reconciler.model.domain import PowerState
from tests.daemonlab import wait_until
from tests.hosts import CLASS, Host, NamespaceObserver, vm_yaml


def _three_running(host: Host) -> None:
    for name in ("a", "b", "c"):
        host.write(f"{name}.yaml", vm_yaml(name=name))
    host.reconcile()


def test_a_pass_reads_again_only_the_domains_an_event_named(host: Host) -> None:
    _three_running(host)
    informer = InformedObserver(Observer(host.connection))
    assert set(informer.observe()) == {"a.default", "b.default", "c.default"}
    assert informer.last_reading == "full"
    # given two guests stopped behind our back, only one of them announced
    host.domain("b.default").destroy()
    host.domain("c.default").destroy()
    informer.changed("b.default")
    # when the next pass observes
    seen = informer.observe()
    # then the announced one is read again, the other one is as last read
    assert informer.last_reading == "1 read again"
    assert seen["b.default"].state is PowerState.SHUTOFF
    assert seen["c.default"].state is PowerState.RUNNING
    assert seen["a.default"].state is PowerState.RUNNING
    # and a whole reading (the interval's pass) finds what no event said
    informer.resync()
    seen = informer.observe()
    assert informer.last_reading == "full"
    assert seen["c.default"].state is PowerState.SHUTOFF


def test_events_are_trusted_for_a_limited_time_then_the_host_is_read_again(host: Host) -> None:
    _three_running(host)
    now = [1000.0]
    informer = InformedObserver(Observer(host.connection), full_every_s=300, clock=lambda: now[0])
    informer.observe()
    host.domain("a.default").destroy()
    now[0] += 299
    assert informer.observe()["a.default"].state is PowerState.RUNNING
    now[0] += 2
    assert informer.observe()["a.default"].state is PowerState.SHUTOFF
    assert informer.last_reading == "full"


def test_a_domain_undefined_with_an_event_leaves_the_observation(host: Host) -> None:
    _three_running(host)
    informer = InformedObserver(Observer(host.connection))
    informer.observe()
    domain = host.domain("a.default")
    domain.destroy()
    domain.undefine()
    informer.changed("a.default")
    assert set(informer.observe()) == {"b.default", "c.default"}


def test_what_a_pass_did_is_read_again_without_any_event(host: Host) -> None:
    # The private test driver sends this process no events: only the actions tell.
    informer = InformedObserver(Observer(host.connection))
    host.write("a.yaml", vm_yaml(name="a"))
    first, _ = host.reconcile(informer=informer)
    assert first.statuses_plan.statuses[_vm("a")].phase.value == "Running"
    # when a manifest asks for the guest to stop
    host.write("a.yaml", vm_yaml(name="a", run_policy="AlwaysOff"))
    stopped, mutations = host.reconcile(informer=informer)
    assert mutations > 0
    assert stopped.statuses_plan.statuses[_vm("a")].phase.value == "Stopped"
    # then the next pass, trusting the observation, has nothing left to do
    again, mutations = host.reconcile(informer=informer)
    assert mutations == 0
    assert not again.plan.has_changes
    assert informer.last_reading == "0 read again"
    assert host.domain("a.default").state()[0] == libvirt.VIR_DOMAIN_SHUTOFF


# --------------------------------------------------------- libvirt's own events

NAMESPACE = "informer-events"


@pytest.fixture
def shared_host(tmp_path: Path) -> Iterator[Host]:
    """A host on `test:///default`, whose connections in this process share one driver
    and see each other's events. Its VMs are in a namespace of their own, removed after."""
    connection = open_connection("test:///default")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
    host = Host(repo, connection, namespaces=(NAMESPACE,))
    try:
        yield host
    finally:
        for domain in connection.listAllDomains(0):
            if domain.name().endswith(f".{NAMESPACE}"):
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
        pool = connection.storagePoolLookupByName("default-pool")
        for volume in pool.listAllVolumes(0):
            if NAMESPACE in volume.name():
                volume.delete(0)
        connection.close()


def test_libvirts_events_name_the_domains_a_pass_reads_again(shared_host: Host) -> None:
    shared_host.write("a.yaml", vm_yaml(name="a", namespace=NAMESPACE))
    shared_host.write("b.yaml", vm_yaml(name="b", namespace=NAMESPACE))
    shared_host.reconcile()
    informer = InformedObserver(NamespaceObserver(shared_host.connection, (NAMESPACE,)))
    informer.observe()
    connected = threading.Event()
    watch = LifecycleWatch(
        "test:///default",
        lambda _name, _event: None,
        lambda up, _why: connected.set() if up else None,
        on_changed=informer.changed,
    )
    watch.start()
    try:
        assert connected.wait(10)
        # when another client stops a guest
        other = open_connection("test:///default")
        try:
            other.lookupByName(f"a.{NAMESPACE}").destroy()
        finally:
            other.close()

        # then libvirt's event makes the next observation read that guest, and only it
        def stopped() -> bool:
            seen = informer.observe()
            return seen[f"a.{NAMESPACE}"].state is PowerState.SHUTOFF

        wait_until("the stop seen through libvirt's event", stopped, 10, 0.05)
        assert informer.observe()[f"b.{NAMESPACE}"].state is PowerState.RUNNING
    finally:
        watch.stop()


def _vm(name: str) -> ObjectId:
    return ObjectId("VirtualMachine", "default", name)
