"""`reconciler get`: the checkout's reports and manifests printed as `d8 k get` prints them."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.api import KINDS
from reconciler.cli import main
from reconciler.cli.get import LEASE, RESOURCE_KINDS
from tests.cli.conftest import HOST_OPTIONS, awaiting_restart
from tests.hosts import Host

VM_COLUMNS = ("NAME", "PHASE", "NODE", "IPADDRESS", "AGE")
WIDE_COLUMNS = (
    "NAME",
    "PHASE",
    "CORES",
    "COREFRACTION",
    "MEMORY",
    "NEED RESTART",
    "AGENT",
    "MIGRATABLE",
    "NODE",
    "IPADDRESS",
    "AGE",
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(table: str, columns: Sequence[str]) -> dict[str, dict[str, str]]:
    """The table's cells by row name, cut at the header's column starts: a misaligned
    cell reads wrong."""
    header, *lines = table.rstrip("\n").split("\n")
    starts: list[int] = []
    for column in columns:
        found = re.compile(rf"(?<!\S){re.escape(column)}(?!\S)").search(
            header, starts[-1] + 1 if starts else 0
        )
        assert found is not None, column
        starts.append(found.start())
    assert header.split() == " ".join(columns).split()
    ends = [*starts[1:], None]
    parsed = {}
    for line in lines:
        cells = {c: line[s:e].strip() for c, s, e in zip(columns, starts, ends, strict=True)}
        parsed[cells.get("NAME", "")] = cells
    return parsed


def test_vms_of_the_default_namespace_are_listed_with_their_reported_phase(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "get", "vm", "--dir", str(checkout))

    assert code == 0
    table = rows(out, VM_COLUMNS)
    assert sorted(table) == ["bastion", "linux-vm", "web-1"]
    assert table["web-1"]["PHASE"] == "Running"
    assert table["web-1"]["NODE"] == "virtlab-pt-1"
    # Its root disk is made from an image: imported, copied, and the VM runs.
    assert table["linux-vm"]["PHASE"] == "Running"


def test_age_of_a_created_vm_is_short_and_unknown_without_a_domain(
    checkout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(checkout, repo)
    vm = (repo / "vms" / "web-1.yaml").read_text(encoding="utf-8")
    (repo / "vms" / "web-2.yaml").write_text(vm.replace("web-1", "web-2"), encoding="utf-8")

    _, out, _ = run(capsys, "get", "vms", "--dir", str(repo))

    table = rows(out, VM_COLUMNS)
    assert table["web-1"]["AGE"].endswith("s") or table["web-1"]["AGE"].endswith("m")
    assert table["web-2"]["AGE"] == "<unknown>", "no host has defined it yet"


def test_wide_output_has_the_sizing_and_restart_columns_aligned(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "get", "virtualmachines", "-o", "wide", "--dir", str(checkout))

    assert code == 0
    web = rows(out, WIDE_COLUMNS)["web-1"]
    assert web["CORES"] == "6"
    assert web["COREFRACTION"] == "20%"
    assert web["MEMORY"] == "8Gi"
    assert web["NEED RESTART"] == "False"
    assert web["NODE"] == "virtlab-pt-1"


def test_wide_output_says_a_vm_needs_a_restart(
    host: Host, capsys: pytest.CaptureFixture[str]
) -> None:
    awaiting_restart(host)

    _, out, _ = run(capsys, "get", "vm", "-o", "wide", "--dir", str(host.repo))

    vm = rows(out, WIDE_COLUMNS)["linux-vm"]
    assert vm["NEED RESTART"] == "True"
    assert vm["PHASE"] == "Running"
    assert vm["CORES"] == "1"


def test_all_namespaces_adds_the_namespace_column(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "get", "vm", "-A", "--dir", str(checkout))

    table = rows(out, ("NAMESPACE", *VM_COLUMNS))
    assert table["db-1"]["NAMESPACE"] == "data"
    assert table["web-1"]["NAMESPACE"] == "default"
    assert len(table) == 5


def test_namespace_option_selects_another_namespace(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "get", "vm", "-n", "data", "--dir", str(checkout))

    assert sorted(rows(out, VM_COLUMNS)) == ["analytics", "db-1"]


def test_yaml_of_one_vm_round_trips_with_its_manifest_and_status(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "get", "vm", "web-1", "-o", "yaml", "--dir", str(checkout))

    assert code == 0
    document = YAML(typ="safe").load(out)
    assert document["kind"] == "VirtualMachine"
    assert document["metadata"]["namespace"] == "default"
    assert document["spec"]["cpu"]["cores"] == 6
    assert document["status"]["phase"] == "Running"


def test_json_listing_is_a_list_of_items(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "get", "vm", "-o", "json", "--dir", str(checkout))

    listing = json.loads(out)
    assert listing["kind"] == "List"
    names = [item["metadata"]["name"] for item in listing["items"]]
    assert names == ["bastion", "linux-vm", "web-1"]


def test_a_report_without_a_manifest_is_still_listed(
    checkout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "status").symlink_to(checkout / "status")

    _, out, _ = run(capsys, "get", "vm", "web-1", "-o", "yaml", "--dir", str(tmp_path))

    document = YAML(typ="safe").load(out)
    assert document["status"]["phase"] == "Running"
    assert "spec" not in document


def test_missing_name_is_not_found_with_exit_code_1(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "get", "vm", "nope", "--dir", str(checkout))

    assert code == 1
    assert out == ""
    assert 'Error from server (NotFound): virtualmachines "nope" not found' in err


def test_empty_namespace_says_no_resources_found(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "get", "vm", "-n", "empty", "--dir", str(checkout))

    assert code == 0
    assert out == ""
    assert err.strip() == "No resources found in empty namespace."


def test_unknown_kind_is_a_usage_error(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "get", "vmx", "--dir", str(checkout))

    assert code == 2
    assert '"vmx"' in err


@pytest.mark.parametrize(
    ("kind", "columns", "name", "cells"),
    [
        (
            "vmip",
            ("NAME", "ADDRESS", "STATUS", "VM", "AGE"),
            "bastion",
            {"ADDRESS": "10.66.10.10"},
        ),
        ("vd", ("NAME", "PHASE", "CAPACITY", "AGE"), "web-1-root", {"CAPACITY": "20Gi"}),
        (
            "vmop",
            ("NAME", "PHASE", "TYPE", "VIRTUALMACHINE", "AGE"),
            "restart-linux-vm-1718000000",
            {"TYPE": "Restart", "VIRTUALMACHINE": "linux-vm"},
        ),
        (
            "vmbda",
            ("NAME", "PHASE", "VIRTUAL MACHINE NAME", "AGE"),
            "attach-blank-disk",
            {"VIRTUAL MACHINE NAME": "linux-vm"},
        ),
        ("vmclass", ("NAME", "PHASE", "AGE"), "generic", {"PHASE": ""}),
    ],
)
def test_other_kinds_show_the_reference_columns(
    checkout: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    columns: tuple[str, ...],
    name: str,
    cells: dict[str, str],
) -> None:
    code, out, _ = run(capsys, "get", kind, "--dir", str(checkout))

    assert code == 0
    row = rows(out, columns)[name]
    assert {column: row[column] for column in cells} == cells


def test_leases_follow_the_addresses_vms_report(
    checkout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "status" / "virtualmachines" / "default" / "linux-vm.yaml"
    report.parent.mkdir(parents=True)
    report.write_text(
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualMachine\n"
        "metadata: {name: linux-vm, namespace: default}\n"
        "status: {phase: Running, ipAddress: 10.66.10.14, "
        "virtualMachineIPAddressName: linux-vm-7prpx}\n",
        encoding="utf-8",
    )

    _, leases, _ = run(capsys, "get", "vmipl", "--dir", str(tmp_path))
    _, addresses, _ = run(capsys, "get", "vmip", "--dir", str(tmp_path))

    lease = rows(leases, ("NAME", "VIRTUALMACHINEIPADDRESS", "STATUS", "AGE"))["ip-10-66-10-14"]
    assert lease["VIRTUALMACHINEIPADDRESS"] == '{"name":"linux-vm-7prpx","namespace":"default"}'
    assert lease["STATUS"] == "Bound"
    vmip = rows(addresses, ("NAME", "ADDRESS", "STATUS", "VM", "AGE"))["linux-vm-7prpx"]
    assert vmip == {
        "NAME": "linux-vm-7prpx",
        "ADDRESS": "10.66.10.14",
        "STATUS": "Attached",
        "VM": "linux-vm",
        "AGE": "<unknown>",
    }


def test_libvirt_uri_lists_the_sample_vms_live(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "get", "vm", "-A", "--dir", str(checkout), *HOST_OPTIONS)

    assert code == 0
    table = rows(out, ("NAMESPACE", *VM_COLUMNS))
    assert sorted(table) == ["analytics", "bastion", "db-1", "linux-vm", "web-1"]
    # A fresh test-driver host: the plan would create web-1, which has no domain yet.
    assert table["web-1"]["PHASE"] in {"Pending", "Starting"}


def test_libvirt_uri_prints_the_planned_status_as_yaml(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "get", "vm", "linux-vm", "-o", "yaml", "--dir", str(checkout), *HOST_OPTIONS
    )

    assert code == 0
    document = YAML(typ="safe").load(out)
    # A fresh test-driver host: the plan would import its image and start it.
    assert document["status"]["phase"] == "Starting"
    assert document["spec"]["virtualMachineClassName"] == "host"


def test_vmips_and_leases_are_listed_from_their_own_reports(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, addresses, _ = run(capsys, "get", "vmip", "-A", "--dir", str(checkout))
    _, leases, _ = run(capsys, "get", "vmipl", "--dir", str(checkout))

    vmips = rows(addresses, ("NAMESPACE", "NAME", "ADDRESS", "STATUS", "VM", "AGE"))
    # The sample's static addresses, attached to the VMs that name them.
    assert vmips["bastion"]["ADDRESS"] == "10.66.10.10"
    assert vmips["bastion"]["STATUS"] == "Attached"
    assert vmips["db-1"]["ADDRESS"] == "10.66.10.20"
    assert vmips["db-1"]["VM"] == "db-1"
    # A vmip no VM names yet is leased but not attached.
    unattached = [row for row in vmips.values() if not row["VM"]]
    assert unattached and all(row["STATUS"] == "Bound" for row in unattached)
    table = rows(leases, ("NAME", "VIRTUALMACHINEIPADDRESS", "STATUS", "AGE"))
    assert table["ip-10-66-10-10"]["VIRTUALMACHINEIPADDRESS"] == (
        '{"namespace":"default","name":"bastion"}'
    )
    assert {row["STATUS"] for row in table.values()} == {"Bound"}
    assert len(table) == len(vmips)


def test_disks_show_their_volume_and_users_wide(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "get", "vd", "-o", "wide", "--dir", str(checkout))

    assert code == 0
    columns = ("NAME", "PHASE", "CAPACITY", "INUSE", "PROGRESS", "STORAGECLASS", "TARGETPVC")
    root = rows(out, (*columns, "AGE"))["linux-vm-root"]
    assert root["PHASE"] == "Ready"
    assert root["CAPACITY"] == "10Gi"
    assert root["INUSE"] == "True"
    assert root["STORAGECLASS"] == "default-pool"
    assert root["TARGETPVC"] == "vd-default-linux-vm-root.qcow2"


def test_attachments_show_their_device_wide(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "get", "vmbda", "-o", "wide", "--dir", str(checkout))

    assert code == 0
    columns = ("NAME", "PHASE", "BLOCKDEVICE KIND", "BLOCKDEVICE NAME", "VIRTUAL MACHINE NAME")
    table = rows(out, (*columns, "AGE"))
    assert table["attach-ubuntu-iso"]["PHASE"] == "Attached"
    assert table["attach-ubuntu-iso"]["BLOCKDEVICE KIND"] == "VirtualImage"
    assert table["attach-blank-disk"]["BLOCKDEVICE NAME"] == "blank-disk"


def test_libvirt_uri_lists_the_disks_a_pass_would_make(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "get", "vd", "-A", "--dir", str(checkout), *HOST_OPTIONS)

    assert code == 0
    table = rows(out, ("NAMESPACE", "NAME", "PHASE", "CAPACITY", "AGE"))
    # A fresh test-driver host: every disk is about to be made.
    assert {row["PHASE"] for row in table.values()} == {"Provisioning"}
    assert table["db-1-data"]["CAPACITY"] == "200Gi"


def test_every_kind_get_lists_is_named_as_its_model_names_it() -> None:
    for kind in RESOURCE_KINDS:
        if kind is LEASE:
            continue
        model = KINDS[kind.kind]
        assert (kind.plural, kind.namespaced, kind.api_version, kind.short_names) == (
            model.PLURAL,
            model.NAMESPACED,
            model.API_VERSIONS[0],
            model.SHORT_NAMES,
        )
