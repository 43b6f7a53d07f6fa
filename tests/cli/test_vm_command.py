"""`reconciler vm ACTION NAME`: a VirtualMachineOperation committed and pushed, as `d8 v` does.

Real Git throughout: a bare remote on disk holding a VM, other clones that push in
between, and a helper thread that commits status reports the way a host's daemon does.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.api import ObjectId, VirtualMachineOperation
from reconciler.cli import main
from reconciler.loader import load_text
from reconciler.reports.documents import render, status_document
from tests.gitrepos import git
from tests.hosts import CLASS, vm_yaml

NAME = re.compile(r"^(start|stop|restart|evict)-linux-vm-\d+(-\d+)?$")
WAIT = ["--wait", "--interval", "0.1"]


@dataclass
class Remote:
    """A bare repository whose `main` holds a VM class and the VM linux-vm (namespace default)."""

    bare: Path
    scratch: Path

    @property
    def url(self) -> str:
        return str(self.bare)

    def head(self, branch: str = "main") -> str:
        return git(self.bare, "rev-parse", f"refs/heads/{branch}")

    def files(self, branch: str = "main") -> list[str]:
        return git(self.bare, "ls-tree", "-r", "--name-only", branch).splitlines()

    def show(self, path: str, branch: str = "main") -> str:
        return git(self.bare, "show", f"{branch}:{path}")

    def clone(self, name: str) -> Path:
        work = self.scratch / name
        git(self.scratch, "clone", "--quiet", str(self.bare), str(work))
        return work

    def operations(self, branch: str = "main") -> list[str]:
        return [path for path in self.files(branch) if "/operations/" in f"/{path}"]


def push_file(work: Path, relative: str, text: str, branch: str = "main") -> None:
    """Someone else's commit, pushed from their clone."""
    path = work / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    git(work, "add", relative)
    git(work, "commit", "--quiet", "-m", f"add {relative}")
    git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")


def seeded_remote(tmp_path: Path, files: dict[str, str]) -> Remote:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    remote = Remote(bare, tmp_path)
    author = tmp_path / "author"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(author))
    git(author, "remote", "add", "origin", str(bare))
    for relative, text in files.items():
        push_file(author, relative, text)
    return remote


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return seeded_remote(
        tmp_path, {"classes/generic.yaml": textwrap.dedent(CLASS), "vms/linux-vm.yaml": vm_yaml()}
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["vm", *argv])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err


def loaded_operation(text: str) -> VirtualMachineOperation:
    """The manifest as the daemon's loader reads it: it must validate with no finding."""
    result = load_text(text, "operation.yaml")
    assert result.findings == []
    (loaded,) = result.objects
    assert isinstance(loaded.model, VirtualMachineOperation)
    return loaded.model


# --- Committing ---------------------------------------------------------------------------


