"""Reports are input too: anyone who can push writes status/. A report too deep, an
alias bomb, too large, not a mapping or of the wrong shape is skipped, logged once and
named for the node report's lastError; every other report is still used (issue 12,
row 2)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler.api import ObjectId
from reconciler.ipam.model import PreviousLease
from reconciler.model.phases import LeasePhase
from reconciler.policies import load_limits
from reconciler.reports.addresses import lease_path, read_leases
from reconciler.reports.documents import NAMED_REPORTS, check_reports, read_document
from reconciler.reports.reported import reported_disks, reported_nodes
from reconciler.reports.reported_operations import reported_operations
from reconciler.reports.tree import write_host_reports
from tests.hostile_yaml import alias_bomb, deep_mapping, deep_sequence
from tests.reports.conftest import host, plan_of, vm

VMS = Path("virtualmachines") / "default"
LIMITS = load_limits()

# Each poison, and where its finding points (line, column, rule).
POISONS = {
    "10000-deep sequence": (deep_sequence(10_000), "1:103: nested deeper than 100 levels"),
    "3000-deep mapping": (deep_mapping(3_000), "1:400: nested deeper than 100 levels"),
    "alias bomb": (alias_bomb(9, 10), "4:5: aliases expand to more than 100000 values"),
    "oversize": ("a: " + "x" * LIMITS.max_file_bytes + "\n", "1:1: larger than"),
    "not a mapping": ("- a\n- b\n", "1:1: a report must be a mapping"),
    "wrong types": ("status:\n  conditions: 5\n", "1:1: status.conditions must be a list"),
    "not YAML": ("status: [\n", "2:1: "),
}


def _lease(address: str, name: str) -> str:
    return (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
        "kind: VirtualMachineIPAddressLease\n"
        f"metadata:\n  name: ip-{address.replace('.', '-')}\n"
        "status:\n  phase: Bound\n"
        f"  virtualMachineIPAddressRef:\n    name: {name}\n    namespace: default\n"
    )


@pytest.fixture(params=sorted(POISONS))
def poison(request: pytest.FixtureRequest) -> tuple[str, str]:
    return POISONS[request.param]


def test_a_poisoned_report_of_another_host_is_named_and_the_pass_writes_its_own(
    tmp_path: Path, poison: tuple[str, str]
) -> None:
    text, where = poison
    write_host_reports(tmp_path, plan_of("hv2", "theirs"), host("hv2"), "rev1")
    (tmp_path / VMS / "theirs.yaml").write_text(text, encoding="utf-8")

    write_host_reports(tmp_path, plan_of("hv1", "a", "b"), host("hv1"), "rev2")
    skipped = check_reports(tmp_path)

    [named] = skipped
    assert named.startswith(f"report skipped: {tmp_path.name}/{VMS}/theirs.yaml:{where}")
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "| default | a | Running |" in readme and "| default | b | Running |" in readme
    assert "| theirs |" not in readme


def test_the_readers_of_a_pass_skip_a_poisoned_report_and_use_the_others(
    tmp_path: Path, poison: tuple[str, str]
) -> None:
    text, _ = poison
    write_host_reports(tmp_path, plan_of("hv1", "good"), host("hv1"), "rev1")
    for folder in (
        "virtualmachines/default",
        "virtualdisks/default",
        "virtualmachineoperations/default",
    ):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "poisoned.yaml").write_text(text, encoding="utf-8")
    lease_path(tmp_path, "ip-10-66-10-5").parent.mkdir()
    lease_path(tmp_path, "ip-10-66-10-5").write_text(_lease("10.66.10.5", "good"), encoding="utf-8")
    lease_path(tmp_path, "ip-10-66-10-6").write_text(text, encoding="utf-8")

    assert reported_nodes(tmp_path) == {vm("good"): "hv1"}
    assert reported_disks(tmp_path) == {}
    assert reported_operations(tmp_path) == {}
    assert read_leases(tmp_path) == (
        PreviousLease("10.66.10.5", "default", "good", LeasePhase.BOUND),
    )
    named = {line.split(":")[1].split("/", 1)[1] for line in check_reports(tmp_path)}
    assert named == {
        "virtualmachines/default/poisoned.yaml",
        "virtualdisks/default/poisoned.yaml",
        "virtualmachineoperations/default/poisoned.yaml",
        "virtualmachineipaddressleases/ip-10-66-10-6.yaml",
    }


def test_a_skipped_report_is_logged_once_however_often_it_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / VMS / "bomb.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(alias_bomb(), encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="reconciler.reports"):
        for _ in range(3):
            assert read_document(path) is None
            check_reports(tmp_path)

    [record] = caplog.records
    assert "bomb.yaml:4:5" in record.getMessage() and "[limits]" in record.getMessage()


def test_a_report_mended_or_removed_is_no_longer_named(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv2", "mended", "removed"), host("hv2"), "rev1")
    for name in ("mended", "removed"):
        (tmp_path / VMS / f"{name}.yaml").write_text(deep_sequence(), encoding="utf-8")
    assert len(check_reports(tmp_path)) == 2

    write_host_reports(tmp_path, plan_of("hv2", "mended"), host("hv2"), "rev2")
    (tmp_path / VMS / "removed.yaml").unlink()

    assert check_reports(tmp_path) == []
    assert read_document(tmp_path / VMS / "mended.yaml")["status"]["nodeName"] == "hv2"


def test_a_report_too_large_is_not_even_read(tmp_path: Path) -> None:
    path = tmp_path / VMS / "huge.yaml"
    path.parent.mkdir(parents=True)
    with path.open("wb") as file:  # sparse: its size says what reading it would cost
        file.truncate(64 * LIMITS.max_file_bytes)

    assert read_document(path) is None
    [skipped] = check_reports(tmp_path)
    assert "larger than" in skipped and "[limits]" in skipped


def test_the_host_rewrites_its_own_poisoned_report(tmp_path: Path) -> None:
    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev1")
    (tmp_path / VMS / "a.yaml").write_text(alias_bomb(), encoding="utf-8")

    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev2")

    assert read_document(tmp_path / VMS / "a.yaml")["status"]["nodeName"] == "hv1"
    assert check_reports(tmp_path) == []


def test_a_poisoned_node_report_of_this_host_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "nodes").mkdir()
    (tmp_path / "nodes" / "hv1.yaml").write_text(deep_mapping(), encoding="utf-8")

    write_host_reports(tmp_path, plan_of("hv1", "a"), host("hv1"), "rev1", "an error")

    node = read_document(tmp_path / "nodes" / "hv1.yaml")
    assert node["status"]["lastError"] == "an error"
    assert ObjectId("VirtualMachine", "default", "a") in reported_nodes(tmp_path)


def test_thousands_of_poisoned_reports_are_named_a_few_then_counted(tmp_path: Path) -> None:
    """Each name goes into the node report and /healthz: a push of a thousand poisoned
    reports must not make either a megabyte long."""
    (tmp_path / VMS).mkdir(parents=True)
    for number in range(1_000):
        (tmp_path / VMS / f"vm-{number:04}.yaml").write_text("- a\n", encoding="utf-8")

    skipped = check_reports(tmp_path)

    assert len(skipped) == NAMED_REPORTS + 1
    assert skipped[0].startswith(f"report skipped: {tmp_path.name}/{VMS}/vm-0000.yaml:1:1:")
    assert skipped[-1] == f"and {1_000 - NAMED_REPORTS} more report(s) skipped"
