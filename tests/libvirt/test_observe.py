"""The observer on the test driver, and the host a pass reports after acting."""

from __future__ import annotations

from dataclasses import replace

from reconciler.api import ObjectId
from reconciler.engine.plan import plan
from reconciler.engine.reconcile import observe
from reconciler.libvirt import apply as apply_module
from reconciler.libvirt.observe import Observer
from reconciler.libvirt.render import render_domain
from reconciler.model.domain import PowerState
from tests.hosts import Host, vm_yaml


def _id(name: str) -> ObjectId:
    return ObjectId("VirtualMachine", "default", name)


def test_observer_reads_state_reason_and_persistence_of_every_owned_domain(host: Host) -> None:
    host.write("a.yaml", vm_yaml(name="a"))
    host.write("b.yaml", vm_yaml(name="b"))
    host.reconcile()
    host.domain("b.default").destroy()

    seen = Observer(host.connection).observe()

    assert set(seen) == {"a.default", "b.default"}  # `test` is not ours
    assert (seen["a.default"].state, seen["a.default"].reason) == (PowerState.RUNNING, "booted")
    assert (seen["b.default"].state, seen["b.default"].reason) == (
        PowerState.SHUTOFF,
        "destroyed",
    )
    assert seen["a.default"].live is not None and seen["b.default"].live is None
    assert seen["a.default"].persistent and seen["b.default"].persistent


def test_observer_tells_a_transient_domain(host: Host) -> None:
    host.write("vm.yaml", vm_yaml())
    host.reconcile()
    domain = host.domain()
    domain.undefine()  # still running, now transient
    assert domain.isActive() and not domain.isPersistent()

    seen = Observer(host.connection).observe()

    assert not seen["linux-vm.default"].persistent


def test_refresh_reads_named_domains_again(host: Host) -> None:
    host.write("a.yaml", vm_yaml(name="a"))
    host.write("b.yaml", vm_yaml(name="b"))
    host.reconcile()
    observer = Observer(host.connection)
    before = observer.observe()
    host.domain("a.default").destroy()
    host.domain("b.default").destroy()
    host.domain("b.default").undefine()

    again = observer.refresh(["a.default", "b.default", "test", "missing.default"])

    assert again["a.default"] is not None and again["a.default"].state is PowerState.SHUTOFF
    assert again["a.default"].config == before["a.default"].config
    assert again["b.default"] is None  # gone
    assert again["test"] is None  # not ours
    assert again["missing.default"] is None


def test_statuses_after_a_pass_match_a_full_read_of_the_host(host: Host, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in ("a", "b", "c", "d", "e"):
        host.write(f"{name}.yaml", vm_yaml(name=name))
    host.capacity_cpus = 4
    host.write("c.yaml", vm_yaml(name="c", cores=2, fraction="100%"))
    host.write("e.yaml", vm_yaml(name="e", cores=2, fraction="100%"))
    first, _ = host.reconcile()
    assert first.statuses_plan.statuses[_id("e")].phase == "Pending"  # no room yet
    host.write("b.yaml", vm_yaml(name="b", cores=2))  # restart-only: waits
    host.write("c.yaml", vm_yaml(name="c", cores=2, fraction="100%", run_policy="AlwaysOff"))
    refreshed: list[list[str]] = []
    original = Observer.refresh

    def spied(self, names):  # type: ignore[no-untyped-def]
        refreshed.append(list(names))
        return original(self, names)

    monkeypatch.setattr(Observer, "refresh", spied)

    result, _ = host.reconcile()

    assert refreshed == [["b.default", "c.default"]]  # only what the pass touched
    full = plan(
        replace(result.context, anticipate=False),
        observe(Observer(host.connection), result.context.host),
    )
    assert result.final is not None
    assert result.final.statuses == full.statuses
    # c stopped, so e now fits: the statuses say so without e being read again.
    assert "InsufficientResources" not in {
        c.reason for c in result.final.statuses[_id("e")].conditions
    }
    assert [(v.object_id, v.actions) for v in result.final.vms] == [
        (v.object_id, v.actions) for v in full.vms
    ]


def test_a_pass_with_nothing_to_do_renders_no_domain(host: Host, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    host.write("vm.yaml", vm_yaml())
    host.reconcile()
    rendered: list[str] = []

    def counted(spec):  # type: ignore[no-untyped-def]
        rendered.append(spec.name)
        return render_domain(spec)

    monkeypatch.setattr(apply_module, "render_domain", counted)
    _, mutations = host.reconcile()

    assert mutations == 0
    assert rendered == []


def test_observer_reads_each_volume_of_a_file_pool_with_its_path_and_size(host: Host) -> None:
    pool = host.connection.storagePoolLookupByName(host.storage_pool)
    made = pool.createXML(
        "<volume><name>data.qcow2</name><capacity>4096</capacity>"
        "<target><format type='qcow2'/></target></volume>",
        0,
    )

    seen = Observer(host.connection).volumes(host.storage_pool)

    assert seen["data.qcow2"].path == made.path()
    assert seen["data.qcow2"].capacity_bytes == 4096
    assert set(seen) == {volume.name() for volume in pool.listAllVolumes(0)}
