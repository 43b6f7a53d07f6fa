"""A live `reconciler run` given what an attacker or an accident puts in its way (issue 12):
a poisoned revision, a pass that raises, an unreadable file beside a deletion, the
followed branch deleted on the remote, a remote that refuses the host's pushes.

The daemon stays up through all of them, reconciles what it can, and says what is
wrong where an operator looks: /healthz (503 with its reasons), the node report's
lastError, the journal (once, not at every pass).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.daemon.test_daemon_process import one_vm_host, vm_reports
from tests.daemonlab import Daemon, Remote, Workspace, git, settings, wait_until
from tests.hosts import host_with_domain_of, vm_yaml

# Files nobody can load, each hostile in its own way (rows 1 and 6 of the issue).
HOSTILE = {
    "hostile/deep-list.yaml": "a: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "hostile/deep-mapping.yaml": "a: " + "{a: " * 3_000 + "1" + "}" * 3_000 + "\n",
    "hostile/broken.yaml": "kind: VirtualMachine\nspec: [unclosed\n",
}
NOT_UTF8 = "hostile/not-utf8.yaml"


def node_status(remote: Remote, node: str = "hv") -> dict[str, Any]:
    document = remote.document(f"status/nodes/{node}.yaml")
    return dict(document["status"]) if document else {}


def health(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    code, _body = daemon.get("/healthz")
    return code, daemon.health()


def unhealthy_saying(daemon: Daemon, *words: str) -> dict[str, Any] | None:
    """/healthz's document once it is a 503 with one reason holding every word."""
    code, document = health(daemon)
    reasons = document.get("reasons", [])
    if code == 503 and any(all(word in reason for word in words) for reason in reasons):
        return document
    return None


def healthy(daemon: Daemon) -> dict[str, Any] | None:
    code, document = health(daemon)
    return document if code == 200 and document["healthy"] and not document["reasons"] else None


def pushed(operator: Workspace, daemon: Daemon, message: str) -> str:
    sha = operator.commit_and_push(message)
    daemon.push_hook()
    return sha


