"""`reconciler describe vm`: one VM's spec, reported status and conditions as text."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main
from tests.cli.conftest import awaiting_restart
from tests.hosts import CLASS, Host, vm_yaml

IMAGE_SOURCE = """persistentVolumeClaim:
    size: 1Gi
  dataSource:
    type: ObjectRef
    objectRef: {kind: VirtualImage, name: base}"""
IMAGE = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualImage
metadata:
  name: base
spec:
  dataSource:
    type: HTTP
    http: {{url: "file://{path}"}}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_describe_shows_metadata_spec_and_conditions(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "describe", "vm", "web-1", "--dir", str(checkout))

    assert code == 0
    assert "Name:         web-1" in out
    assert "Namespace:    default" in out
    assert "Labels:       app=nginx" in out
    assert "Kind:         VirtualMachine" in out
    assert "Virtual Machine Class Name:" in out
    assert "  Phase:       Running" in out
    assert "  Node Name:   virtlab-pt-1" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Type", "Status"])
    assert lines[header - 1].strip() == "Conditions:"
    assert lines[header].split() == ["Type", "Status", "Reason", "Message", "LastTransitionTime"]
    assert any(line.split()[:2] == ["Running", "True"] for line in lines[header + 2 :])


def test_describe_shows_why_a_vm_is_blocked(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a VM whose root disk is made from an image file that is empty
    empty = tmp_path / "broken.qcow2"
    empty.write_bytes(b"")
    host.write("class.yaml", CLASS)
    host.write("vm.yaml", vm_yaml().replace("persistentVolumeClaim:\n    size: 1Gi", IMAGE_SOURCE))
    host.write("image.yaml", IMAGE.format(path=empty))
    result, _ = host.reconcile()
    host.write_statuses(result)

    # when
    _, out, _ = run(capsys, "describe", "vm", "linux-vm", "--dir", str(host.repo))

    # then
    blocked = next(line for line in out.splitlines() if "BlockDevicesReady" in line)
    assert blocked.split()[:3] == ["BlockDevicesReady", "False", "BlockDevicesNotReady"]
    assert f"{empty}: the image file is empty" in blocked


def test_describe_of_a_missing_vm_exits_1(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "describe", "vm", "nope", "--dir", str(checkout))

    assert code == 1
    assert out == ""
    assert 'virtualmachines "nope" not found' in err


def test_describe_lists_changes_awaiting_a_restart(
    host: Host, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a running VM in Manual approval mode whose cores then change
    awaiting_restart(host)

    # when
    code, out, _ = run(capsys, "describe", "vm", "linux-vm", "--dir", str(host.repo))

    # then
    assert code == 0
    section = out.split("Restart Awaiting Changes:\n", 1)[1].splitlines()
    assert section[0].split() == ["cpu.cores", "replace", "1", "->", "2"]
