"""The status/ tree several hosts write into: each its own reports, one shared README."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.reports import documents
from reconciler.reports.documents import keep_every_read, read_document
from reconciler.reports.tree import write_host_reports
from reconciler.reports.written import WRITTEN, write_once
from tests.reports.conftest import host, plan_of, running, vm

VMS = Path("virtualmachines") / "default"


@pytest.fixture(params=["daemon", "one-shot"])
def process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's process remembers what it wrote, to skip it in the next pass, and
    keeps the reports its readers ask it to; a one-shot `reconciler apply`'s writes each
    tree once and remembers nothing of it, and keeps every report it reads."""
    monkeypatch.setattr(WRITTEN, "remember", True)
    monkeypatch.setattr(documents, "_MEMO", documents._Memo())
    if request.param == "one-shot":
        write_once()
        keep_every_read()


def test_writing_the_same_plan_twice_changes_no_byte(tmp_path: Path, process: None) -> None:
    plan = plan_of("hv1", "a", "b")
    first = write_host_reports(tmp_path, plan, host("hv1"), "rev1")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    second = write_host_reports(tmp_path, plan, host("hv1"), "rev1")

    assert tmp_path / VMS / "a.yaml" in first
    assert tmp_path / "nodes" / "hv1.yaml" in first
    assert tmp_path / "README.md" in first
    assert second == []
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_report_holds_the_vm_status_and_creation_time(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev1")

    document = read_document(tmp_path / VMS / "a.yaml")

    assert document["kind"] == "VirtualMachine"
    assert document["metadata"] == {
        "name": "a",
        "namespace": "default",
        "creationTimestamp": "2024-01-01T00:00:00Z",
    }
    assert document["status"]["nodeName"] == "hv1"
    assert document["status"]["phase"] == "Running"


def test_condition_time_is_carried_over_from_the_previous_report(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev1")
    since = read_document(tmp_path / VMS / "a.yaml")["status"]["conditions"][0]

    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev2")

    now = read_document(tmp_path / VMS / "a.yaml")["status"]["conditions"][0]
    assert now["lastTransitionTime"] == since["lastTransitionTime"]


def test_vm_deleted_from_the_repository_loses_its_report(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev1")
    write_host_reports(tmp_path, plan_of("hv2", "gone"), host("hv2"), "rev1")

    changed = write_host_reports(
        tmp_path, plan_of("hv1", "a"), host("hv1"), "rev2", desired_vms={vm("a")}
    )

    assert tmp_path / VMS / "gone.yaml" in changed
    assert not (tmp_path / VMS / "gone.yaml").exists()
    assert (tmp_path / VMS / "a.yaml").exists()


def test_vm_this_host_no_longer_reports_loses_its_report(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv1", "a", "moved"), host("hv1"), "rev1")

    changed = write_host_reports(
        tmp_path, plan_of("hv1", "a"), host("hv1"), "rev2", desired_vms={vm("a"), vm("moved")}
    )

    assert tmp_path / VMS / "moved.yaml" in changed
    assert not (tmp_path / VMS / "moved.yaml").exists()


def test_unreadable_revision_removes_no_report(tmp_path: Path) -> None:
    # desired_vms=None: a file could not be read, so a VM missing from the plan may
    # only be unreadable and still running; neither its report nor anyone's goes.
    write_host_reports(tmp_path, plan_of("hv1", "a", "unreadable"), host("hv1"), "rev1")
    write_host_reports(tmp_path, plan_of("hv2", "theirs"), host("hv2"), "rev1")

    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev2", desired_vms=None)

    assert (tmp_path / VMS / "unreadable.yaml").exists()
    assert (tmp_path / VMS / "theirs.yaml").exists()


def test_another_hosts_report_is_kept(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv2", "theirs"), host("hv2"), "rev1")
    theirs = (tmp_path / VMS / "theirs.yaml").read_bytes()

    write_host_reports(
        tmp_path,
        plan_of("hv1", "mine"),
        host("hv1"),
        "rev1",
        desired_vms={vm("mine"), vm("theirs")},
    )
    write_host_reports(tmp_path, plan_of("hv1", "mine"), host("hv1"), "rev2")

    assert (tmp_path / VMS / "theirs.yaml").read_bytes() == theirs


def test_readme_lists_every_hosts_vms_and_every_host(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "1111111111111111")
    write_host_reports(tmp_path, plan_of("hv2", "b", "c"), host("hv2"), "2222222222222222", "boom")

    readme = (tmp_path / "README.md").read_text(encoding="utf-8")

    assert "| default | a | Running |" in readme
    assert "| default | b | Running |" in readme
    assert "| default | c | Running |" in readme
    assert "| hv1 | 1 | 111111111111 |   |" in readme
    assert "| hv2 | 2 | 222222222222 | boom |" in readme
    header = readme.split("| NAMESPACE")[0]
    assert "hv1" not in header and "hv2" not in header


def test_readme_is_the_same_whichever_host_regenerates_it(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev1")
    write_host_reports(tmp_path, plan_of("hv2", "b"), host("hv2"), "rev1")
    by_hv2 = (tmp_path / "README.md").read_bytes()

    changed = write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev1")

    assert changed == []
    assert (tmp_path / "README.md").read_bytes() == by_hv2


def test_namespace_folder_goes_with_its_last_report(tmp_path: Path) -> None:
    plan = plan_of("hv1", "a")
    plan.statuses[vm("b", "team")] = running("hv1")
    write_host_reports(tmp_path, plan, host("hv1"), "rev1")

    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev2", desired_vms={vm("a")})

    assert not (tmp_path / "virtualmachines" / "team").exists()
    assert (tmp_path / VMS / "a.yaml").exists()


def test_a_report_changed_under_the_host_is_written_again_though_its_status_is_not(
    tmp_path: Path, process: None
) -> None:
    # given reports written, and the same plan again (nothing to write)
    plan = plan_of("hv1", "a", "b")
    write_host_reports(tmp_path, plan, host("hv1"), "rev1")
    report = tmp_path / VMS / "a.yaml"
    written = report.read_bytes()
    # when something else rewrites one of them (a Git pull, an operator's hand)
    report.write_text(written.decode().replace("Running", "Stopped"), encoding="utf-8")
    changed = write_host_reports(tmp_path, plan, host("hv1"), "rev1")
    # then the next pass puts this host's view back, and only there
    assert changed == [report]
    assert report.read_bytes() == written


def test_a_status_changed_in_place_after_it_was_written_is_written_again(
    tmp_path: Path, process: None
) -> None:
    plan = plan_of("hv1", "a")
    write_host_reports(tmp_path, plan, host("hv1"), "rev1")
    plan.statuses[vm("a")].memory = "2Gi"

    changed = write_host_reports(tmp_path, plan, host("hv1"), "rev1")

    assert tmp_path / VMS / "a.yaml" in changed
    assert read_document(tmp_path / VMS / "a.yaml")["status"]["resources"]["memory"] == {
        "size": "2Gi"
    }


def test_a_report_rewritten_between_two_reads_is_read_as_it_is_now(
    tmp_path: Path, process: None
) -> None:
    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev1")
    report = tmp_path / VMS / "a.yaml"
    assert read_document(report, keep=False)["status"]["nodeName"] == "hv1"

    report.write_text(report.read_text().replace("nodeName: hv1", "nodeName: hv2"))

    assert read_document(report, keep=False)["status"]["nodeName"] == "hv2"
