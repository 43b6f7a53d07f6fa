"""What a pass takes from every report of the fleet, kept by the reports that changed
(scan.Tally), is what the whole listing says: where each VM runs, the README's rows,
which reports are stale, which disks existed; whatever files are written, rewritten or
removed between passes, told to the index or not."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.api import ObjectId
from reconciler.reports import status_index
from reconciler.reports.reported import (
    _disk_record,
    _vm_report,
    reported_disks,
    reported_placements,
    vm_summary,
)
from reconciler.reports.scan import PerReport
from reconciler.reports.tree import stale_object_reports, stale_vm_reports

NAMES = ("a", "b", "c", "Upper")  # "Upper" is a file no report is ever written at
FOLDERS = ("default", "other")
NODES = ("hv", "hv2", "")
VOLUMES = ("vol-a", "vol-b", "")

VM_REPORT = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: {name}
  namespace: {namespace}
  creationTimestamp: "2026-01-0{day}T00:00:00Z"
status:
  phase: {phase}
{node}{migration}"""

DISK_REPORT = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: {name}
  namespace: {namespace}
status:
  protected: {protected}
{target}"""

# One change: (what, folder, name, node, migrating, volume, day).
change = st.tuples(
    st.sampled_from(("vm", "vm", "vm", "disk", "disk", "remove-vm", "remove-disk", "garbage")),
    st.sampled_from(FOLDERS),
    st.sampled_from(NAMES),
    st.sampled_from(NODES),
    st.booleans(),
    st.sampled_from(VOLUMES),
    st.integers(1, 3),
)


def apply(root: Path, what: str, folder: str, name: str, node: str, migrating: bool,
          volume: str, day: int) -> list[Path]:  # fmt: skip
    kind = "virtualdisks" if "disk" in what else "virtualmachines"
    path = root / kind / folder / f"{name}.yaml"
    if what.startswith("remove"):
        if path.exists():
            path.unlink()
            if not any(path.parent.iterdir()):
                path.parent.rmdir()
                return [path, path.parent]
        return [path]
    path.parent.mkdir(parents=True, exist_ok=True)
    if what == "garbage":
        text = "- not a report\n"
    elif what == "vm":
        text = VM_REPORT.format(
            name=name.lower(),
            namespace=folder,
            day=day,
            phase="Migrating" if migrating else "Running",
            node=f"  nodeName: {node}\n" if node else "",
            migration="  migrationState:\n    target:\n      node: hv2\n" if migrating else "",
        )
    else:
        target = f"  target:\n    persistentVolumeClaimName: {volume}\n" if volume else ""
        text = DISK_REPORT.format(
            name=name.lower(), namespace=folder, protected=str(migrating).lower(), target=target
        )
    path.write_text(text, encoding="utf-8")
    return [path]


def listed_placements(root: Path) -> tuple[dict[ObjectId, str], dict[ObjectId, str]]:
    nodes: dict[ObjectId, str] = {}
    migrations: dict[ObjectId, str] = {}
    for _name, report in PerReport(_vm_report).over(root / "virtualmachines"):
        if report.vm_id is None:
            continue
        if report.node:
            nodes[report.vm_id] = report.node
        if report.migration_target:
            migrations[report.vm_id] = report.migration_target
    return nodes, migrations


def listed_rows(root: Path) -> list[str]:
    rows = {}
    for _name, report in PerReport(_vm_report).over(root / "virtualmachines"):
        if report.vm_id is not None and report.readme_row is not None:
            rows[report.vm_id] = report.readme_row
    return [rows[vm_id] for vm_id in sorted(rows)]


def listed_stale_vms(
    root: Path, reported: set[ObjectId], desired: frozenset[ObjectId]
) -> list[str]:
    stale = []
    for name, report in PerReport(_vm_report).over(root / "virtualmachines"):
        vm_id = report.vm_id
        if vm_id is not None and vm_id in reported:
            continue
        if vm_id is None or vm_id not in desired or (report.node == "hv" and not report.migrating):
            stale.append(name)
    return stale


def listed_disks(root: Path) -> dict[str, object]:
    found = {}
    for _name, record in PerReport(_disk_record).over(root / "virtualdisks"):
        if record is not None:
            found[record.volume] = record
    return found


def listed_stale_disks(
    root: Path, reports: set[ObjectId], present: frozenset[ObjectId], retired: frozenset[ObjectId]
) -> list[str]:
    from reconciler.reports.documents import report_object_id

    kept = present - retired
    stale = []
    for name, reported in PerReport(
        lambda path: report_object_id(path, "VirtualDisk", namespaced=True)
    ).over(root / "virtualdisks"):
        if reported is not None and (reported in kept or reported in reports):
            continue
        stale.append(name)
    return stale


def ids(kind: str, picked: list[tuple[str, str]]) -> set[ObjectId]:
    return {ObjectId(kind, folder, name) for folder, name in picked}


pick = st.lists(st.tuples(st.sampled_from(FOLDERS), st.sampled_from(("a", "b", "c"))))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(change, st.booleans()), min_size=1, max_size=10),
    pick,
    pick,
    pick,
    pick,
)
def test_what_is_kept_of_the_reports_is_what_the_whole_listing_says(
    changes: list[tuple[tuple[str, str, str, str, bool, str, int], bool]],
    reported_picked: list[tuple[str, str]],
    gone_picked: list[tuple[str, str]],
    present_picked: list[tuple[str, str]],
    retired_picked: list[tuple[str, str]],
) -> None:
    reported = ids("VirtualMachine", reported_picked)
    every = [(folder, name) for folder in FOLDERS for name in ("a", "b", "c")]
    desired = frozenset(ids("VirtualMachine", every) - ids("VirtualMachine", gone_picked))
    present = frozenset(ids("VirtualDisk", present_picked))
    retired = frozenset(ids("VirtualDisk", retired_picked))
    disk_reports = {object_id: {} for object_id in ids("VirtualDisk", reported_picked)}
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "status"
        (root / "virtualmachines" / "default").mkdir(parents=True)
        with status_index.reading():
            vm_summary(root)  # kept from here on, as a daemon keeps it
        for one, told in changes:
            written = apply(root, *one)
            if told:  # as a writer or the publisher's Git operations tell the index
                status_index.changed(written)
                scope = status_index.reading(kept=[root])
            else:  # a change nobody told: the pass lists the tree
                scope = status_index.reading()
            with scope:
                placements = reported_placements(root)
                rows = vm_summary(root).readme_rows()
                stale = stale_vm_reports(root, "hv", reported, desired)
                disks = reported_disks(root)
                stale_disks = stale_object_reports(
                    root, "VirtualDisk", disk_reports, present, retired
                )
            assert placements == listed_placements(root)
            assert rows == listed_rows(root)
            assert stale == listed_stale_vms(root, reported, desired)
            assert disks == listed_disks(root)
            assert [name for name, _id in stale_disks] == listed_stale_disks(
                root, set(disk_reports), present, retired
            )


def test_the_same_reports_give_the_very_same_placements(tmp_path: Path) -> None:
    # given the placements of two reports, handed to a pass
    root = tmp_path / "status"
    apply(root, "vm", "default", "a", "hv", False, "", 1)
    apply(root, "vm", "default", "b", "hv2", False, "", 1)
    first = reported_placements(root)
    # when one report is rewritten without moving its VM, then one moves
    apply(root, "vm", "default", "a", "hv", False, "", 2)
    same = reported_placements(root)
    apply(root, "vm", "default", "b", "hv", False, "", 2)
    moved = reported_placements(root)
    # then the unchanged placements are the very same mapping (a plan made from it is
    # served again), and a move makes a new one, leaving the one handed out as it was
    assert same[0] is first[0]
    assert moved[0] is not first[0]
    assert first[0] == {
        ObjectId("VirtualMachine", "default", "a"): "hv",
        ObjectId("VirtualMachine", "default", "b"): "hv2",
    }
    assert moved[0][ObjectId("VirtualMachine", "default", "b")] == "hv"


def test_a_removed_namespace_folder_takes_its_reports_with_it(tmp_path: Path) -> None:
    root = tmp_path / "status"
    apply(root, "vm", "other", "a", "hv", False, "", 1)
    with status_index.reading():
        assert reported_placements(root)[0]
    shutil.rmtree(root / "virtualmachines" / "other")
    status_index.changed([root / "virtualmachines" / "other"])
    with status_index.reading(kept=[root]):
        assert reported_placements(root) == ({}, {})
        assert vm_summary(root).readme_rows() == []
    assert not os.path.exists(root / "virtualmachines" / "other")


def test_a_volume_two_disk_reports_name_is_the_last_ones_in_the_listing(tmp_path: Path) -> None:
    # given two disks' reports naming one volume, the later protected
    root = tmp_path / "status"
    apply(root, "disk", "default", "a", "", False, "vol-a", 1)
    apply(root, "disk", "other", "a", "", True, "vol-a", 1)
    assert reported_disks(root)["vol-a"].protected is True
    assert reported_disks(root) == listed_disks(root)
    # when the later one is removed, then the earlier one says what the volume is
    apply(root, "remove-disk", "other", "a", "", False, "", 1)
    assert reported_disks(root)["vol-a"].protected is False
    assert reported_disks(root) == listed_disks(root)
