"""A host's status commits are made from trees (tree_commit.py) and its clone follows the
branch by what Git says differs (tree_follow.py): whatever the host and the other hosts
write, remove or replace, what lands is what a commit through the index would hold,
and the clone's files are the branch's."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.reports.documents import write_if_changed
from reconciler.reports.publish import StatusPublisher
from reconciler.source import tree_follow
from reconciler.source.gitcli import Redactor, run_git_bytes
from tests.gitrepos import Remote, git, run_git
from tests.reports.test_publish import node_file, publisher

NAMESPACES = ("default", "web")
NAMES = ("a", "b", "c")

# One file's change: (namespace, name, new text or None to remove it).
change = st.tuples(
    st.sampled_from(NAMESPACES),
    st.sampled_from(NAMES),
    st.one_of(st.none(), st.sampled_from(("phase: Running\n", "phase: Stopped\n"))),
)
step = st.tuples(
    st.sampled_from(("mine", "other", "manifest", "refresh")),
    st.lists(change, min_size=1, max_size=4),
)


def report(root: Path, namespace: str, name: str) -> Path:
    return root / "virtualmachines" / namespace / f"{name}.yaml"


def write_mine(changes: list[tuple[str, str, str | None]], round_number: int):  # type: ignore[no-untyped-def]
    """The host's write: its node file, and each change to a VM report (a namespace's
    folder goes with its last report, as write_host_reports does)."""

    def write(root: Path) -> list[Path]:
        written = node_file("hv1", f"round: {round_number}\n")(root)
        for namespace, name, text in changes:
            path = report(root, namespace, name)
            if text is None:
                path.unlink(missing_ok=True)
                if path.parent.is_dir() and not any(path.parent.iterdir()):
                    path.parent.rmdir()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.is_file() and path.read_text(encoding="utf-8") == text:
                    continue
                path.write_text(text, encoding="utf-8")
            written.append(path)
        return written

    return write


def push_other(remote: Remote, changes: list[tuple[str, str, str | None]], manifest: bool) -> None:
    """Another host (or the operator) pushes onto the branch's head."""
    author = remote.author
    git(author, "fetch", "--quiet", "origin")
    git(author, "reset", "--quiet", "--hard", f"origin/{remote.branch}")
    for namespace, name, text in changes:
        if manifest:
            path = author / "vms" / f"{namespace}-{name}.yaml"
        else:
            path = report(author / "status", namespace, f"other-{name}")
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    git(author, "add", "--all")
    if git(author, "status", "--porcelain"):
        git(author, "commit", "--quiet", "-m", "other")
        git(author, "push", "--quiet", "origin", f"HEAD:{remote.branch}")


def files_under(root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = path.read_text(encoding="utf-8")
    return found


def remote_files(remote: Remote, top: str) -> dict[str, str]:
    listed = git(remote.bare, "ls-tree", "-r", "--name-only", remote.branch, "--", top)
    return {
        path.removeprefix(f"{top}/"): git(remote.bare, "show", f"{remote.branch}:{path}") + "\n"
        for path in listed.splitlines()
    }


@settings(max_examples=12, deadline=None)
@given(st.lists(step, min_size=1, max_size=6))
def test_what_lands_is_what_the_host_and_the_others_wrote(
    steps: list[tuple[str, list[tuple[str, str, str | None]]]],
) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        remote = Remote.create(work / "remote.git", author=work / "author")
        remote.commit({"vm.yaml": "kind: VirtualMachine\n"}, "seed")
        status = publisher(remote, work)
        mine: dict[str, str] = {}
        for number, (what, changes) in enumerate(steps):
            if what == "mine":
                result = status.publish(write_mine(changes, number), f"round {number}")
                assert result.committed  # the node file changes every round
                mine["nodes/hv1.yaml"] = f"round: {number}\n"
                for namespace, name, text in changes:
                    key = f"virtualmachines/{namespace}/{name}.yaml"
                    if text is None:
                        mine.pop(key, None)
                    else:
                        mine[key] = text
                landed = remote_files(remote, "status")
                # The host's own reports are as it wrote them; the others' survive.
                assert {k: v for k, v in landed.items() if "other-" not in k} == mine
                # The clone's files are the commit's, nothing more or less.
                assert files_under(status.status_root) == landed
                assert remote.show("vm.yaml") == "kind: VirtualMachine"
            elif what == "refresh":
                assert status.refresh()
                assert files_under(status.status_root) == remote_files(remote, "status")
            else:
                push_other(remote, changes, manifest=what == "manifest")


def test_a_symlink_another_host_commits_is_checked_out_not_written_through(
    remote: Remote, tmp_path: Path
) -> None:
    """The clone follows the branch by Git's diff only for plain files: a symlink
    committed under status/ (issue 12) goes the way it always went (checked out as a
    link, then replaced by the host's writes), and no host file is written."""
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "keep.yaml").write_text("host file\n", encoding="utf-8")
    status = publisher(remote, tmp_path)
    status.publish(node_file("hv1", "up: true\n"), "1 VM")
    git(remote.author, "pull", "--quiet", "--rebase", "origin", remote.branch)
    (remote.author / "status" / "nodes" / "hv1.yaml").unlink()
    (remote.author / "status" / "nodes" / "hv1.yaml").symlink_to(outside / "keep.yaml")
    git(remote.author, "add", "--all")
    git(remote.author, "commit", "--quiet", "-m", "a link")
    git(remote.author, "push", "--quiet", "origin", f"HEAD:{remote.branch}")

    def write_node(root: Path) -> list[Path]:
        path = root / "nodes" / "hv1.yaml"
        return [path] if write_if_changed(path, "up: false\n") else []

    assert status.refresh()
    assert (status.status_root / "nodes" / "hv1.yaml").is_symlink()
    result = status.publish(write_node, "1 VM")

    assert result.committed
    assert (outside / "keep.yaml").read_text(encoding="utf-8") == "host file\n"
    assert remote.show("status/nodes/hv1.yaml") == "up: false"
    assert git(remote.bare, "ls-tree", remote.branch, "status/nodes/hv1.yaml").startswith("100644")


