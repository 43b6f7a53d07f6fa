"""A host of a fleet reads the other hosts' latest reports before it plans
(StatusPublisher.refresh): its own last publish is not the fleet's last word."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.gitrepos import Remote
from tests.reports.test_publish import node_file, publisher


def test_refresh_brings_in_what_another_host_pushed_since(remote: Remote, tmp_path: Path) -> None:
    hv1 = publisher(remote, tmp_path, "hv1")
    hv1.publish(node_file("hv1", "up: true\n"), "1 VM")
    publisher(remote, tmp_path, "hv2").publish(node_file("hv2", "up: true\n"), "1 VM")

    assert hv1.refresh()

    assert (Path(hv1.status_root) / "nodes" / "hv2.yaml").read_text(encoding="utf-8") == (
        "up: true\n"
    )


def test_a_refresh_that_cannot_fetch_leaves_the_reports_as_they_were(
    remote: Remote, tmp_path: Path
) -> None:
    hv1 = publisher(remote, tmp_path, "hv1")
    hv1.publish(node_file("hv1", "up: true\n"), "1 VM")
    shutil.rmtree(remote.bare)

    assert not hv1.refresh()

    assert (Path(hv1.status_root) / "nodes" / "hv1.yaml").read_text(encoding="utf-8") == (
        "up: true\n"
    )
