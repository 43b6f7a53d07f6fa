"""A live `reconciler run` whose status/ someone poisoned (issue 12, row 2): reports
10,000 deep, 3,000 deep or an alias bomb, pushed next to a new VM. The daemon stays up,
reconciles the revision, names each bad report it keeps in the node report's lastError
and /healthz, logs each once, and forgets it once it is removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.daemon.test_daemon_process import one_vm_host
from tests.daemonlab import Daemon, Remote, Workspace, git, wait_until
from tests.hostile_yaml import alias_bomb, deep_mapping, deep_sequence
from tests.hosts import vm_yaml

POISONED = {
    "status/nodes/hv-other.yaml": (deep_mapping(3_000), "1:400"),
    "status/virtualmachineipaddressleases/ip-10-66-10-99.yaml": (alias_bomb(9, 10), "4:5"),
}
# The report of a VM that is in no manifest: stale, so the host removes it, bad or not.
INTRUDER = "status/virtualmachines/default/intruder.yaml"


def _phase(remote: Remote, vm: str) -> str:
    # One report at a time: the test's own YAML reader has no limits to survive the rest.
    document: dict[str, Any] | None = remote.document(f"status/virtualmachines/default/{vm}.yaml")
    return str(document["status"].get("phase", "")) if document else ""


def _last_error(remote: Remote) -> str:
    document: dict[str, Any] | None = remote.document("status/nodes/hv.yaml")
    return str(document["status"]["lastError"]) if document else ""


def test_poisoned_reports_are_named_and_the_revision_is_still_reconciled(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    daemon = one_vm_host(remote, operator, daemons, tmp_path, run_policy="AlwaysOn")
    wait_until("vm Running", lambda: _phase(remote, "vm") == "Running", 30)

    # Given poisoned reports pushed beside a new VM
    for relative, (text, _) in POISONED.items():
        operator.write(relative, text)
    operator.write(INTRUDER, deep_sequence(10_000))
    operator.write("vms/vm-new.yaml", vm_yaml(name="vm-new", run_policy="AlwaysOn"))
    operator.commit_and_push("a new VM, and poisoned reports")
    daemon.push_hook()

    # Then the new VM runs, and the node report and /healthz name each bad report
    wait_until("vm-new Running", lambda: _phase(remote, "vm-new") == "Running", 60)
    expected = [f"report skipped: {path}:{place}: " for path, (_, place) in POISONED.items()]
    wait_until(
        "lastError naming both reports",
        lambda: all(part in _last_error(remote) for part in expected),
        60,
    )
    assert all(part in daemon.health()["lastError"] for part in expected)
    assert INTRUDER not in remote.files()
    daemon.check_alive()
    log = daemon.log_text()
    for path, (_, place) in [*POISONED.items(), (INTRUDER, ("", "1:103"))]:
        assert log.count(f"{path.removeprefix('status/')}:{place}") == 1, log
    assert "Traceback" not in log

    # When they are removed, they are no longer named
    git(operator.path, "rm", "--quiet", *POISONED)
    operator.commit_and_push("poisoned reports removed")
    daemon.push_hook()
    wait_until("an empty lastError", lambda: _last_error(remote) == "", 60)
    assert daemon.terminate() == 0