def test_restart_pushes_one_commit_with_a_valid_operation_and_prints_its_name(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    before = remote.head()

    code, name, _ = run(capsys, "restart", "linux-vm", "--repo", remote.url)

    assert code == 0
    assert NAME.match(name) and name.startswith("restart-linux-vm-")
    assert git(remote.bare, "rev-parse", "main~1") == before
    assert git(remote.bare, "log", "-1", "--format=%s", "main") == "vm restart default/linux-vm"
    assert remote.operations() == [f"operations/{name}.yaml"]
    operation = loaded_operation(remote.show(f"operations/{name}.yaml"))
    assert operation.id == ObjectId("VirtualMachineOperation", "default", name)
    assert operation.spec.type == "Restart"
    assert operation.spec.virtual_machine_name == "linux-vm"
    assert "force" not in remote.show(f"operations/{name}.yaml")


def test_force_is_written_only_when_given(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    code, name, _ = run(capsys, "stop", "linux-vm", "--force", "--repo", remote.url)

    assert code == 0
    operation = loaded_operation(remote.show(f"operations/{name}.yaml"))
    assert operation.spec.type == "Stop"
    assert operation.spec.force is True


def test_two_commands_in_a_row_get_two_distinct_operations(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    _, first, _ = run(capsys, "evict", "linux-vm", "--repo", remote.url)
    _, second, _ = run(capsys, "evict", "linux-vm", "--repo", remote.url)

    assert first != second
    assert sorted(remote.operations()) == sorted(
        [f"operations/{first}.yaml", f"operations/{second}.yaml"]
    )
    assert all(loaded_operation(remote.show(f"operations/{n}.yaml")) for n in (first, second))


def test_an_unknown_vm_is_refused_and_nothing_is_pushed(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    before = remote.head()

    code, out, err = run(capsys, "restart", "ghost", "--repo", remote.url)

    assert code == 1
    assert out == ""
    assert "VirtualMachine default/ghost is not in" in err
    assert remote.head() == before


def test_the_vm_is_looked_up_in_the_namespace_given(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    before = remote.head()

    code, _, err = run(capsys, "restart", "linux-vm", "-n", "prod", "--repo", remote.url)

    assert code == 1
    assert "VirtualMachine prod/linux-vm is not in" in err
    assert remote.head() == before


def test_start_with_force_is_refused_as_the_platform_refuses_it(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    before = remote.head()

    code, out, err = run(capsys, "start", "linux-vm", "--force", "--repo", remote.url)

    assert code == 1
    assert out == ""
    assert "force is not allowed with type Start" in err
    assert remote.head() == before


def test_without_a_repository_the_command_says_how_to_name_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "restart", "linux-vm")

    assert code == 2
    assert "--repo" in err and "--dir" in err and "--config" in err


# --- Lost push races ------------------------------------------------------------------------


def test_a_push_lost_to_another_clone_is_rebased_and_lands(
    remote: Remote,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pre-push hook pushes someone else's commit just before the command's own push."""
    other = remote.clone("other")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    marker = tmp_path / "raced"
    hook = hooks / "pre-push"
    hook.write_text(
        textwrap.dedent(f"""\
            #!/bin/sh
            [ -e '{marker}' ] && exit 0
            touch '{marker}'
            cd '{other}' || exit 1
            echo 'note: x' > notes.yaml
            unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
            git add notes.yaml && git commit -q -m 'someone else' && git push -q origin HEAD:main
            """),
        encoding="utf-8",
    )
    hook.chmod(0o755)
    # core.hooksPath for every git of this test: the command's private clone included.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.hooksPath")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(hooks))

    code, name, err = run(capsys, "restart", "linux-vm", "--repo", remote.url)

    assert code == 0, err
    assert marker.exists()  # the race did happen
    assert "notes.yaml" in remote.files()
    assert f"operations/{name}.yaml" in remote.files()
    assert git(remote.bare, "log", "-1", "--format=%s", "main~1") == "someone else"


def test_a_checkout_behind_its_remote_is_rebased_and_keeps_its_own_changes(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = remote.clone("checkout")
    push_file(remote.clone("other"), "notes.yaml", "note: pushed meanwhile\n")
    (checkout / "vms" / "linux-vm.yaml").write_text(vm_yaml(cores=2), encoding="utf-8")
    (checkout / "draft.yaml").write_text("draft: true\n", encoding="utf-8")

    code, name, err = run(capsys, "restart", "linux-vm", "--dir", str(checkout))

    assert code == 0, err
    assert git(remote.bare, "log", "-1", "--format=%s", "main~1") == "add notes.yaml"
    changed = git(remote.bare, "show", "--name-only", "--format=", "main").splitlines()
    assert changed == [f"operations/{name}.yaml"]
    # Work in progress is neither committed nor lost.
    assert "cores: 2" in (checkout / "vms" / "linux-vm.yaml").read_text()
    assert (checkout / "draft.yaml").exists()


def test_a_checkout_with_unpushed_commits_is_refused_so_they_do_not_ride_along(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = remote.clone("checkout")
    (checkout / "vms" / "linux-vm.yaml").write_text(vm_yaml(cores=4), encoding="utf-8")
    git(checkout, "commit", "--quiet", "-am", "four cores, not reviewed yet")
    before = remote.head()

    code, out, err = run(capsys, "restart", "linux-vm", "--dir", str(checkout))

    assert code == 1
    assert out == ""
    assert "1 commit(s) not pushed" in err
    assert remote.head() == before
    assert git(checkout, "status", "--porcelain") == ""  # nothing written into the checkout


def test_a_checkout_on_another_branch_is_not_pushed_from(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = remote.clone("checkout")
    git(checkout, "checkout", "--quiet", "-b", "feature")
    before = remote.head()

    code, _, err = run(capsys, "restart", "linux-vm", "--dir", str(checkout), "--branch", "main")

    assert code == 1
    assert "is on branch feature, not main" in err
    assert remote.head() == before


def test_a_push_the_remote_refuses_is_reported_with_the_remotes_reason(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected: open a pull request'\nexit 1\n")
    hook.chmod(0o755)
    before = remote.head()

    code, out, err = run(capsys, "restart", "linux-vm", "--repo", remote.url)

    assert code == 1
    assert out == ""
    assert "pre-receive hook declined" in err
    assert "main is protected: open a pull request" in err
    assert remote.head() == before


# --- The daemon's configuration ----------------------------------------------------------


def test_the_config_decides_the_manifests_folder_and_where_reports_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = seeded_remote(
        tmp_path,
        {"fleet/classes.yaml": textwrap.dedent(CLASS), "fleet/vms/linux-vm.yaml": vm_yaml()},
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""\
            repository: {{url: "{remote.url}", branch: main, subPath: fleet}}
            status: {{branch: reports, path: fleet-status}}
            """),
        encoding="utf-8",
    )
    host = ReportingHost(remote, [("Completed", [])], branch="reports", path="fleet-status")

    with host.running():
        code, name, err = run(capsys, "stop", "linux-vm", "--config", str(config), *WAIT)

    assert code == 0, err
    assert remote.operations() == [f"fleet/operations/{name}.yaml"]
    assert f"{name}: Completed" in err


def test_a_plain_directory_source_gets_the_file_with_nothing_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "manifests"
    (directory / "vms").mkdir(parents=True)
    (directory / "vms" / "linux-vm.yaml").write_text(vm_yaml(), encoding="utf-8")

    code, name, _ = run(capsys, "restart", "linux-vm", "--dir", str(directory))

    assert code == 0
    assert loaded_operation((directory / "operations" / f"{name}.yaml").read_text())
    assert not (directory / ".git").exists()


# --- --wait ------------------------------------------------------------------------------------


Conditions = list[dict[str, str]]


@dataclass
class ReportingHost:
    """Commits the status reports of the first operation that appears, as a host's daemon does."""

    remote: Remote
    phases: Sequence[tuple[str, Conditions]]
    branch: str = "main"
    path: str = "status"
    gap_seconds: float = 1.0
    error: BaseException | None = None

    def running(self) -> _Running:
        return _Running(self)

    def serve(self) -> None:
        try:
            namespace, name = self._wait_for_operation()
            work = self.remote.clone("daemon")
            if self.branch in git(self.remote.bare, "branch", "--format=%(refname:short)"):
                git(work, "checkout", "--quiet", self.branch)
            else:
                git(work, "checkout", "--quiet", "--orphan", self.branch)
                git(work, "rm", "-r", "-q", "--cached", ".")
            for index, (phase, conditions) in enumerate(self.phases):
                if index:
                    time.sleep(self.gap_seconds)
                report = status_document(
                    ObjectId("VirtualMachineOperation", namespace, name),
                    {"phase": phase, "conditions": conditions},
                )
                relative = f"{self.path}/virtualmachineoperations/{namespace}/{name}.yaml"
                push_file(work, relative, render(report), self.branch)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error

    def _wait_for_operation(self) -> tuple[str, str]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for path in self.remote.operations():
                operation = loaded_operation(self.remote.show(path))
                return operation.namespace, operation.name
            time.sleep(0.05)
        raise TimeoutError("no operation was pushed")


class _Running:
    def __init__(self, host: ReportingHost) -> None:
        self._host = host
        self._thread = threading.Thread(target=host.serve, daemon=True)

    def __enter__(self) -> ReportingHost:
        self._thread.start()
        return self._host

    def __exit__(self, *_: object) -> None:
        self._thread.join(timeout=30)
        assert self._host.error is None, self._host.error


def test_wait_follows_the_phases_and_exits_0_on_completed(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    completed = [{"type": "Completed", "status": "True", "reason": "OperationCompleted"}]
    host = ReportingHost(remote, [("InProgress", []), ("Completed", completed)])

    with host.running():
        code, name, err = run(capsys, "restart", "linux-vm", "--repo", remote.url, *WAIT)

    assert code == 0, err
    assert NAME.match(name)
    progress = [line for line in err.splitlines() if line.startswith(f"{name}: ")]
    assert progress == [f"{name}: InProgress", f"{name}: Completed (OperationCompleted)"]


def test_wait_exits_1_on_failed_and_prints_why(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    why = "The operation cannot be applied: runPolicy AlwaysOn does not allow Stop"
    failed = [
        {
            "type": "Completed",
            "status": "False",
            "reason": "NotApplicableForVirtualMachineRunPolicy",
            "message": why,
        }
    ]
    host = ReportingHost(remote, [("Failed", failed)])

    with host.running():
        code, name, err = run(capsys, "stop", "linux-vm", "--repo", remote.url, *WAIT)

    assert code == 1
    assert f"{name} failed: {why}" in err


def test_wait_exits_2_when_no_host_reports_in_time(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()

    code, name, err = run(
        capsys, "restart", "linux-vm", "--repo", remote.url, *WAIT, "--timeout", "0.5"
    )

    assert code == 2
    assert f"operations/{name}.yaml" in remote.files()  # requested all the same
    assert "timed out after 0.5 s" in err
    assert time.monotonic() - started < 10


def test_wait_ignores_the_reports_of_other_operations(
    remote: Remote, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older operation's report sits beside; only this operation's report counts."""
    push_file(
        remote.clone("earlier"),
        "status/virtualmachineoperations/default/restart-linux-vm-1.yaml",
        render(
            status_document(
                ObjectId("VirtualMachineOperation", "default", "restart-linux-vm-1"),
                {"phase": "Completed"},
            )
        ),
    )

    code, _, _ = run(capsys, "restart", "linux-vm", "--repo", remote.url, *WAIT, "--timeout", "0.5")

    assert code == 2


def test_the_cli_runs_as_a_command(remote: Remote) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "reconciler", "vm", "restart", "linux-vm", "--repo", remote.url],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert f"operations/{completed.stdout.strip()}.yaml" in remote.files()
