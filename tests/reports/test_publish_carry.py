"""A host that lost a race to the branch leaves its commit in a mailbox, and the next host's
push carries its reports: on a real bare remote, with real pushes."""

from __future__ import annotations

from pathlib import Path

from reconciler.reports.publish import StatusPublisher
from tests.gitrepos import Remote, git, run_git
from tests.reports.test_publish import node_file, publisher, write_both

# Mailboxes are for fleets of three hosts or more: in a fleet of two nobody would carry one.
FLEET = ("hv1", "hv2", "hv3")


def mailboxes(remote: Remote) -> dict[str, str]:
    """node -> commit of every mailbox on the remote."""
    listed = git(remote.bare, "for-each-ref", "--format=%(refname) %(objectname)", "refs/vmr/")
    return {
        refname.removeprefix("refs/vmr/pending/"): commit
        for refname, commit in (line.split(" ") for line in listed.splitlines())
    }


def leave_in_mailbox(remote: Remote, node: str, files: dict[str, str | None]) -> str:
    """A commit on the branch's head with these files, left in NODE's mailbox as a host
    that lost a race leaves it (the branch does not move)."""
    git(remote.author, "pull", "--quiet", "--ff-only")
    commit = remote.commit(files, f"status({node}): lost a race", ref=f"refs/vmr/pending/{node}")
    git(remote.author, "reset", "--quiet", "--hard", "HEAD~1")
    return commit


def test_a_host_that_lost_a_race_has_its_reports_carried_by_the_next_push(
    remote: Remote, tmp_path: Path
) -> None:
    """hv2 loses to hv1, leaves its commit in its mailbox and waits; hv1's next push
    carries hv2's report and empties the mailbox in the same push; hv2 finds its report
    landed without pushing again."""
    revision = remote.head()
    hv1, hv2 = publisher(remote, tmp_path, "hv1"), publisher(remote, tmp_path, "hv2")
    writes: list[Path] = []

    def write_losing(root: Path) -> list[Path]:
        if not writes:  # hv1 lands between hv2's fetch and its push
            assert hv1.publish(node_file("hv1", "pass: 1\n"), "1", fleet=FLEET, revision=revision)
        writes.append(root)
        return write_both("hv2", 7)(root)

    def sleep_while_hv1_publishes_again(_seconds: float) -> None:
        assert mailboxes(remote) == {"hv2": remote_head_of(remote, "refs/vmr/pending/hv2")}
        again = hv1.publish(write_both("hv1", 2), "2", fleet=FLEET, revision=revision)
        assert again.committed

    hv2._sleep = sleep_while_hv1_publishes_again
    result = hv2.publish(write_losing, "1 VM", fleet=FLEET, revision=revision)

    assert result.committed and result.attempts == 2
    assert len(writes) == 1  # written once: the second attempt found it landed
    assert remote.show("status/nodes/hv2.yaml") == "round: 7"
    assert "nodeName: hv2" in (remote.show("status/virtualmachines/default/vm-hv2-7.yaml") or "")
    # The README, which every host writes anew from the reports, lists the carried VM.
    assert "vm-hv2-7" in (remote.show("status/README.md") or "")
    assert remote.show("status/nodes/hv1.yaml") == "round: 2"
    assert mailboxes(remote) == {}
    assert hv2.rejections == 1
    # hv1's commit holds both, and says whose reports it carried; hv2 made none of its own
    # on the branch.
    assert git(remote.bare, "log", "-1", "--format=%an|%(trailers:valueonly)", "main") == (
        "vm-reconciler on hv1|hv2"
    )
    assert git(remote.bare, "log", "--format=%an", "--author=on hv2", "main") == ""
    assert result.commit == remote.head()


def remote_head_of(remote: Remote, ref: str) -> str:
    return git(remote.bare, "rev-parse", ref)


