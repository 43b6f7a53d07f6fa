"""A live `reconciler run` given a revision that names host files (issue 12, rows 4 and
5): a committed symlink to a host secret and an image outside the allowed directories.
The daemon applies the rest of the revision, holds its deletions back, and neither its
log nor the status it pushes holds anything of those files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.daemon.test_daemon_process import vm_reports
from tests.daemonlab import Daemon, Remote, Workspace, settings, wait_until
from tests.hosts import vm_yaml
from tests.libvirt.test_host_files import IMAGE, SECRET, SECRET_TEXT, vm_from


def status_tree_text(remote: Remote) -> str:
    return subprocess.run(
        ["git", "grep", "-h", "-e", ".", remote.branch, "--", "status/"],
        cwd=remote.path,
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def test_a_poisoned_revision_is_applied_but_for_its_host_files(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "ubuntu.raw").write_bytes(b"\1" * 4096)
    secrets = tmp_path / "etc"
    secrets.mkdir()
    (secrets / "shadow").write_text(SECRET_TEXT, encoding="utf-8")
    (secrets / "deploy-key").write_text(SECRET_TEXT, encoding="utf-8")
    operator.write("images.yaml", IMAGE.format(name="ubuntu", url=f"file://{images}/ubuntu.raw"))
    operator.write("vms/a.yaml", vm_from("a", "ubuntu"))
    operator.write("vms/b.yaml", vm_yaml(name="b"))
    operator.commit_and_push("two VMs")
    daemon = Daemon(tmp_path / "hv", settings(remote, "hv", imageDirectories=[str(images)]))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    wait_until(
        "a and b Running",
        lambda: {vm_reports(remote).get(n, {}).get("phase") for n in "ab"} == {"Running"},
        30,
    )

    (operator.path / "vms" / "b.yaml").unlink()  # a deletion the revision must hold back
    (operator.path / "vms" / "x.yaml").symlink_to(secrets / "deploy-key")
    operator.write("shadow.yaml", IMAGE.format(name="shadow", url=f"file://{secrets}/shadow"))
    operator.write("vms/d.yaml", vm_from("d", "shadow"))
    operator.write("vms/e.yaml", vm_yaml(name="e"))
    poisoned = operator.commit_and_push("a symlink to a host secret, an image outside")
    daemon.push_hook()

    def applied() -> bool:
        node = remote.document("status/nodes/hv.yaml")
        return bool(node) and node["status"]["lastAppliedRevision"] == poisoned

    wait_until("the poisoned revision's pass", applied, 30)
    wait_until("e Running", lambda: vm_reports(remote).get("e", {}).get("phase") == "Running", 30)
    reports = vm_reports(remote)
    assert reports["b"]["phase"] == "Running", "its deletion is held back"
    assert reports["d"]["phase"] == "Pending"
    [blocked] = [c for c in reports["d"]["conditions"] if c["type"] == "BlockDevicesReady"]
    assert "not a file inside the allowed image directories" in blocked["message"]
    log, pushed = daemon.log_text(), status_tree_text(remote)
    assert pushed
    for text in (log, pushed):
        assert SECRET not in text
        assert str(secrets / "deploy-key") not in text
    assert daemon.terminate() == 0
