"""Publishing status reports into a real bare remote: commit as the host, retry lost races."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.reports.publish import PublishError, StatusPublisher, _Turn
from reconciler.reports.tree import write_host_reports
from tests.gitrepos import Remote, git
from tests.reports.conftest import host, plan_of

Write = Callable[[Path], list[Path]]


def publisher(
    remote: Remote, tmp_path: Path, node: str = "hv1", *, branch: str = "main", attempts: int = 8
) -> StatusPublisher:
    """Host NODE's publisher, with a work dir of its own."""
    work_dir = tmp_path / f"work-{node}"
    return StatusPublisher(
        remote.url,
        branch,
        "status",
        node,
        work_dir,
        attempts=attempts,
        create_missing_branch=branch != remote.branch,
    )


def node_file(node: str, text: str) -> Write:
    """A write that puts `text` into status/nodes/NODE.yaml."""

    def write(root: Path) -> list[Path]:
        path = root / "nodes" / f"{node}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return []
        path.write_text(text, encoding="utf-8")
        return [path]

    return write


def test_first_publish_commits_as_the_host_with_skip_ci(remote: Remote, tmp_path: Path) -> None:
    result = publisher(remote, tmp_path).publish(node_file("hv1", "up: true\n"), "1 VM")

    assert result.committed
    assert result.commit == remote.head()
    log = git(remote.bare, "log", "-1", "--format=%an <%ae>%n%cn <%ce>%n%s", "main")
    assert log.splitlines() == [
        "vm-reconciler on hv1 <vm-reconciler@hv1>",
        "vm-reconciler on hv1 <vm-reconciler@hv1>",
        "status(hv1): 1 VM [skip ci]",
    ]
    assert remote.show("status/nodes/hv1.yaml") == "up: true"
    assert "vm.yaml" in remote.files()  # the manifests are untouched


def test_identical_second_publish_makes_no_commit(remote: Remote, tmp_path: Path) -> None:
    status = publisher(remote, tmp_path)
    status.publish(node_file("hv1", "up: true\n"), "1 VM")
    head = remote.head()

    result = status.publish(node_file("hv1", "up: true\n"), "1 VM")

    assert not result.committed
    assert result.commit is None
    assert remote.head() == head
    assert status.last_commit == head


def test_status_root_holds_the_fleets_latest_reports(remote: Remote, tmp_path: Path) -> None:
    publisher(remote, tmp_path, "hv2").publish(node_file("hv2", "up: true\n"), "hv2")
    status = publisher(remote, tmp_path, "hv1")

    status.publish(node_file("hv1", "up: true\n"), "hv1")

    assert (status.status_root / "nodes" / "hv2.yaml").read_text(encoding="utf-8") == "up: true\n"


def test_push_lost_to_a_concurrent_push_is_redone_on_the_new_head(
    remote: Remote, tmp_path: Path
) -> None:
    calls: list[Path] = []

    def write_racing(root: Path) -> list[Path]:
        if not calls:  # someone pushes between our fetch and our push
            remote.push_manifest("other.yaml", "kind: Other\n")
        calls.append(root)
        return node_file("hv1", "up: true\n")(root)

    result = publisher(remote, tmp_path).publish(write_racing, "1 VM")

    assert result.committed and result.attempts == 2
    assert len(calls) == 2  # the reports were written again on the fresh tree
    assert {"other.yaml", "vm.yaml", "status/nodes/hv1.yaml"} <= set(remote.files())
    assert git(remote.bare, "rev-parse", "main~1") == git(remote.author, "rev-parse", "HEAD")