def test_a_push_between_refresh_and_publish_is_built_on(remote: Remote, tmp_path: Path) -> None:
    """Another host lands while this one plans, after its refresh: the publish builds on
    that head at once (no race lost), and both reports land."""
    status = publisher(remote, tmp_path)
    status.publish(node_file("hv1", "round: 1\n"), "1 VM")
    assert status.refresh()
    publisher(remote, tmp_path, "hv2").publish(node_file("hv2", "up: true\n"), "hv2")

    result = status.publish(node_file("hv1", "round: 2\n"), "1 VM")

    assert result.committed and result.attempts == 1
    assert remote.show("status/nodes/hv1.yaml") == "round: 2"
    assert remote.show("status/nodes/hv2.yaml") == "up: true"
    assert (status.status_root / "nodes" / "hv2.yaml").read_text(encoding="utf-8") == ("up: true\n")


def test_a_publisher_that_restarts_finds_its_clone_as_it_left_it(
    remote: Remote, tmp_path: Path
) -> None:
    """HEAD and the index of a clone followed by diffs lag behind its files; a new
    process (a restarted daemon) checks the head out and commits on it all the same."""
    first = publisher(remote, tmp_path)
    first.publish(node_file("hv1", "round: 1\n"), "1 VM")
    first.publish(node_file("hv1", "round: 2\n"), "1 VM")
    remote.push_manifest("vms/new.yaml", "kind: VirtualMachine\n")

    again = StatusPublisher(remote.url, "main", "status", "hv1", first.work_dir)
    result = again.publish(node_file("hv1", "round: 3\n"), "1 VM")

    assert result.committed
    assert remote.show("status/nodes/hv1.yaml") == "round: 3"
    assert remote.show("vms/new.yaml") == "kind: VirtualMachine"
    assert files_under(again.status_root) == remote_files(remote, "status")


def source_clone(remote: Remote, path: Path) -> Path:
    """A clone of the remote's branch, as the daemon's source keeps one."""
    if path.exists():
        shutil.rmtree(path)
    git(path.parent, "clone", "--quiet", "--branch", remote.branch, str(remote.bare), path.name)
    return path / ".git" / "objects"


def borrowing(remote: Remote, tmp_path: Path, objects: Path) -> StatusPublisher:
    """Host hv1's publisher, borrowing the objects of a source clone (as the daemon's)."""
    return StatusPublisher(
        remote.url, "main", "status", "hv1", tmp_path / "work", borrowed_objects=objects
    )


def test_a_status_clone_borrows_the_objects_the_source_fetched(
    remote: Remote, tmp_path: Path
) -> None:
    """The source has fetched the branch moments before the publisher does: the
    publisher's clone takes its objects from there instead of the remote, and its reports
    land on the head as before."""
    blob = remote.push_manifest("vms/vm1.yaml", "kind: VirtualMachine\n")
    objects = source_clone(remote, tmp_path / "source")
    status = borrowing(remote, tmp_path, objects)

    result = status.publish(node_file("hv1", "up: true\n"), "1 VM")

    assert result.committed
    assert remote.show("status/nodes/hv1.yaml") == "up: true"
    assert remote.show("vms/vm1.yaml") == "kind: VirtualMachine"
    manifest = git(remote.bare, "rev-parse", f"{blob}:vms/vm1.yaml")
    alternates = status.work_dir / ".git" / "objects" / "info" / "alternates"
    alternates.rename(alternates.with_suffix(".aside"))
    try:
        own = run_git(status.work_dir, "cat-file", "-e", manifest).returncode == 0
    finally:
        alternates.with_suffix(".aside").rename(alternates)
    assert not own, "the manifest came from the source's clone, not the remote"
    # The commit went into the source's store, with a ref its next fetch offers as had.
    source = tmp_path / "source"
    assert git(source, "rev-parse", "refs/vmr/status-pushed") == result.commit
    git(source, "fetch", "--quiet", "origin")
    assert git(source, "rev-parse", "origin/main") == result.commit


