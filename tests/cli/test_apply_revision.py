"""`reconciler apply` names the commit it applied in the node report (lastAppliedRevision):
the HEAD of the checkout DIR is in, read from the checkout's files (cli/revision.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.cli import main
from reconciler.reports import known
from reconciler.reports.known import KnownReports
from tests.gitrepos import git
from tests.hosts import CLASS, HOST_XML, host_options, vm_yaml

NODE = "hv-revision"


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The command starts knowing nothing, as a new process does."""
    monkeypatch.setattr(known, "KNOWN", KnownReports())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def manifests(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "class.yaml").write_text(textwrap.dedent(CLASS), encoding="utf-8")
    (directory / "vm.yaml").write_text(vm_yaml(name="vm"), encoding="utf-8")
    return directory


def committed(repo: Path) -> str:
    git(repo, "init", "--quiet")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "manifests")
    return git(repo, "rev-parse", "HEAD")


def applied_revision(directory: Path, status: Path) -> str:
    options = host_options(f"test://{HOST_XML}", NODE)
    code = main(["apply", str(directory), *options, "--status-dir", str(status)])
    assert code == 0
    node = YAML(typ="safe").load((status / "nodes" / f"{NODE}.yaml").read_text())
    return str(node["status"]["lastAppliedRevision"])


def test_apply_reports_the_commit_checked_out(tmp_path: Path) -> None:
    repo = manifests(tmp_path / "repo")
    head = committed(repo)

    assert applied_revision(repo, tmp_path / "status") == head


def test_apply_of_a_folder_inside_a_checkout_reports_the_checkouts_commit(tmp_path: Path) -> None:
    manifests(tmp_path / "repo" / "hosts" / "hv")
    head = committed(tmp_path / "repo")

    assert applied_revision(tmp_path / "repo" / "hosts" / "hv", tmp_path / "status") == head


def test_apply_outside_any_repository_reports_no_revision(tmp_path: Path) -> None:
    directory = manifests(tmp_path / "plain")
    (tmp_path / ".git").write_text("not a repository", encoding="utf-8")

    assert applied_revision(directory, tmp_path / "status") == ""


def test_apply_reports_dirs_commit_whatever_git_dir_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = manifests(tmp_path / "other")
    committed(other)
    repo = manifests(tmp_path / "repo")
    head = committed(repo)
    # As in a hook of another repository that runs the command.
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))

    assert applied_revision(repo, tmp_path / "status") == head


def test_apply_reports_a_commit_whose_branch_is_only_in_packed_refs(tmp_path: Path) -> None:
    repo = manifests(tmp_path / "repo")
    head = committed(repo)
    git(repo, "pack-refs", "--all", "--prune")

    assert applied_revision(repo, tmp_path / "status") == head


def test_apply_reports_a_detached_head(tmp_path: Path) -> None:
    repo = manifests(tmp_path / "repo")
    first = committed(repo)
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "second")
    git(repo, "checkout", "--quiet", "--detach", first)

    assert applied_revision(repo, tmp_path / "status") == first


def test_apply_in_a_linked_worktree_reports_its_own_head(tmp_path: Path) -> None:
    repo = manifests(tmp_path / "repo")
    first = committed(repo)
    git(repo, "worktree", "add", "--quiet", "-b", "host", str(tmp_path / "host"))
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "main moves on")

    assert applied_revision(tmp_path / "host", tmp_path / "status") == first


def test_a_head_naming_a_file_outside_the_refs_is_no_revision(tmp_path: Path) -> None:
    repo = manifests(tmp_path / "repo")
    committed(repo)
    (tmp_path / "outside").write_text("a" * 40, encoding="utf-8")
    (repo / ".git" / "HEAD").write_text("ref: refs/../../../outside\n", encoding="utf-8")

    assert applied_revision(repo, tmp_path / "status") == ""
