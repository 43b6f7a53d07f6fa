"""One index of the status tree per pass (reports/status_index.py), with real clones of a
real remote: an event-fed pass on the publisher's clone lists nothing and reads only what
Git or this host changed, and still sees every change another host pushed; a tree that
is not a publisher's clone, and the interval's pass, are listed as they are now."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.plan import Plan
from reconciler.reports import status_index
from reconciler.reports.documents import check_reports, write_if_changed
from reconciler.reports.publish import StatusPublisher
from reconciler.reports.reported import reported_nodes
from reconciler.reports.scan import PerReport
from reconciler.reports.tree import write_host_reports
from tests.gitrepos import Remote, git
from tests.reports.conftest import host, plan_of, running, vm
from tests.reports.test_publish import publisher
from tests.reports.test_report_scan import REPORT


def report_path(name: str) -> str:
    return f"status/virtualmachines/default/{name}.yaml"


# What the process does to files under a folder, seen through Python's audit events:
# the folders it lists and the files it opens. An audit hook cannot be removed; it
# records only while a test watches.
_WATCHED: list[tuple[str, list[tuple[str, str]]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _WATCHED or event not in ("os.scandir", "open") or not args:
        return
    path = args[0]
    if isinstance(path, (str, os.PathLike)) and not isinstance(path, int):
        name = os.fspath(path)
        if isinstance(name, str) and name.startswith(_WATCHED[-1][0]):
            _WATCHED[-1][1].append((event, name))


sys.addaudithook(_audit)


@pytest.fixture
def watch() -> Iterator[list[tuple[str, list[tuple[str, str]]]]]:
    yield _WATCHED
    _WATCHED.clear()


def listed_and_opened(
    watch: list[tuple[str, list[tuple[str, str]]]], root: Path
) -> list[tuple[str, str]]:
    watch.append((os.fspath(root), []))
    return watch[-1][1]


def fleet(remote: Remote, tmp_path: Path) -> tuple[StatusPublisher, Path]:
    """hv1's publisher, its clone holding hv1's report of vm a and hv2's of vm b, listed
    by a first (full) pass."""
    remote.commit({report_path("b"): REPORT.format(name="b", node="hv2")}, "status(hv2)")
    hv1 = publisher(remote, tmp_path, "hv1")
    root = Path(hv1.status_root)
    with status_index.reading():
        hv1.publish(
            lambda root: write_host_reports(root, plan_of("hv1", "a"), host("hv1"), "r1"), ""
        )
    return hv1, root


def another_host_pushes(remote: Remote, files: dict[str, str | None]) -> None:
    git(remote.author, "pull", "--quiet", "--ff-only")
    remote.commit(files, "status(hv2): moved")


def test_a_report_another_host_pushed_is_seen_by_the_next_event_fed_pass(
    remote: Remote, tmp_path: Path, watch: list[tuple[str, list[tuple[str, str]]]]
) -> None:
    hv1, root = fleet(remote, tmp_path)
    # when hv2 pushes a new report, a changed one and removes one
    another_host_pushes(
        remote,
        {
            report_path("b"): None,
            report_path("c"): REPORT.format(name="c", node="hv2"),
            "status/virtualmachines/other/d.yaml": REPORT.format(name="d", node="hv3").replace(
                "namespace: default", "namespace: other"
            ),
        },
    )
    # then hv1's next event-fed pass sees all of it, having listed no folder
    seen = listed_and_opened(watch, root)
    with status_index.reading(kept=[root]):
        assert hv1.refresh()
        nodes = reported_nodes(root)
        check_reports(root)
    assert nodes == {
        vm("a"): "hv1",
        vm("c"): "hv2",
        vm("d", "other"): "hv3",
    }
    assert [event for event, _name in seen if event == "os.scandir"] == []
    # and the only reports it opened are the ones Git changed
    opened = sorted(name for event, name in seen if event == "open" and name.endswith(".yaml"))
    assert opened == [
        str(root / "virtualmachines/default/c.yaml"),
        str(root / "virtualmachines/other/d.yaml"),
    ]


def test_a_report_this_host_wrote_is_not_read_again(
    remote: Remote, tmp_path: Path, watch: list[tuple[str, list[tuple[str, str]]]]
) -> None:
    hv1, root = fleet(remote, tmp_path)
    # when an event-fed pass writes hv1's report anew (another core) and publishes it
    seen = listed_and_opened(watch, root)
    with status_index.reading(kept=[root]):
        plan = Plan(statuses={vm("a"): running("hv1", cores=2)})
        hv1.publish(lambda root: write_host_reports(root, plan, host("hv1"), "r2"), "cores")
        nodes = reported_nodes(root)
        check_reports(root)
    # then its report, once written, is not opened again (before, the earlier report
    # was read for its condition times), and no folder is listed
    a = str(root / "virtualmachines/default/a.yaml")
    opened = [name for event, name in seen if event == "open"]
    assert nodes == {vm("a"): "hv1", vm("b"): "hv2"}
    assert "cores: 2" in Path(a).read_text(encoding="utf-8")
    written = len(opened) - opened[::-1].index(a + ".tmp")
    assert a not in opened[written:]
    assert [event for event, _name in seen if event == "os.scandir"] == []


def test_a_symlinked_report_another_host_pushed_is_refused(remote: Remote, tmp_path: Path) -> None:
    hv1, root = fleet(remote, tmp_path)
    # when hv2 pushes a report that is a symlink to a host file, and a namespace folder
    # that is a symlink to a folder of reports outside the tree
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "e.yaml").write_text(REPORT.format(name="e", node="hv1"), encoding="utf-8")
    git(remote.author, "pull", "--quiet", "--ff-only")
    folder = remote.author / "status/virtualmachines"
    os.symlink(outside / "e.yaml", folder / "default" / "e.yaml")
    os.symlink(outside, folder / "evil")
    remote.commit({}, "status(hv2): links")
    # then hv1's next event-fed pass uses neither, though both files are what a report is
    with status_index.reading(kept=[root]):
        assert hv1.refresh()
        assert (root / "virtualmachines" / "evil").is_symlink()
        assert reported_nodes(root) == {vm("a"): "hv1", vm("b"): "hv2"}
    # and neither does the full pass
    with status_index.reading():
        assert reported_nodes(root) == {vm("a"): "hv1", vm("b"): "hv2"}


def test_the_interval_pass_sees_a_report_rewritten_behind_the_index(
    remote: Remote, tmp_path: Path
) -> None:
    _hv1, root = fleet(remote, tmp_path)
    # when a report in the clone is rewritten in place, by nothing that tells the index
    (root / "virtualmachines/default/b.yaml").write_text(
        REPORT.format(name="b", node="hv9"), encoding="utf-8"
    )
    # then an event-fed pass trusts the index (what it says is what Git and this host left)
    with status_index.reading(kept=[root]):
        assert reported_nodes(root)[vm("b")] == "hv2"
    # and the interval's pass (which keeps nothing) lists the tree and sees it
    with status_index.reading():
        assert reported_nodes(root)[vm("b")] == "hv9"


def test_a_fetch_that_fails_leaves_the_index_untrusted(remote: Remote, tmp_path: Path) -> None:
    hv1, root = fleet(remote, tmp_path)
    (root / "virtualmachines/default/b.yaml").write_text(
        REPORT.format(name="b", node="hv9"), encoding="utf-8"
    )
    remote.bare.rename(tmp_path / "gone.git")
    # when the refresh of an event-fed pass cannot say what it changed
    with status_index.reading(kept=[root]):
        assert not hv1.refresh()
        nodes = reported_nodes(root)
    # then the tree is listed as it is now
    assert nodes[vm("b")] == "hv9"


def test_a_hand_edit_in_a_tree_no_publisher_keeps_is_seen_by_the_next_pass(
    tmp_path: Path,
) -> None:
    root = tmp_path / "status"
    path = root / "virtualmachines" / "default" / "a.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(REPORT.format(name="a", node="hv1"), encoding="utf-8")
    with status_index.reading():
        assert reported_nodes(root) == {vm("a"): "hv1"}
    # when an operator edits the report in place and adds another
    path.write_text(REPORT.format(name="a", node="hv2"), encoding="utf-8")
    (path.parent / "b.yaml").write_text(REPORT.format(name="b", node="hv1"), encoding="utf-8")
    # then the next pass (a command, or a daemon pass on a tree that is not its clone) sees both
    with status_index.reading():
        assert reported_nodes(root) == {vm("a"): "hv2", vm("b"): "hv1"}
    # and so does a reader outside any pass
    assert reported_nodes(root) == {vm("a"): "hv2", vm("b"): "hv1"}


def test_a_reader_follows_the_changes_it_is_told_of_and_derives_only_those(
    tmp_path: Path,
) -> None:
    # given three reports a reader derived a value from, in a pass that lists the tree
    root = tmp_path / "status"
    folder = root / "virtualmachines" / "default"
    folder.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (folder / f"{name}.yaml").write_text(f"{name}1\n", encoding="utf-8")
    derived: list[str] = []

    def text_of(path: Path) -> str:
        derived.append(path.stem)
        return path.read_text(encoding="utf-8").strip()

    reader = PerReport(text_of)
    with status_index.reading():
        reader.over(root / "virtualmachines")
    derived.clear()
    # when a later pass that keeps the index rewrites one report, then adds one
    with status_index.reading(kept=[root]):
        write_if_changed(folder / "b.yaml", "b2\n")
        rewritten = reader.over(root / "virtualmachines")
        write_if_changed(folder / "d.yaml", "d1\n")
        added = reader.over(root / "virtualmachines")
    # then only those are derived again, and each listing is the folder as it is
    assert derived == ["b", "d"]
    assert [value for _name, value in rewritten] == ["a1", "b2", "c1"]
    assert [value for _name, value in added] == ["a1", "b2", "c1", "d1"]