def test_a_head_the_source_has_not_fetched_keeps_the_commit_out_of_its_store(
    remote: Remote, tmp_path: Path
) -> None:
    """Another host landed after the source's fetch: the publisher fetched that head into
    its own store, so a commit on it must not go into the source's (which lacks its
    parent) nor be named there as had: the source's next fetch brings the whole of it."""
    objects = source_clone(remote, tmp_path / "source")
    status = borrowing(remote, tmp_path, objects)
    status.publish(node_file("hv1", "round: 1\n"), "1 VM")
    git(tmp_path / "source", "fetch", "--quiet", "origin")
    publisher(remote, tmp_path, "hv2").publish(node_file("hv2", "up: true\n"), "hv2")

    result = status.publish(node_file("hv1", "round: 2\n"), "1 VM")

    assert result.committed
    source = tmp_path / "source"
    git(source, "fetch", "--quiet", "origin")
    assert git(source, "rev-parse", "origin/main") == result.commit
    listed = git(source, "ls-tree", "-r", "--name-only", "origin/main")
    assert {"status/nodes/hv1.yaml", "status/nodes/hv2.yaml"} <= set(listed.splitlines())
    assert git(source, "show", "origin/main:status/nodes/hv2.yaml") == "up: true"
    assert git(source, "fsck", "--connectivity-only", "--no-dangling") == ""


def test_a_source_clone_made_anew_is_noticed_by_the_status_clone(
    remote: Remote, tmp_path: Path
) -> None:
    """The source's clone made again (another URL, a wiped cache) is another store, which
    may lack what the status clone borrowed from the old one (a rewritten branch's old
    commits): the status clone is made anew instead of failing on its own history."""
    objects = source_clone(remote, tmp_path / "source")
    seed = remote.head()
    remote.push_manifest("vms/vm1.yaml", "kind: VirtualMachine\n")
    git(tmp_path / "source", "pull", "--quiet")
    status = borrowing(remote, tmp_path, objects)
    status.publish(node_file("hv1", "round: 1\n"), "1 VM")
    # The branch is rewritten without that manifest's commit, and the source cloned anew.
    git(remote.author, "fetch", "--quiet", "origin")
    git(remote.author, "reset", "--quiet", "--hard", seed)
    (remote.author / "vms").mkdir()
    (remote.author / "vms" / "vm2.yaml").write_text("kind: VirtualMachine\n", encoding="utf-8")
    git(remote.author, "add", "--all")
    git(remote.author, "commit", "--quiet", "-m", "rewritten")
    git(remote.author, "push", "--quiet", "--force", "origin", f"HEAD:{remote.branch}")
    git(remote.bare, "reflog", "expire", "--expire=now", "--all")
    git(remote.bare, "gc", "--quiet", "--prune=now")
    source_clone(remote, tmp_path / "source")

    again = borrowing(remote, tmp_path, objects)
    result = again.publish(node_file("hv1", "round: 2\n"), "1 VM")

    assert result.committed
    assert remote.show("status/nodes/hv1.yaml") == "round: 2"
    assert remote.show("vms/vm2.yaml") == "kind: VirtualMachine"
    assert files_under(again.status_root) == remote_files(remote, "status")
    assert git(again.work_dir, "fsck", "--connectivity-only", "--no-dangling") == ""


def test_a_file_too_large_to_hold_is_left_to_a_checkout(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone with push rights can commit a huge file: the follow does not read it into
    memory (it writes nothing and says a checkout must do it), and a publisher's
    refresh then holds it all the same."""
    status = publisher(remote, tmp_path)
    status.publish(node_file("hv1", "up: true\n"), "1 VM")
    old = remote.head()
    monkeypatch.setattr(tree_follow, "LARGEST_FILE_FOLLOWED", 64)
    large = "padding: " + "x" * 200 + "\n"
    publisher(remote, tmp_path, "hv2").publish(node_file("hv2", large), "hv2")
    empty = tmp_path / "empty"
    empty.mkdir()

    def run(args: list[str], stdin: bytes | None) -> bytes:
        return run_git_bytes(remote.bare, args, {}, Redactor(""), stdin)

    assert tree_follow.follow(run, empty, ["status"], old, remote.head()) is None
    assert list(empty.iterdir()) == []
    assert status.refresh()
    assert (status.status_root / "nodes" / "hv2.yaml").read_text(encoding="utf-8") == large


def test_a_folder_where_the_follow_writes_its_temporary_file_is_checked_out(
    remote: Remote, tmp_path: Path
) -> None:
    """A commit can put a folder at any name, the follow's temporary file's too: the
    write fails, and a checkout brings the head instead of the pass failing."""
    status = publisher(remote, tmp_path)
    status.publish(node_file("hv1", "up: true\n"), "1 VM")
    remote.push_manifest("status/nodes/hv2.yaml.vmr-tmp/x.yaml", "in the way\n")
    assert status.refresh()
    remote.push_manifest("status/nodes/hv2.yaml", "up: true\n")

    assert status.refresh()

    assert (status.status_root / "nodes" / "hv2.yaml").read_text(encoding="utf-8") == ("up: true\n")
    assert files_under(status.status_root) == remote_files(remote, "status")
