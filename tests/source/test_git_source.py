"""GitSource against real repositories: fetching, the applied revision, staleness."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest

from reconciler.source import Revision, SourceError, open_source
from reconciler.source.git_source import GitSource
from tests.gitrepos import Remote, git
from tests.hosts import vm_yaml
from tests.source.conftest import VM_CLASS, repository

MANIFESTS = {"classes/generic.yaml": VM_CLASS, "vms/web.yaml": vm_yaml("web")}


def open_git(url: str, cache_dir: Path, **settings: object) -> GitSource:
    source = open_source(repository(url, **settings), cache_dir, "status")
    assert isinstance(source, GitSource)
    return source


def test_first_update_clones_the_branch_and_names_its_head(remote: Remote, cache_dir: Path) -> None:
    head = remote.commit(MANIFESTS)
    source = open_git(remote.url, cache_dir)

    revision = source.update()

    assert (revision.head, revision.sha) == (head, head)
    assert (revision.root / "vms" / "web.yaml").read_text() == vm_yaml("web")
    assert revision.root == revision.repo_root
    assert revision.changed is None
    assert revision.stale_error == ""
    assert set(revision.blobs) == set(MANIFESTS)
    assert source.publishes_status and source.local_path is None


def test_manifest_commit_changes_the_key_and_lists_the_changed_file(
    remote: Remote, cache_dir: Path
) -> None:
    remote.commit(MANIFESTS)
    source = open_git(remote.url, cache_dir)
    first = source.update()

    head = remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)})
    second = source.update()

    assert second.sha == second.head == head
    assert second.manifests_key != first.manifests_key
    assert second.changed == frozenset({"vms/web.yaml"})


def test_deleted_manifest_is_listed_as_changed(remote: Remote, cache_dir: Path) -> None:
    remote.commit(MANIFESTS)
    source = open_git(remote.url, cache_dir)
    source.update()

    remote.commit({"vms/web.yaml": None})
    revision = source.update()

    assert revision.changed == frozenset({"vms/web.yaml"})
    assert not (revision.root / "vms" / "web.yaml").exists()


def test_status_commit_moves_head_but_not_the_applied_revision(
    remote: Remote, cache_dir: Path
) -> None:
    applied = remote.commit(MANIFESTS)
    source = open_git(remote.url, cache_dir)
    first = source.update()

    head = remote.commit({"status/virtualmachines/default/web.yaml": "status: {}\n"})
    second = source.update()

    assert second.head == head != applied
    assert second.sha == applied
    assert second.manifests_key == first.manifests_key
    assert second.changed == frozenset()


def test_the_status_folder_can_be_left_out_of_the_work_tree_and_brought_back(
    remote: Remote, cache_dir: Path
) -> None:
    """The daemon reads reports from the publisher's clone: the source then skips checking
    out thousands of report files after each status commit, and brings them back when
    the publisher's clone is gone."""
    remote.commit({**MANIFESTS, "status/virtualmachines/default/web.yaml": "status: {}\n"})
    source = open_git(remote.url, cache_dir)
    first = source.update()
    assert (first.repo_root / "status" / "virtualmachines").is_dir()

    source.leave_out_status(True)
    remote.commit({"status/virtualmachines/default/db.yaml": "status: {}\n"})
    second = source.update()
    assert not (second.repo_root / "status").exists()
    assert (second.root / "vms" / "web.yaml").read_text() == vm_yaml("web")
    assert second.manifests_key == first.manifests_key
    edited = remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)})
    third = source.update()
    assert third.sha == edited and third.changed == frozenset({"vms/web.yaml"})
    assert (third.root / "vms" / "web.yaml").read_text() == vm_yaml("web", cores=2)

    source.leave_out_status(False)
    fourth = source.update()
    assert (fourth.repo_root / "status" / "virtualmachines" / "default" / "db.yaml").is_file()

    # A daemon started again finds the clone as the last one left it.
    source.leave_out_status(True)
    source.update()
    again = open_git(remote.url, cache_dir)
    assert (again.update().repo_root / "status").is_dir()  # nobody asked it to leave it out
    again.leave_out_status(True)
    assert not (again.update().repo_root / "status").exists()


