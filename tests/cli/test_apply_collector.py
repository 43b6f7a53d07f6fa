"""`reconciler plan` and `apply` pause Python's cyclic collector for their pass (its
objects live until the command ends) and leave it as they found it for whoever called
main(): a test run or a program that embeds the command."""

from __future__ import annotations

import gc
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import reconciler.cli.engine as engine
from reconciler.cli import main
from reconciler.reports import known
from reconciler.reports.known import KnownReports
from tests.hosts import CLASS, HOST_XML, host_options, vm_yaml


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(known, "KNOWN", KnownReports())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def collector_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
    (repo / "vm.yaml").write_text(vm_yaml(name="vm"), encoding="utf-8")
    return repo


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_the_collector_runs_again_after_the_command(
    tmp_path: Path, collector_enabled: None, command: str
) -> None:
    code = main([command, str(repository(tmp_path)), *host_options(f"test://{HOST_XML}")])

    assert code == 0
    assert gc.isenabled()


def test_a_failed_apply_leaves_the_collector_running(
    tmp_path: Path, collector_enabled: None
) -> None:
    code = main(["apply", str(repository(tmp_path)), *host_options("test:///nonexistent/x")])

    assert code != 0
    assert gc.isenabled()


def test_the_pass_runs_without_the_collector(
    tmp_path: Path, collector_enabled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    reconcile_once = engine.reconcile_once

    def observed(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        return reconcile_once(*args, **kwargs)

    monkeypatch.setattr(engine, "reconcile_once", observed)

    main(["apply", str(repository(tmp_path)), *host_options(f"test://{HOST_XML}")])

    assert seen == [False]


def test_a_caller_of_main_keeps_its_objects_collectable(
    tmp_path: Path, collector_enabled: None
) -> None:
    frozen = gc.get_freeze_count()

    code = main(["apply", str(repository(tmp_path)), *host_options(f"test://{HOST_XML}")])

    assert code == 0
    assert gc.get_freeze_count() == frozen
