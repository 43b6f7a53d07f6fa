"""`reconciler apply` on a revision with an unreadable file: nothing is deleted, and it
says so, as the daemon does (issue 12, row 6)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.cli import main
from tests.hosts import CLASS, host_options, host_with_domain_of, vm_yaml


def repository_with_vm(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "vms").mkdir(parents=True)
    (repo / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
    (repo / "vms" / "vm.yaml").write_text(vm_yaml(name="vm"), encoding="utf-8")
    return repo


def apply(repo: Path, host_xml: Path, *extra: str) -> int:
    return main(
        [
            "apply",
            str(repo),
            *host_options(f"test://{host_xml}"),
            *extra,
        ]
    )


def test_apply_warns_that_an_unreadable_file_holds_a_deletion_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a host running `gone`, whose manifest is deleted in the same revision that
    # brings a file that does not parse
    host_xml = host_with_domain_of(tmp_path / "host.xml", "gone", {})
    repo = repository_with_vm(tmp_path)
    (repo / "vms" / "broken.yaml").write_text("kind: VirtualMachine\nspec: [unclosed\n")

    # When the revision is applied
    code = apply(repo, host_xml, "--status-dir", str(tmp_path / "status"))

    # Then gone is kept, and the output says why, naming the file
    out, err = capsys.readouterr()
    assert code == 0
    assert "undefine" not in out
    warning = next(line for line in err.splitlines() if line.startswith("warning:"))
    assert "1 unreadable file(s), so nothing is deleted" in warning
    assert "(1 deletion(s) held back)" in warning
    assert "vms/broken.yaml:3:" in warning
    node = (tmp_path / "status" / "nodes").glob("*.yaml")
    assert "vms/broken.yaml:3:" in next(node).read_text(encoding="utf-8")


def test_apply_of_a_whole_revision_deletes_without_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host_xml = host_with_domain_of(tmp_path / "host.xml", "gone", {})
    repo = repository_with_vm(tmp_path)

    code = apply(repo, host_xml)

    out, err = capsys.readouterr()
    assert code == 0
    assert "shut down and undefine gone.default" in out
    assert "warning:" not in err
