"""Symlinks a pull request commits under status/ (issue 12, row 5): a report reached
through one is treated as absent and never read; writing a report replaces the link
instead of writing through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.api import ObjectId
from reconciler.reports.documents import read_text, write_if_changed
from reconciler.reports.publish import StatusPublisher
from reconciler.reports.reported import reported_disks, reported_nodes
from reconciler.reports.tree import write_host_reports
from tests.gitrepos import Remote, git
from tests.reports.conftest import host, plan_of

SECRET = "S3CR3T-8f14e45fce"
HOST_FILE_TEXT = (
    f"status:\n  nodeName: {SECRET}\n  target: {{persistentVolumeClaimName: {SECRET}}}\n"
)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host folder outside the status tree, holding report-shaped files."""
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "web.yaml").write_text(HOST_FILE_TEXT, encoding="utf-8")
    return folder


@pytest.fixture
def status_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo" / "status"
    (root / "virtualmachines" / "default").mkdir(parents=True)
    (root / "virtualmachines" / "default" / "db.yaml").write_text(
        "status:\n  nodeName: hv1\n", encoding="utf-8"
    )
    return root


def test_a_report_symlinked_to_a_host_file_is_not_read(status_root: Path, outside: Path) -> None:
    report = status_root / "virtualmachines" / "default" / "web.yaml"
    report.symlink_to(outside / "web.yaml")

    assert read_text(report) is None
    assert reported_nodes(status_root) == {ObjectId("VirtualMachine", "default", "db"): "hv1"}


def test_a_symlinked_namespace_folder_is_not_read(status_root: Path, outside: Path) -> None:
    (status_root / "virtualmachines" / "stolen").symlink_to(outside)

    assert SECRET not in str(reported_nodes(status_root))


def test_a_symlinked_kind_folder_is_not_read(status_root: Path, outside: Path) -> None:
    (outside / "default").mkdir()
    (outside / "default" / "web-root.yaml").write_text(HOST_FILE_TEXT, encoding="utf-8")
    (status_root / "virtualdisks").symlink_to(outside)

    assert reported_disks(status_root) == {}


def test_a_report_is_written_over_a_symlinked_report_not_through_it(
    status_root: Path, outside: Path
) -> None:
    report = status_root / "virtualmachines" / "default" / "web.yaml"
    report.symlink_to(outside / "web.yaml")

    assert write_if_changed(report, "status: {}\n")

    assert not report.is_symlink() and report.read_text() == "status: {}\n"
    assert (outside / "web.yaml").read_text() == HOST_FILE_TEXT


def test_a_committed_temporary_symlink_is_not_written_through(
    status_root: Path, outside: Path
) -> None:
    report = status_root / "virtualmachines" / "default" / "web.yaml"
    (status_root / "virtualmachines" / "default" / "web.yaml.tmp").symlink_to(outside / "web.yaml")

    write_if_changed(report, "status: {}\n")

    assert report.read_text() == "status: {}\n"
    assert (outside / "web.yaml").read_text() == HOST_FILE_TEXT


def test_a_symlinked_kind_folder_is_replaced_when_a_report_is_written(
    status_root: Path, outside: Path
) -> None:
    (status_root / "virtualdisks").symlink_to(outside)
    report = status_root / "virtualdisks" / "default" / "web-root.yaml"

    write_if_changed(report, "status: {}\n")

    assert not (status_root / "virtualdisks").is_symlink()
    assert report.read_text() == "status: {}\n"
    assert sorted(p.name for p in outside.iterdir()) == ["web.yaml"]


def test_a_status_folder_committed_as_a_symlink_is_replaced_not_written_through(
    remote: Remote, tmp_path: Path, outside: Path
) -> None:
    link = remote.author / "status"
    link.symlink_to(outside)
    git(remote.author, "add", "--all")
    git(remote.author, "commit", "--quiet", "-m", "status leads elsewhere")
    git(remote.author, "push", "--quiet", "origin", f"HEAD:{remote.branch}")
    publisher = StatusPublisher(remote.url, "main", "status", "hv1", tmp_path / "work")

    result = publisher.publish(lambda root: [_write_node(root)], "1 VM")

    assert result.committed
    assert remote.show("status/nodes/hv1.yaml") == "up: true"
    assert sorted(p.name for p in outside.iterdir()) == ["web.yaml"]
    assert not publisher.status_root.is_symlink()


def _write_node(root: Path) -> Path:
    path = root / "nodes" / "hv1.yaml"
    write_if_changed(path, "up: true\n")
    return path


def test_a_stale_report_behind_a_symlinked_folder_removes_the_link_not_the_host_file(
    status_root: Path, outside: Path
) -> None:
    # given a namespace folder committed as a symlink to a host folder of report-shaped
    # files, none of them a VM of the revision (so each looks like a stale report)
    (status_root / "virtualmachines" / "stolen").symlink_to(outside)
    (outside / "default").mkdir()
    (outside / "default" / "disk.yaml").write_text(HOST_FILE_TEXT, encoding="utf-8")
    (status_root / "virtualdisks").symlink_to(outside)
    # when the host writes its reports and removes the stale ones
    write_host_reports(
        status_root, plan_of("hv1", "db"), host("hv1"), "r1", desired_vms=set(), present=set()
    )
    # then the links are gone and the host's files are where they were
    assert (outside / "web.yaml").read_text(encoding="utf-8") == HOST_FILE_TEXT
    assert (outside / "default" / "disk.yaml").read_text(encoding="utf-8") == HOST_FILE_TEXT
    assert not (status_root / "virtualmachines" / "stolen").exists()
    assert not (status_root / "virtualdisks").is_symlink()
