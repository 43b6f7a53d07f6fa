"""`reconciler apply` keeps what it knows of the reports it wrote for the next command
(reports/known.py): under $XDG_CACHE_HOME without --config, in cacheDir with one."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.reports import known
from reconciler.reports.known import KnownReports
from tests.hosts import CLASS, HOST_XML, host_options, vm_yaml


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command starts knowing nothing, as a new process does."""
    monkeypatch.setattr(known, "KNOWN", KnownReports())


def repository_with_vm(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "vms").mkdir(parents=True)
    (repo / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
    (repo / "vms" / "vm.yaml").write_text(vm_yaml(name="vm"), encoding="utf-8")
    return repo


def apply(tmp_path: Path, *extra: str) -> int:
    repo = repository_with_vm(tmp_path)
    return main(["apply", str(repo), *host_options(f"test://{HOST_XML}"), *extra])


def known_files(cache_file: Path) -> list[str]:
    return sorted(json.loads(cache_file.read_text(encoding="utf-8"))["reports"])


def reports(status: Path) -> list[str]:
    return sorted(str(path.resolve()) for path in status.rglob("*.yaml"))


def test_apply_without_a_configuration_keeps_its_reports_in_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    status = tmp_path / "status"

    code = apply(tmp_path, "--status-dir", str(status))

    assert code == 0
    cache_file = tmp_path / "user-cache" / "vm-reconciler" / "known-reports.json"
    assert known_files(cache_file) == reports(status)


def test_apply_with_a_configuration_keeps_its_reports_in_its_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    config = tmp_path / "config.yaml"
    config.write_text(f"cacheDir: {tmp_path / 'host-cache'}\nnodeName: hv\n", encoding="utf-8")
    status = tmp_path / "status"

    code = apply(tmp_path, "--config", str(config), "--status-dir", str(status))

    assert code == 0
    assert known_files(tmp_path / "host-cache" / "known-reports.json") == reports(status)
    assert not (tmp_path / "user-cache").exists()