def test_a_report_written_since_the_mailbox_is_never_written_over(
    remote: Remote, tmp_path: Path
) -> None:
    """hv2's mailbox holds a report older than the one now on the branch (hv2 landed a
    newer pass since): hv1 does not carry it, and hv2's newer report stays."""
    revision = remote.head()
    remote.commit({"status/nodes/hv2.yaml": "pass: 1\n"}, "status(hv2): pass 1")
    leave_in_mailbox(remote, "hv2", {"status/nodes/hv2.yaml": "pass: 2\n"})
    remote.commit({"status/nodes/hv2.yaml": "pass: 3\n"}, "status(hv2): pass 3")

    hv1 = publisher(remote, tmp_path, "hv1")
    result = hv1.publish(node_file("hv1", "up: true\n"), "1", fleet=FLEET, revision=revision)

    assert result.committed
    assert remote.show("status/nodes/hv2.yaml") == "pass: 3"
    assert remote.show("status/nodes/hv1.yaml") == "up: true"
    assert set(mailboxes(remote)) == {"hv2"}  # left for hv2 to push itself


def test_only_reports_are_carried_from_a_mailbox_anyone_may_write(
    remote: Remote, tmp_path: Path
) -> None:
    """A mailbox is input from anyone who may push: a manifest it changes stays as the
    branch has it; a mailbox holding a symlink under status/ is not carried at all, nor
    the mailbox of a name that is no Node of the fleet."""
    revision = remote.head()
    fleet = ("hv1", "hv2", "hv3")
    manifest = remote.show("vm.yaml")
    leave_in_mailbox(remote, "intruder", {"status/nodes/intruder.yaml": "up: true\n"})
    leave_in_mailbox(
        remote,
        "hv2",
        {"vm.yaml": "kind: Hostile\n", "status/virtualmachines/default/vm-2.yaml": "vm: 2\n"},
    )
    git(remote.author, "pull", "--quiet", "--ff-only")
    link = remote.author / "status" / "nodes" / "hv3.yaml"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/etc/passwd")
    git(remote.author, "add", "--all")
    git(remote.author, "commit", "--quiet", "-m", "status(hv3): a symlink")
    git(remote.author, "push", "--quiet", "origin", "HEAD:refs/vmr/pending/hv3")
    git(remote.author, "reset", "--quiet", "--hard", "HEAD~1")

    hv1 = publisher(remote, tmp_path, "hv1")
    assert hv1.publish(node_file("hv1", "up: true\n"), "1", fleet=fleet, revision=revision)

    assert remote.show("vm.yaml") == manifest
    assert remote.show("status/virtualmachines/default/vm-2.yaml") == "vm: 2"
    assert "status/nodes/hv3.yaml" not in remote.files()
    assert "status/nodes/intruder.yaml" not in remote.files()
    assert set(mailboxes(remote)) == {"hv3", "intruder"}