def test_a_clone_where_git_refuses_the_sparse_checkout_keeps_the_whole_tree(
    remote: Remote, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote.commit({**MANIFESTS, "status/virtualmachines/default/web.yaml": "status: {}\n"})
    source = open_git(remote.url, cache_dir)
    first = source.update()
    # Where git keeps the patterns cannot be made: `sparse-checkout set` fails.
    info = first.repo_root / ".git" / "info"
    shutil.rmtree(info)
    info.write_text("not a directory\n")

    source.leave_out_status(True)
    second = source.update()

    assert (second.repo_root / "status" / "virtualmachines").is_dir()
    assert (second.root / "vms" / "web.yaml").read_text() == vm_yaml("web")
    assert "the status folder stays in the source clone" in caplog.text
    caplog.clear()
    source.leave_out_status(True)
    source.update()
    assert "status folder" not in caplog.text  # said once, not at every pass


def test_readme_beside_manifests_does_not_change_the_key(remote: Remote, cache_dir: Path) -> None:
    remote.commit(MANIFESTS)
    source = open_git(remote.url, cache_dir)
    first = source.update()

    remote.commit({"README.md": "# fleet\n"})

    assert source.update().manifests_key == first.manifests_key


def test_local_edits_in_the_clone_are_discarded(remote: Remote, cache_dir: Path) -> None:
    """At start (and every few minutes) the clone is checked out whole: what was edited
    or left in it by hand is gone."""
    remote.commit(MANIFESTS)
    revision = open_git(remote.url, cache_dir).update()
    (revision.root / "vms" / "web.yaml").write_text("edited by hand\n")
    (revision.root / "vms" / "stray.yaml").write_text(vm_yaml("stray"))

    again = open_git(remote.url, cache_dir).update()

    assert (again.root / "vms" / "web.yaml").read_text() == vm_yaml("web")
    assert not (again.root / "vms" / "stray.yaml").exists()


def test_a_file_a_push_changes_replaces_a_local_edit(remote: Remote, cache_dir: Path) -> None:
    """Between whole checkouts the clone follows what each push changed: a changed file is
    the branch's, whatever was done to it locally."""
    remote.commit(MANIFESTS)
    source = open_git(remote.url, cache_dir)
    revision = source.update()
    (revision.root / "vms" / "web.yaml").write_text("edited by hand\n")
    remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)})

    again = source.update()

    assert (again.root / "vms" / "web.yaml").read_text() == vm_yaml("web", cores=2)
    assert again.changed == frozenset({"vms/web.yaml"})


def test_sub_path_is_the_manifests_root(remote: Remote, cache_dir: Path) -> None:
    remote.commit({f"fleet/{name}": text for name, text in MANIFESTS.items()})
    source = open_git(remote.url, cache_dir, sub_path="fleet")

    revision = source.update()

    assert revision.root == revision.repo_root / "fleet"
    assert set(revision.blobs) == set(MANIFESTS)


def test_commit_outside_the_sub_path_keeps_the_applied_revision(
    remote: Remote, cache_dir: Path
) -> None:
    applied = remote.commit({f"fleet/{name}": text for name, text in MANIFESTS.items()})
    source = open_git(remote.url, cache_dir, sub_path="fleet")
    first = source.update()

    remote.commit({"other/notes.yaml": "a: 1\n"})
    second = source.update()

    assert (second.sha, second.manifests_key) == (applied, first.manifests_key)


def test_missing_sub_path_without_earlier_revision_raises(remote: Remote, cache_dir: Path) -> None:
    remote.commit(MANIFESTS)
    source = open_git(remote.url, cache_dir, sub_path="fleet")

    with pytest.raises(SourceError, match="sub-path 'fleet' is missing"):
        source.update()


def test_missing_sub_path_after_a_good_revision_serves_it_stale(
    remote: Remote, cache_dir: Path
) -> None:
    good = remote.commit({f"fleet/{name}": text for name, text in MANIFESTS.items()})
    source = open_git(remote.url, cache_dir, sub_path="fleet")
    source.update()

    git(remote.author, "mv", "fleet", "renamed")
    bad = remote.commit({}, "move the manifests away")
    revision = source.update()

    assert revision.head == revision.sha == good
    assert f"sub-path 'fleet' is missing at {bad}" in revision.stale_error
    assert (revision.root / "vms" / "web.yaml").is_file()


def test_unreachable_remote_serves_the_last_good_revision(remote: Remote, cache_dir: Path) -> None:
    good = remote.commit(MANIFESTS)
    source = open_git(remote.url, cache_dir)
    first = source.update()

    shutil.rmtree(remote.bare)
    revision = source.update()

    assert revision.sha == good
    assert revision.manifests_key == first.manifests_key
    assert revision.stale_error.startswith(f"cannot fetch {remote.url} (main): ")
    assert revision.changed == frozenset()
    assert (revision.root / "vms" / "web.yaml").is_file()


