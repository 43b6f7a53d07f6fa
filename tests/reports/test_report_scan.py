"""A fleet's reports read once per change (reports/scan.py): every pass sees each file as
it is now, but a file that did not change is not read again."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.api import ObjectId
from reconciler.reports.reported import reported_nodes
from reconciler.reports.scan import PerReport

REPORT = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: {name}
  namespace: default
status:
  phase: Running
  nodeName: {node}
"""


def write(root: Path, name: str, node: str) -> Path:
    path = root / "virtualmachines" / "default" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(REPORT.format(name=name, node=node), encoding="utf-8")
    return path


def vm(name: str) -> ObjectId:
    return ObjectId("VirtualMachine", "default", name)


def test_only_the_files_that_changed_are_read_again(tmp_path: Path) -> None:
    # given three reports, all read once
    for name in ("a", "b", "c"):
        write(tmp_path, name, "hv1")
    read: list[str] = []

    def node_of(path: Path) -> str:
        read.append(path.stem)
        return path.read_text(encoding="utf-8").rsplit("nodeName: ", 1)[1].strip()

    nodes = PerReport(node_of)
    nodes.over(tmp_path / "virtualmachines")
    read.clear()
    # when one of them is rewritten in place (same inode), and one is deleted
    changed = write(tmp_path, "b", "hv2")
    (tmp_path / "virtualmachines" / "default" / "c.yaml").unlink()
    found = nodes.over(tmp_path / "virtualmachines")
    # then only that one is read, and the listing is the folder as it is now
    assert read == ["b"]
    assert found == [
        (str(tmp_path / "virtualmachines/default/a.yaml"), "hv1"),
        (str(changed), "hv2"),
    ]


def test_a_report_rewritten_between_passes_moves_its_vm(tmp_path: Path) -> None:
    write(tmp_path, "a", "hv1")
    write(tmp_path, "b", "hv1")
    assert reported_nodes(tmp_path) == {vm("a"): "hv1", vm("b"): "hv1"}

    write(tmp_path, "b", "hv2")

    assert reported_nodes(tmp_path) == {vm("a"): "hv1", vm("b"): "hv2"}


def test_a_namespace_folder_swapped_for_a_symlink_is_not_read_through(tmp_path: Path) -> None:
    # given a report read once from its namespace folder
    root = tmp_path / "status"
    write(root, "a", "hv1")
    assert reported_nodes(root) == {vm("a"): "hv1"}
    # when the folder is replaced by a symlink to a folder holding the same file
    elsewhere = tmp_path / "elsewhere"
    (root / "virtualmachines" / "default").rename(elsewhere)
    os.symlink(elsewhere, root / "virtualmachines" / "default")
    # then the report is not used any more, though the file itself did not change
    assert reported_nodes(root) == {}