def test_a_remote_that_refuses_mailboxes_has_lost_races_take_turns(
    remote: Remote, tmp_path: Path
) -> None:
    """A forge that takes no ref outside branches and tags: the host that lost says so
    once and waits its turn as before; its report lands, no mailbox is left."""
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  case "$ref" in refs/vmr/*) echo "refusing $ref" >&2; exit 1;; esac\ndone\n',
        encoding="utf-8",
    )
    hook.chmod(0o755)
    revision = remote.head()
    raced: list[int] = []

    def write_racing_once(root: Path) -> list[Path]:
        if not raced:
            raced.append(1)
            remote.push_manifest("other.yaml", "race: 1\n")
        return node_file("hv2", "up: true\n")(root)

    hv2: StatusPublisher = publisher(remote, tmp_path, "hv2")
    result = hv2.publish(write_racing_once, "1 VM", fleet=FLEET, revision=revision)

    assert result.committed and result.attempts == 2
    assert remote.show("status/nodes/hv2.yaml") == "up: true"
    assert mailboxes(remote) == {}
    assert "vm-reconciler on hv2" in git(remote.bare, "log", "-1", "--format=%an", "main")
    assert run_git(remote.bare, "rev-parse", "--verify", "refs/vmr/pending/hv2").returncode != 0


def test_a_host_that_lost_after_carrying_leaves_only_its_own_reports(
    remote: Remote, tmp_path: Path
) -> None:
    """hv1 carries hv2's waiting report, loses the race anyway and leaves its commit in its
    mailbox: that commit holds hv1's report alone (carried once more, hv2's would land
    while hv2's mailbox stayed, and hv2 would wait on). hv1 then lands both."""
    revision = remote.head()
    leave_in_mailbox(remote, "hv2", {"status/nodes/hv2.yaml": "up: true\n"})
    raced: list[int] = []
    left: list[str] = []

    def write_racing_once(root: Path) -> list[Path]:
        if not raced:
            raced.append(1)
            remote.push_manifest("other.yaml", "race: 1\n")
        return node_file("hv1", "up: true\n")(root)

    def sleep_and_look(_seconds: float) -> None:
        if not left:
            left.append(
                git(
                    remote.bare,
                    "diff-tree",
                    "-r",
                    "--name-only",
                    "--no-commit-id",
                    "refs/vmr/pending/hv1^",
                    "refs/vmr/pending/hv1",
                )
            )

    hv1 = publisher(remote, tmp_path, "hv1")
    hv1._sleep = sleep_and_look
    result = hv1.publish(write_racing_once, "1 VM", fleet=FLEET, revision=revision)

    assert left == ["status/nodes/hv1.yaml"]
    assert result.committed and hv1.rejections == 1
    assert remote.show("status/nodes/hv1.yaml") == "up: true"
    assert remote.show("status/nodes/hv2.yaml") == "up: true"
    assert mailboxes(remote) == {}


def test_in_a_fleet_of_two_a_host_that_lost_pushes_again_itself(
    remote: Remote, tmp_path: Path
) -> None:
    """The host it lost to is the fleet's only other host, which has landed: nobody would
    carry a mailbox, so none is left and the host pushes again at once."""
    revision = remote.head()
    raced: list[int] = []
    waits: list[float] = []

    def write_racing_once(root: Path) -> list[Path]:
        if not raced:
            raced.append(1)
            remote.push_manifest("other.yaml", "race: 1\n")
        return node_file("hv2", "up: true\n")(root)

    left: list[dict[str, str]] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        left.append(mailboxes(remote))

    hv2 = publisher(remote, tmp_path, "hv2")
    hv2._sleep = sleep
    result = hv2.publish(write_racing_once, "1 VM", fleet=("hv1", "hv2"), revision=revision)

    assert result.committed and result.attempts == 2
    assert left == [{}]  # nothing was left for anyone while it waited
    assert remote.show("status/nodes/hv2.yaml") == "up: true"
    assert len(waits) == 1 and waits[0] < 1.0  # its turn came at once


def test_a_report_removed_in_a_mailbox_is_removed_with_its_emptied_folder(
    remote: Remote, tmp_path: Path
) -> None:
    """hv2 removed its last report of a namespace (the VM went): carried, the file and the
    folder it leaves empty go from the branch, and hv2's mailbox is emptied."""
    revision = remote.head()
    remote.commit({"status/virtualmachines/gone/vm-x.yaml": "vm: x\n"}, "status(hv2): vm-x")
    leave_in_mailbox(remote, "hv2", {"status/virtualmachines/gone/vm-x.yaml": None})

    hv1 = publisher(remote, tmp_path, "hv1")
    assert hv1.publish(node_file("hv1", "up: true\n"), "1", fleet=FLEET, revision=revision)

    assert "status/virtualmachines/gone/vm-x.yaml" not in remote.files()
    assert remote.show("status/nodes/hv1.yaml") == "up: true"
    assert mailboxes(remote) == {}
    assert not (tmp_path / "work-hv1" / "status" / "virtualmachines" / "gone").exists()