def test_clone_left_by_an_earlier_run_is_served_when_the_remote_is_down(
    remote: Remote, cache_dir: Path
) -> None:
    remote.commit(MANIFESTS)
    earlier = open_git(remote.url, cache_dir)
    earlier.update()
    # The last revision the earlier run applied came by a diff, not a checkout.
    good = remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)})
    assert earlier.update().sha == good

    shutil.rmtree(remote.bare)
    restarted = open_git(remote.url, cache_dir)
    revision = restarted.update()

    assert revision.sha == good
    assert revision.stale_error.startswith("cannot fetch")
    assert revision.changed is None
    assert (revision.root / "vms" / "web.yaml").read_text() == vm_yaml("web", cores=2)


def test_unreachable_remote_without_earlier_revision_raises(tmp_path: Path) -> None:
    source = open_git(f"file://{tmp_path}/nowhere.git", tmp_path / "cache")

    with pytest.raises(SourceError, match=r"cannot fetch file://.*nowhere\.git \(main\)"):
        source.update()


def test_new_branch_head_after_a_force_push_is_followed(remote: Remote, cache_dir: Path) -> None:
    remote.commit(MANIFESTS)
    source = open_git(remote.url, cache_dir)
    source.update()

    git(remote.author, "commit", "--quiet", "--amend", "-m", "rewritten")
    git(remote.author, "push", "--quiet", "--force", "origin", "HEAD:main")
    rewritten = git(remote.author, "rev-parse", "HEAD")

    assert source.update().head == rewritten


def test_bare_repository_path_is_a_git_source(remote: Remote, cache_dir: Path) -> None:
    head = remote.commit(MANIFESTS)

    source = open_git(str(remote.bare), cache_dir)

    assert source.update().head == head


def test_revision_is_frozen(remote: Remote, cache_dir: Path) -> None:
    remote.commit(MANIFESTS)
    revision: Revision = open_git(remote.url, cache_dir).update()

    with pytest.raises(AttributeError):
        revision.sha = "other"  # type: ignore[misc]


def test_silent_server_times_out_instead_of_hanging(tmp_path: Path) -> None:
    # Accepts connections and never answers, like a firewall that drops replies.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    source = open_git(f"http://127.0.0.1:{port}/x.git", tmp_path / "cache")
    source.network_timeout = 1.0
    try:
        started = time.monotonic()
        with pytest.raises(SourceError, match="timed out"):
            source.update()
        assert time.monotonic() - started < 10
    finally:
        listener.close()


def test_clone_of_another_repository_is_replaced(
    remote: Remote, cache_dir: Path, tmp_path: Path
) -> None:
    remote.commit(MANIFESTS)
    open_git(remote.url, cache_dir).update()
    other = tmp_path / "other.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(remote.bare), str(other))
    git(remote.author, "remote", "set-url", "origin", str(other))
    head = remote.commit({"vms/db.yaml": vm_yaml("db")})

    revision = open_git(f"file://{other}", cache_dir).update()

    assert revision.head == head
    assert "vms/db.yaml" in revision.blobs


def test_status_folder_inside_the_sub_path_is_not_a_manifest_change(
    remote: Remote, cache_dir: Path
) -> None:
    applied = remote.commit({f"fleet/{name}": text for name, text in MANIFESTS.items()})
    source = open_source(repository(remote.url, sub_path="fleet"), cache_dir, "fleet/reports")
    first = source.update()

    remote.commit({"fleet/reports/virtualmachines/default/web.yaml": "status: {}\n"})
    second = source.update()

    assert (second.sha, second.manifests_key) == (applied, first.manifests_key)
    assert second.changed == frozenset()


def test_a_branch_deleted_on_the_remote_serves_the_last_revision_stale(
    remote: Remote, cache_dir: Path
) -> None:
    good = remote.commit(MANIFESTS)
    source = open_git(remote.url, cache_dir)
    source.update()

    git(remote.bare, "update-ref", "-d", "refs/heads/main")
    revision = source.update()

    assert revision.sha == good, "not an empty revision: the last one"
    assert "couldn't find remote ref" in revision.stale_error
    assert (revision.root / "vms" / "web.yaml").is_file()
