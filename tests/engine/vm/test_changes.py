"""The change comparator and the change-application table (dvp-api.md §3.2-3.4)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.engine.plan import change_table_for
from reconciler.engine.vm.changes import ChangeTable, compare_specs
from reconciler.policies import ChangeAction, load_change_rules, load_topology_policy

TOPOLOGY = load_topology_policy()
DEFAULT = change_table_for(load_change_rules("default"), TOPOLOGY)
HOTPLUG = change_table_for(load_change_rules("hotplug"), TOPOLOGY)

BASE: dict[str, Any] = {
    "virtualMachineClassName": "generic",
    "runPolicy": "AlwaysOnUnlessStoppedManually",
    "disruptions": {"restartApprovalMode": "Manual"},
    "liveMigrationPolicy": "PreferSafe",
    "cpu": {"cores": 1, "coreFraction": "10%"},
    "memory": {"size": "1Gi"},
    "blockDeviceRefs": [
        {"kind": "VirtualDisk", "name": "root"},
        {"kind": "ClusterVirtualImage", "name": "iso"},
    ],
}


def _with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    spec.update(changes)
    return spec


def _listed(
    current: dict[str, Any], desired: dict[str, Any], table: ChangeTable = DEFAULT
) -> list[dict[str, Any]]:
    return [
        c.as_status()
        for c in compare_specs(current, desired, table)
        if c.action is ChangeAction.RESTART
    ]


def test_cores_change_is_listed_exactly_as_the_reference_shows() -> None:
    assert _listed(BASE, _with(cpu={"cores": 2, "coreFraction": "10%"})) == [
        {"currentValue": 1, "desiredValue": 2, "operation": "replace", "path": "cpu.cores"}
    ]


def test_cores_and_core_fraction_together_are_one_cpu_change() -> None:
    listed = _listed(BASE, _with(cpu={"cores": 2, "coreFraction": "50%"}))

    assert listed == [
        {
            "currentValue": {"cores": 1, "coreFraction": "10%"},
            "desiredValue": {"cores": 2, "coreFraction": "50%"},
            "operation": "replace",
            "path": "cpu",
        }
    ]


def test_immediate_fields_are_never_listed() -> None:
    desired = _with(
        runPolicy="Manual",
        disruptions={"restartApprovalMode": "Automatic"},
        liveMigrationPolicy="AlwaysSafe",
    )

    assert _listed(BASE, desired) == []
    paths = {c.path: c.action for c in compare_specs(BASE, desired, DEFAULT)}
    assert paths == {
        "runPolicy": ChangeAction.IMMEDIATE,
        "disruptions.restartApprovalMode": ChangeAction.IMMEDIATE,
    }


def test_ip_address_name_is_reported_under_the_platforms_path() -> None:
    listed = _listed(BASE, _with(virtualMachineIPAddressName="linux-vm-ip"))

    assert listed == [
        {"desiredValue": "linux-vm-ip", "operation": "add", "path": "virtualMachineIPAddress"}
    ]


def test_boot_order_change_is_a_restart_change_per_index() -> None:
    swapped = _with(blockDeviceRefs=list(reversed(BASE["blockDeviceRefs"])))

    assert [c["path"] for c in _listed(BASE, swapped)] == ["blockDeviceRefs.0", "blockDeviceRefs.1"]


def test_added_device_is_an_add_at_its_index() -> None:
    added = _with(blockDeviceRefs=[*BASE["blockDeviceRefs"], {"kind": "VirtualDisk", "name": "d"}])

    assert _listed(BASE, added) == [
        {
            "desiredValue": {"kind": "VirtualDisk", "name": "d"},
            "operation": "add",
            "path": "blockDeviceRefs.2",
        }
    ]


def test_removing_cloud_init_applies_at_once() -> None:
    current = _with(provisioning={"type": "UserData", "userData": "#cloud-config\n"})

    assert _listed(current, BASE) == []


def test_entries_are_sorted_by_path() -> None:
    desired = _with(cpu={"cores": 2, "coreFraction": "10%"}, memory={"size": "2Gi"})
    desired["virtualMachineClassName"] = "other"

    paths = [c["path"] for c in _listed(BASE, desired)]

    assert paths == sorted(paths) == ["cpu.cores", "memory.size", "virtualMachineClassName"]


def test_hotplug_profile_changes_cores_live_within_the_socket_band() -> None:
    within = _with(cpu={"cores": 16, "coreFraction": "10%"})
    across = _with(cpu={"cores": 18, "coreFraction": "10%"})

    assert _listed(BASE, within, HOTPLUG) == []
    assert [c["path"] for c in _listed(BASE, across, HOTPLUG)] == ["cpu.cores"]


def test_hotplug_profile_still_restarts_for_memory() -> None:
    assert [c["path"] for c in _listed(BASE, _with(memory={"size": "2Gi"}), HOTPLUG)] == [
        "memory.size"
    ]


specs = st.fixed_dictionaries(
    {
        "runPolicy": st.sampled_from(["AlwaysOn", "Manual", "AlwaysOff"]),
        "cpu": st.fixed_dictionaries(
            {"cores": st.integers(1, 64), "coreFraction": st.sampled_from(["10%", "100%"])}
        ),
        "memory": st.fixed_dictionaries({"size": st.sampled_from(["1Gi", "2Gi"])}),
        "blockDeviceRefs": st.lists(
            st.fixed_dictionaries(
                {"kind": st.just("VirtualDisk"), "name": st.sampled_from("abcd")}
            ),
            unique_by=lambda ref: ref["name"],
            max_size=4,
        ),
    }
)


@settings(max_examples=200, deadline=None)
@given(specs, specs)
def test_reverting_a_change_clears_the_list(
    current: dict[str, Any], desired: dict[str, Any]
) -> None:
    assert compare_specs(current, current, DEFAULT) == []
    changed = compare_specs(current, desired, DEFAULT)
    assert (changed == []) == (current == desired)
    paths = [c.path for c in changed]
    assert paths == sorted(paths)
