"""`reconciler apply --status-dir` on a checkout poisoned in its manifests and in its
reports (issue 12, rows 1 to 3): the pass applies every other object, reports the
poisoned file as a `limits` finding and names each skipped report in lastError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.reports.documents import read_document
from tests.cli.conftest import HOST_OPTIONS, SAMPLE_REPO
from tests.hostile_yaml import alias_bomb, deep_mapping, deep_sequence

# The sample repository's VMs placed on this host (the others are on virtlab-pt-2).
SAMPLE_VMS = ("data/analytics", "data/db-1", "default/bastion", "default/linux-vm", "default/web-1")
POISONED_REPORTS = {
    "virtualmachines/default/intruder.yaml": (deep_sequence(10_000), "1:103"),
    "virtualmachineipaddressleases/ip-10-66-10-99.yaml": (alias_bomb(9, 10), "4:5"),
    "nodes/virtlab-pt-9.yaml": (deep_mapping(3_000), "1:400"),
}


@pytest.fixture
def poisoned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The sample repository applied once, then a file of every kind of poison."""
    root = tmp_path / "repo"
    shutil.copytree(SAMPLE_REPO, root)
    assert main(["apply", str(root), *HOST_OPTIONS, "--status-dir", str(root / "status")]) == 0
    (root / "vms" / "deep.yaml").write_text(deep_sequence(10_000), encoding="utf-8")
    for relative, (text, _) in POISONED_REPORTS.items():
        (root / "status" / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / "status" / relative).write_text(text, encoding="utf-8")
    capsys.readouterr()
    return root


def test_a_poisoned_checkout_is_applied_with_one_finding_and_the_reports_named(
    poisoned: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = poisoned / "status"

    code = main(
        ["apply", str(poisoned), *HOST_OPTIONS, "--status-dir", str(status), "--format", "json"]
    )

    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(f["path"], f["line"], f["rule"]) for f in out["findings"]] == [
        ("vms/deep.yaml", 1, "limits")
    ]
    # test:///default starts empty on every connection: every VM is created anew.
    outcomes = {vm["object"].removeprefix("VirtualMachine/"): vm["outcome"] for vm in out["vms"]}
    assert outcomes == dict.fromkeys(SAMPLE_VMS, "created")
    for name in SAMPLE_VMS:
        report = read_document(status / "virtualmachines" / f"{name}.yaml")
        assert report["status"]["phase"] in ("Running", "Stopped"), name
    last_error = read_document(status / "nodes" / "virtlab-pt-1.yaml")["status"]["lastError"]
    for relative, (_, place) in POISONED_REPORTS.items():
        assert f"report skipped: status/{relative}:{place}: " in last_error
    assert last_error.count("report skipped") == len(POISONED_REPORTS)