def test_a_poisoned_revision_reconciles_its_other_objects_and_names_the_bad_files(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    daemon = one_vm_host(remote, operator, daemons, tmp_path, run_policy="AlwaysOn")
    wait_until("vm Running", lambda: vm_reports(remote).get("vm", {}).get("phase") == "Running", 30)

    # Given one push with every hostile file at once, a new VM and a change to vm
    for name, text in HOSTILE.items():
        operator.write(name, text)
    (operator.path / NOT_UTF8).write_bytes(b"kind: \xff\xfe\x00 VirtualMachine\n")
    operator.write("vms/vm-new.yaml", vm_yaml(name="vm-new", run_policy="AlwaysOn"))
    operator.write(
        "vms/vm.yaml", vm_yaml(name="vm", run_policy="AlwaysOn", cores=2, approval="Automatic")
    )
    pushed(operator, daemon, "a poisoned revision")

    # Then the daemon stays up and reconciles the rest of the revision
    def reconciled() -> bool:
        reports = vm_reports(remote)
        vm, new = reports.get("vm", {}), reports.get("vm-new", {})
        return (
            new.get("phase") == "Running"
            and vm.get("resources", {}).get("cpu", {}).get("cores") == 2
            and not vm.get("restartAwaitingChanges")
        )

    wait_until("vm-new Running and vm with two cores", reconciled, 60, interval=0.3)
    daemon.check_alive()
    # ... and says which files it could not read, in /healthz and in the node report
    bad_files = [*HOSTILE, NOT_UTF8]
    document = wait_until(
        "healthz naming the bad files", lambda: unhealthy_saying(daemon, *bad_files), 30
    )
    assert document["healthy"] is False
    last_error = node_status(remote)["lastError"]
    assert all(name in last_error for name in bad_files), last_error

    # When the files are removed
    git(operator.path, "rm", "-r", "--quiet", "hostile")
    pushed(operator, daemon, "hostile files removed")

    # Then it is healthy again, and so is its report
    wait_until("healthz 200", lambda: healthy(daemon), 30)
    wait_until("an empty lastError", lambda: node_status(remote).get("lastError") == "", 30)
    daemon.check_alive()
    assert daemon.terminate() == 0


def test_a_deletion_waits_while_the_revision_has_an_unreadable_file(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    operator.write("vms/vm-b.yaml", vm_yaml(name="vm-b", run_policy="AlwaysOn"))
    daemon = one_vm_host(remote, operator, daemons, tmp_path, run_policy="AlwaysOn")
    wait_until("vm-b Running", lambda: vm_reports(remote).get("vm-b", {}).get("phase"), 30)

    # Given vm-b's manifest deleted in the same push that adds a file that does not parse
    (operator.path / "vms" / "vm-b.yaml").unlink()
    operator.write("vms/broken.yaml", "kind: VirtualMachine\nspec: [unclosed\n")
    broken = pushed(operator, daemon, "vm-b deleted, and a broken file")

    # Then vm-b is kept, and the host says why everywhere an operator looks
    wait_until(
        "the broken revision's pass",
        lambda: node_status(remote).get("lastAppliedRevision") == broken,
        30,
    )
    reason = f"revision {broken[:12]} has 1 unreadable file(s), so nothing is deleted"
    assert (
        reason + " (1 deletion(s) held back): vms/broken.yaml:3:"
        in node_status(remote)["lastError"]
    )
    wait_until("healthz naming it", lambda: unhealthy_saying(daemon, reason, "vms/broken.yaml"), 15)
    assert "reconciler_deletions_held_back 1.0" in daemon.get("/metrics")[1]
    wait_until(
        "one more pass of it",
        lambda: f"pass (interval) at {broken[:12]}" in daemon.log_text(),
        15,
    )
    log = daemon.log_text()
    assert "undefine vm-b" not in log
    assert len([line for line in log.splitlines() if reason in line]) == 1, "one log line"

    # When the file is fixed
    (operator.path / "vms" / "broken.yaml").unlink()
    pushed(operator, daemon, "broken file removed")

    # Then the deletion happens and the host is healthy again
    wait_until("vm-b undefined", lambda: "undefine vm-b.default" in daemon.log_text(), 30)
    wait_until("healthz 200", lambda: healthy(daemon), 30)
    assert "reconciler_deletions_held_back 0.0" in daemon.get("/metrics")[1]
    assert daemon.terminate() == 0


def test_a_pass_that_raises_is_reported_once_and_the_next_revision_goes_through(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    # Given a host where someone edited the baseline of an old VM by hand into one the
    # planner cannot read, and a revision without that VM: planning its deletion raises
    host_xml = host_with_domain_of(
        tmp_path / "host.xml", "gone", {"terminationGracePeriodSeconds": "soon"}
    )
    operator.write("vms/vm.yaml", vm_yaml(name="vm", run_policy="AlwaysOn"))
    first = operator.commit_and_push("one VM")
    daemon = Daemon(tmp_path / "hv", settings(remote, "hv", libvirtUri=f"test://{host_xml}"))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()

    # Then every pass fails, and the daemon stays up saying where, at which revision
    failure = f"engine at revision {first[:12]}: ValueError"
    wait_until("healthz naming the failure", lambda: unhealthy_saying(daemon, failure), 30)
    wait_until(
        "the failure in the node report",
        lambda: failure in node_status(remote).get("lastError", ""),
        30,
    )
    wait_until(
        "two more failed interval passes",
        lambda: daemon.log_text().count("failed again in engine") >= 2,
        30,
    )
    daemon.check_alive()
    assert daemon.log_text().count("Traceback") == 1, "the traceback is logged once"

    # When the next revision is pushed (gone has a manifest again: no deletion to plan)
    operator.write("vms/gone.yaml", vm_yaml(name="gone", run_policy="AlwaysOff"))
    second = pushed(operator, daemon, "gone is back")

    # Then it is applied as usual and the failure is gone from /healthz
    wait_until(
        "the next revision applied",
        lambda: node_status(remote).get("lastAppliedRevision") == second,
        30,
    )
    wait_until("vm Running", lambda: vm_reports(remote).get("vm", {}).get("phase") == "Running", 30)
    reasons = daemon.health()["reasons"]
    assert not [reason for reason in reasons if reason.startswith("pass failed")], reasons
    assert daemon.terminate() == 0


def test_the_followed_branch_deleted_on_the_remote_is_never_recreated(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    daemon = one_vm_host(remote, operator, daemons, tmp_path, run_policy="AlwaysOn")
    wait_until("a status commit", remote.status_commits, 30)

    # Given the branch deleted on the remote
    git(remote.path, "update-ref", "-d", "refs/heads/main")
    daemon.push_hook()

    # Then the host says so, and no pass pushes the branch back
    wait_until("healthz naming it", lambda: unhealthy_saying(daemon, "not on the remote"), 30)
    wait_until(
        "three passes without the branch",
        lambda: daemon.log_text().count("the branch is not on the remote") >= 3,
        30,
    )
    assert remote.head() == "", "no push recreated the branch"
    daemon.check_alive()
    assert "couldn't find remote ref" in daemon.health()["source"]

    # When the branch is pushed back
    git(operator.path, "push", "--quiet", "origin", "HEAD:main")
    daemon.push_hook()

    # Then the host follows it again and publishes on top of it
    wait_until("healthz 200", lambda: healthy(daemon), 30)
    assert "vms/vm.yaml" in remote.files()
    assert remote.document("status/nodes/hv.yaml") is not None
    assert daemon.terminate() == 0


def test_a_refused_status_push_makes_the_host_unhealthy_until_one_lands(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    # Given a remote that refuses every push (a protected branch, a full disk)
    operator.write("vms/vm.yaml", vm_yaml(name="vm", run_policy="AlwaysOn"))
    operator.commit_and_push("one VM")
    hook = remote.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are closed' >&2\nexit 1\n", encoding="utf-8")
    hook.chmod(0o755)
    daemon = Daemon(tmp_path / "hv", settings(remote, "hv"))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()

    # Then /healthz says the status is not pushed, and why
    document = wait_until(
        "healthz naming the refused push",
        lambda: unhealthy_saying(daemon, "status not pushed", "pushes are closed"),
        30,
    )
    assert document["libvirt"] == "ok"
    assert not remote.status_commits()

    # When the remote takes pushes again
    hook.unlink()

    # Then the next pass pushes its reports and the host is healthy
    wait_until("a status commit", remote.status_commits, 30)
    wait_until("healthz 200", lambda: healthy(daemon), 30)
    assert daemon.terminate() == 0
