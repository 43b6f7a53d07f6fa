"""The longest name of every kind through a live `reconciler run` (issue 12, row 7).

With a VirtualDisk name of 253 characters the daemon's pass died writing its report
(`File name too long`) and it pushed no status at all any more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests import longest_names as longest
from tests.daemonlab import Daemon, Remote, Workspace, settings, wait_until


def remote_reports(remote: Remote) -> dict[tuple[str, str, str], Any]:
    """Every report in the remote's status/ by the identity its metadata gives."""
    found = {}
    for path in remote.files():
        if path.startswith("status/") and path.endswith(".yaml"):
            document = remote.document(path)
            if isinstance(document, dict) and isinstance(document.get("metadata"), dict):
                metadata = document["metadata"]
                found[(document["kind"], metadata.get("namespace", ""), metadata["name"])] = (
                    document
                )
    return found


def test_the_daemon_reports_every_object_with_the_longest_names(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    image = longest.write_image(tmp_path / "image.raw")
    operator.write("all.yaml", longest.manifests(image))
    operator.commit_and_push("every kind with its longest name")
    cidrs = {"virtualMachineCIDRs": [longest.CIDR], "imageDirectories": [str(tmp_path)]}
    daemon = Daemon(tmp_path / "hv", settings(remote, longest.NODE, **cidrs))
    daemons.append(daemon)

    daemon.start()
    daemon.wait_ready()

    def all_reported() -> dict[tuple[str, str, str], Any] | None:
        daemon.check_alive()
        reports = remote_reports(remote)
        return reports if set(reports) >= longest.REPORTED else None

    reports = wait_until("a report of every object", all_reported, 60, interval=0.3)
    vm = reports[("VirtualMachine", longest.NAMESPACE, longest.VM)]
    assert vm["status"]["phase"] == "Running"
    node = reports[("Node", "", longest.NODE)]
    assert node["status"].get("lastError", "") == ""
    assert "File name too long" not in daemon.log_text()
    assert daemon.get("/healthz")[0] == 200