def test_two_hosts_publishing_at_once_lose_no_report(remote: Remote, tmp_path: Path) -> None:
    rounds = 10
    failures: list[BaseException] = []

    def run(node: str) -> None:
        # With the daemon's default attempts: jittered backoff must keep two hosts
        # pushing in a tight loop from starving each other.
        status = publisher(remote, tmp_path, node)
        try:
            for number in range(rounds):
                written = write_both(node, number)
                assert status.publish(written, f"round {number}").committed
        except BaseException as error:  # a thread's failure is asserted by the test
            failures.append(error)

    threads = [threading.Thread(target=run, args=(node,)) for node in ("hv1", "hv2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures
    assert remote.show("status/nodes/hv1.yaml") == "round: 9"
    assert remote.show("status/nodes/hv2.yaml") == "round: 9"
    for node in ("hv1", "hv2"):
        subjects = git(remote.bare, "log", "--format=%s", "main", f"--author=on {node} ")
        assert len(subjects.splitlines()) == rounds
    hv1_vms = remote.show("status/virtualmachines/default/vm-hv1-9.yaml") or ""
    assert "nodeName: hv1" in hv1_vms
    assert "vm-hv2-9" in (remote.show("status/README.md") or "")


def write_both(node: str, number: int) -> Write:
    """The host's node file and its real VM reports (with the shared README)."""

    def write(root: Path) -> list[Path]:
        changed = write_host_reports(root, plan_of(node, f"vm-{node}-{number}"), host(node), "rev")
        return changed + node_file(node, f"round: {number}\n")(root)

    return write


def test_missing_status_branch_is_created_holding_only_status(
    remote: Remote, tmp_path: Path
) -> None:
    main = remote.head()
    status = publisher(remote, tmp_path, branch="status")

    first = status.publish(node_file("hv1", "up: true\n"), "1 VM")
    again = status.publish(node_file("hv1", "up: true\n"), "1 VM")
    changed = status.publish(node_file("hv1", "up: false\n"), "1 VM")

    assert first.committed and not again.committed and changed.committed
    assert remote.files("status") == ["status/nodes/hv1.yaml"]
    assert remote.head() == main
    assert git(remote.bare, "rev-parse", "status~1") == first.commit
    assert git(remote.bare, "rev-list", "--count", "status") == "2"


def test_half_done_earlier_attempt_is_discarded(remote: Remote, tmp_path: Path) -> None:
    status = publisher(remote, tmp_path)
    status.publish(node_file("hv1", "up: true\n"), "1 VM")
    # A daemon killed mid-pass: a stray file, an uncommitted edit, a held index lock.
    (status.status_root / "nodes" / "stray.yaml").write_text("x: 1\n", encoding="utf-8")
    (status.status_root / "nodes" / "hv1.yaml").write_text("half", encoding="utf-8")
    (status.work_dir / ".git" / "index.lock").write_text("", encoding="utf-8")
    head = remote.head()

    result = publisher(remote, tmp_path).publish(node_file("hv1", "up: true\n"), "1 VM")

    assert not result.committed
    assert remote.head() == head
    assert not (status.status_root / "nodes" / "stray.yaml").exists()


def test_a_write_that_failed_halfway_leaves_nothing_to_the_next_publish(
    remote: Remote, tmp_path: Path
) -> None:
    """The same process goes on after a pass that failed while writing its reports:
    what that write left (a file it never said it wrote) is not committed, and is gone
    after the next publish."""
    status = publisher(remote, tmp_path)
    status.publish(node_file("hv1", "up: true\n"), "1 VM")
    head = remote.head()

    def write_then_fail(root: Path) -> list[Path]:
        (root / "nodes" / "half.yaml").write_text("x: 1\n", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        status.publish(write_then_fail, "1 VM")
    result = status.publish(node_file("hv1", "up: false\n"), "1 VM")

    assert result.committed
    assert git(remote.bare, "rev-parse", "main~1") == head
    assert remote.show("status/nodes/half.yaml") is None
    assert not (status.status_root / "nodes" / "half.yaml").exists()
    assert remote.show("status/nodes/hv1.yaml") == "up: false"


def test_unreachable_remote_raises_a_readable_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.git"
    status = StatusPublisher(f"file://{missing}", "main", "status", "hv1", tmp_path / "work")

    with pytest.raises(PublishError) as raised:
        status.publish(node_file("hv1", "up: true\n"), "1 VM")

    message = str(raised.value)
    assert message.startswith(f"cannot fetch file://{missing} (main): ")
    assert "\n" not in message


def test_credentials_never_appear_in_the_error(tmp_path: Path) -> None:
    url = "https://user:s3cret@127.0.0.1:9/repo.git"  # port 9: nothing listens
    status = StatusPublisher(url, "main", "status", "hv1", tmp_path / "work", git_env={"A": "1"})

    with pytest.raises(PublishError) as raised:
        status.publish(node_file("hv1", "up: true\n"), "1 VM")

    assert "s3cret" not in str(raised.value)
    assert "https://127.0.0.1:9/repo.git" in str(raised.value)


def test_push_lost_every_time_gives_up_after_the_attempts(remote: Remote, tmp_path: Path) -> None:
    races: list[int] = []

    def write_always_racing(root: Path) -> list[Path]:
        races.append(len(races))
        remote.push_manifest("other.yaml", f"race: {len(races)}\n")
        return node_file("hv1", "up: true\n")(root)

    with pytest.raises(PublishError, match="rejected 3 times in a row"):
        publisher(remote, tmp_path, attempts=3).publish(write_always_racing, "1 VM")

    assert len(races) == 3
    assert remote.show("status/nodes/hv1.yaml") is None


def test_push_declined_by_the_remote_fails_at_once(remote: Remote, tmp_path: Path) -> None:
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'status pushes are closed' >&2\nexit 1\n", encoding="utf-8")
    hook.chmod(0o755)
    calls: list[Path] = []

    def write(root: Path) -> list[Path]:
        calls.append(root)
        return node_file("hv1", "up: true\n")(root)

    with pytest.raises(PublishError, match="cannot push to") as raised:
        publisher(remote, tmp_path).publish(write, "1 VM")

    assert len(calls) == 1
    message = str(raised.value)
    assert "pre-receive hook declined" in message
    assert "status pushes are closed" in message
    assert "\n" not in message


def test_a_followed_branch_deleted_on_the_remote_is_never_recreated(
    remote: Remote, tmp_path: Path
) -> None:
    status = publisher(remote, tmp_path)
    status.publish(node_file("hv1", "round: 1\n"), "1 VM")
    head = remote.head()
    git(remote.bare, "update-ref", "-d", "refs/heads/main")

    with pytest.raises(PublishError, match="the branch is not on the remote") as raised:
        status.publish(node_file("hv1", "round: 2\n"), "1 VM")

    assert remote.head() == "", "no push recreated the branch"
    assert "\n" not in str(raised.value)

    git(remote.bare, "update-ref", "refs/heads/main", head)
    back = status.publish(node_file("hv1", "round: 2\n"), "1 VM")

    assert back.committed
    assert git(remote.bare, "rev-parse", "main~1") == head
    assert "vm.yaml" in remote.files(), "the manifests are there as before"


def test_a_branch_deleted_between_fetch_and_push_is_not_recreated(
    remote: Remote, tmp_path: Path
) -> None:
    status = publisher(remote, tmp_path)

    def write_then_branch_deleted(root: Path) -> list[Path]:
        git(remote.bare, "update-ref", "-d", "refs/heads/main", check=False)
        return node_file("hv1", "up: true\n")(root)

    with pytest.raises(PublishError, match="the branch is not on the remote"):
        status.publish(write_then_branch_deleted, "1 VM")

    assert remote.head() == ""


def test_a_host_of_a_fleet_retries_as_often_as_its_fleet_needs(
    remote: Remote, tmp_path: Path
) -> None:
    """After a push, every host of the fleet publishes at once and may lose to each of
    the others: a fleet of four keeps retrying past the three attempts a host alone
    gets (test_push_lost_every_time_gives_up_after_the_attempts)."""
    revision = remote.head()
    fleet = ("hv1", "hv2", "hv3", "hv4")
    races: list[int] = []

    def write_racing_four_times(root: Path) -> list[Path]:
        if len(races) < 4:
            races.append(len(races))
            remote.push_manifest("other.yaml", f"race: {len(races)}\n")
        return node_file("hv1", "up: true\n")(root)

    status = publisher(remote, tmp_path, attempts=3)
    result = status.publish(write_racing_four_times, "1 VM", fleet=fleet, revision=revision)

    assert result.committed and result.attempts == 5
    assert status.rejections == 4
    assert remote.show("status/nodes/hv1.yaml") == "up: true"


def test_hosts_that_lost_a_race_take_turns_in_one_order(remote: Remote, tmp_path: Path) -> None:
    """Each host still to publish for the revision waits its own slot, in an order every
    host computes alike from the branch's history; a host that has published for it
    already has no turn (it backs off at random)."""
    revision = remote.head()
    fleet = ("hv1", "hv2", "hv3", "hv4")
    hosts = {node: publisher(remote, tmp_path, node) for node in fleet}
    hosts["hv2"].publish(node_file("hv2", "up: true\n"), "hv2", fleet=fleet, revision=revision)
    turns = {}
    for node, status in hosts.items():
        assert status.refresh()
        look = status._turn(status._env(), fleet, revision, fetch=True)
        turns[node] = _Turn(1.0).again(look) if look is not None else None

    assert turns.pop("hv2") is None
    slots = {node: int(turn) for node, turn in turns.items() if turn is not None}
    order = sorted(turns, key=lambda node: hashlib.sha256(f"{revision}/{node}".encode()).digest())
    assert slots == {node: rank for rank, node in enumerate(order)}
    # Without the revision (reports on a branch of their own) no history says who is
    # waiting.
    assert hosts["hv1"]._turn(hosts["hv1"]._env(), fleet, "", fetch=True) is None


def test_a_host_whose_turn_comes_after_silent_hosts_still_lands(
    remote: Remote, tmp_path: Path
) -> None:
    """A host that lost a race waits for the hosts ahead of it in the order; when none of
    them pushes (their passes are slow, or they are down) it goes once the branch stayed
    quiet, and a push that lands between its look at the branch and its own push only
    costs it one more race: its report lands, the other push is kept."""
    revision = remote.head()
    fleet = tuple(f"hv{number}" for number in range(1, 9))
    order = sorted(fleet, key=lambda node: hashlib.sha256(f"{revision}/{node}".encode()).digest())
    last = order[-1]  # seven hosts ahead of it, none of which ever pushes
    races: list[int] = []

    def write_racing_twice(root: Path) -> list[Path]:
        if len(races) < 2:
            races.append(len(races))
            remote.push_manifest("other.yaml", f"race: {len(races)}\n")
        return node_file(last, "up: true\n")(root)

    status = publisher(remote, tmp_path, last)
    result = status.publish(write_racing_twice, "1 VM", fleet=fleet, revision=revision)

    assert result.committed and result.attempts == 3
    assert status.rejections == 2
    assert remote.show(f"status/nodes/{last}.yaml") == "up: true"
    assert remote.show("other.yaml") == "race: 2"


def test_files_left_over_in_a_folder_git_ignores_are_discarded(
    remote: Remote, tmp_path: Path
) -> None:
    """What an earlier attempt left where Git does not look (an ignored file, a name with
    a space in an untracked folder) is removed before the next attempt writes."""
    remote.push_manifest(".gitignore", "*.tmp\n")
    status = publisher(remote, tmp_path)
    status.publish(node_file("hv1", "up: true\n"), "1 VM")
    ignored = status.status_root / "nodes" / "half written.tmp"
    ignored.write_text("x", encoding="utf-8")
    stray = status.status_root / "new folder" / "a report.yaml"
    stray.parent.mkdir()
    stray.write_text("x: 1\n", encoding="utf-8")

    result = publisher(remote, tmp_path).publish(node_file("hv1", "up: false\n"), "1 VM")

    assert result.committed
    assert not ignored.exists() and not stray.exists()
    assert remote.show("status/nodes/hv1.yaml") == "up: false"
    assert remote.show("status/new folder/a report.yaml") is None


def test_the_clone_holds_the_reports_not_the_manifests(remote: Remote, tmp_path: Path) -> None:
    """The publisher's clone checks out the status folder (and the files at the top),
    not the manifests' folders: a push that changes every manifest costs it nothing to
    write, and the reports still land beside them."""
    remote.push_manifest("vms/vm1.yaml", "kind: VirtualMachine\n")
    status = publisher(remote, tmp_path)
    status.publish(node_file("hv1", "up: true\n"), "1 VM")

    assert not (status.work_dir / "vms").exists()
    remote.push_manifest("vms/vm1.yaml", "kind: Changed\n")
    status.publish(node_file("hv1", "up: false\n"), "1 VM")

    assert not (status.work_dir / "vms").exists()
    assert remote.show("vms/vm1.yaml") == "kind: Changed"
    assert remote.show("status/nodes/hv1.yaml") == "up: false"
