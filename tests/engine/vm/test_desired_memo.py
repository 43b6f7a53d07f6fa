"""The desired-domain memo: the same objects are built once, a changed input never hits."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from reconciler.api import ObjectId
from reconciler.engine.plan import Observation, plan
from reconciler.engine.vm import desired
from reconciler.loader import LoadResult, load_text
from reconciler.model.actions import DefineDomain, EnsureDiskVolume
from tests.engine.conftest import CLASS, context_for, empty, observed_as_defined, vm_yaml

LINUX_VM = ObjectId("VirtualMachine", "default", "linux-vm")


def _load(text: str, path: str) -> LoadResult:
    return load_text(textwrap.dedent(text), path)


def _merge(*parts: LoadResult) -> LoadResult:
    merged = LoadResult()
    for part in parts:
        merged.extend(part)
    return merged


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the VMs whose domain was really built (not served from the memo)."""
    built: list[str] = []
    original = desired._build_domain

    def counted(vm, *args):  # type: ignore[no-untyped-def]
        built.append(vm.name)
        return original(vm, *args)

    monkeypatch.setattr(desired, "_build_domain", counted)
    desired._MEMO.clear()
    return built


def test_unchanged_objects_are_built_once_across_passes(builds: list[str]) -> None:
    result = _merge(_load(CLASS, "class.yaml"), _load(vm_yaml(), "vm.yaml"))

    first = plan(context_for(result), empty())
    second = plan(context_for(result), empty())

    assert builds == ["linux-vm"]
    assert first.actions == second.actions


def test_vm_edited_in_place_is_planned_from_its_new_manifest(builds: list[str]) -> None:
    vmclass = _load(CLASS, "class.yaml")
    before = plan(context_for(_merge(vmclass, _load(vm_yaml(cores=1), "vm.yaml"))), empty())
    spec = next(a.spec for a in before.actions if isinstance(a, DefineDomain))
    running = {spec.name: observed_as_defined(spec)}

    # The same file, edited: loaded again, every other object is the very same.
    edited = _merge(vmclass, _load(vm_yaml(cores=2), "vm.yaml"))
    after = plan(context_for(edited), Observation(running, {}))

    assert builds == ["linux-vm", "linux-vm"]
    redefined = next(a.spec for a in after.actions if isinstance(a, DefineDomain))
    assert redefined.vcpus == 2
    assert after.statuses[LINUX_VM].restart_awaiting_changes == [
        {"currentValue": 1, "desiredValue": 2, "operation": "replace", "path": "cpu.cores"}
    ]


def test_a_resized_disk_is_planned_at_its_new_size(builds: list[str]) -> None:
    vmclass = _load(CLASS, "class.yaml")
    vm_only, disk_only = LoadResult(), LoadResult()
    for loaded in _load(vm_yaml(), "vm.yaml").objects:
        (vm_only if loaded.id.kind == "VirtualMachine" else disk_only).objects.append(loaded)
    bigger = _load(
        """
        apiVersion: virtualization.deckhouse.io/v1alpha2
        kind: VirtualDisk
        metadata:
          name: linux-vm-root
        spec:
          persistentVolumeClaim:
            size: 20Gi
        """,
        "disk.yaml",
    )

    plan(context_for(_merge(vmclass, vm_only, disk_only)), empty())
    after = plan(context_for(_merge(vmclass, vm_only, bigger)), empty())

    # The domain refers to the disk by its volume, whatever its size: built once.
    assert builds == ["linux-vm"]
    volume = next(a for a in after.actions if isinstance(a, EnsureDiskVolume))
    assert volume.capacity_bytes == 20 * 2**30


def test_a_new_revision_of_the_same_objects_is_only_restamped(builds: list[str]) -> None:
    result = _merge(_load(CLASS, "class.yaml"), _load(vm_yaml(), "vm.yaml"))
    first = plan(context_for(result), empty())

    later = plan(replace(context_for(result), revision="rev2"), empty())

    assert builds == ["linux-vm"]
    before = next(a.spec for a in first.actions if isinstance(a, DefineDomain))
    spec = next(a.spec for a in later.actions if isinstance(a, DefineDomain))
    assert spec.metadata.revision == "rev2"
    assert replace(spec, metadata=replace(spec.metadata, revision="")) == replace(
        before, metadata=replace(before.metadata, revision="")
    )


def test_the_memo_is_bounded_and_forgets_the_oldest_first(builds: list[str]) -> None:
    vms = [_load(vm_yaml(name=f"vm-{i}"), f"vm-{i}.yaml") for i in range(3)]
    result = _merge(_load(CLASS, "class.yaml"), *vms)
    limit = desired._MEMO._limit
    desired._MEMO._limit = 2
    try:
        plan(context_for(result), empty())
        plan(context_for(result), empty())
    finally:
        desired._MEMO._limit = limit

    # Built in order vm-0, vm-1, vm-2: each pass evicts the one the next needs.
    assert builds == ["vm-0", "vm-1", "vm-2"] * 2
