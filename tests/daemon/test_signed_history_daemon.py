"""`reconciler run` with repository.verify on the test driver: only signed history is
applied, the hosts sign their own status commits, and a refused head is shown in /healthz,
the node report, the metrics and one log line. Real SSH signatures, made by git."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_daemon_process import NODE, vm_reports
from tests.daemonlab import Daemon, Remote, Workspace, git, settings, wait_until
from tests.hostile_yaml import deep_mapping
from tests.hosts import vm_yaml
from tests.signing import SigningKey, allowed_signers

ONE_CORE = vm_yaml(name="vm", run_policy="AlwaysOn")
TWO_CORES = vm_yaml(name="vm", run_policy="AlwaysOn", cores=2, approval="Automatic")


@dataclass(frozen=True)
class Fleet:
    operator_key: SigningKey
    host_keys: dict[str, SigningKey]
    allowed: Path
    hosts: Path

    def settings(self, remote: Remote, node: str) -> dict[str, Any]:
        config = settings(remote, node)
        config["repository"] = {
            **config["repository"],
            "signingKeyFile": str(self.host_keys[node].path),
            "verify": {"allowedSigners": str(self.allowed), "hostSigners": str(self.hosts)},
        }
        return config


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    keys = tmp_path / "keys"
    operator = SigningKey.create(keys, "operator@example.com")
    hosts = {node: SigningKey.create(keys, node) for node in ("hv", "hv-a", "hv-b")}
    return Fleet(
        operator,
        hosts,
        allowed_signers(tmp_path / "trust" / "allowed_signers", operator),
        allowed_signers(tmp_path / "trust" / "host_signers", *hosts.values()),
    )


def cores(remote: Remote, name: str = "vm") -> int | None:
    report = vm_reports(remote).get(name, {})
    return report.get("resources", {}).get("cpu", {}).get("cores")


def verifying_host(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path, fleet: Fleet
) -> Daemon:
    """One VM of one core, committed signed and reported Running by host `hv`."""
    operator.write("vms/vm.yaml", ONE_CORE)
    operator.commit_and_push("one VM", fleet.operator_key.config)
    daemon = Daemon(tmp_path / "hv", fleet.settings(remote, "hv"))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    wait_until(
        "vm Running with one core",
        lambda: vm_reports(remote).get("vm", {}).get("phase") == "Running" and cores(remote) == 1,
        60,
        interval=0.3,
    )
    return daemon


def unsigned_change(operator: Workspace) -> str:
    operator.write("vms/vm.yaml", TWO_CORES)
    return operator.commit_and_push("two cores, unsigned")


def refused(daemon: Daemon) -> dict[str, Any] | None:
    """/healthz's answer once it says the head is not applied."""
    health = daemon.health()
    return health if any("head not applied" in r for r in health["reasons"]) else None


def test_an_unsigned_manifest_commit_is_not_applied_and_the_vm_stays_as_it_was(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path, fleet: Fleet
) -> None:
    daemon = verifying_host(remote, operator, daemons, tmp_path, fleet)

    unsigned = unsigned_change(operator)
    daemon.push_hook()
    health = wait_until("/healthz naming the unsigned commit", lambda: refused(daemon), 30)
    node = wait_until(
        "the node report naming the unsigned commit",
        lambda: (
            unsigned[:12] in str((remote.document("status/nodes/hv.yaml") or {}).get("status"))
            and remote.document("status/nodes/hv.yaml")
        ),
        30,
        interval=0.3,
    )
    for _ in range(3):  # more passes that find the same refused head
        daemon.push_hook()

    assert daemon.get("/healthz")[0] == 503
    assert health["reasons"][0].startswith(
        f"head not applied: commit {unsigned[:12]} (unsigned) changes vms/vm.yaml:"
        " it needs an allowed signer; serving "
    )
    assert unsigned[:12] in node["status"]["lastError"]
    assert node["status"]["lastAppliedRevision"] != unsigned
    assert cores(remote) == 1
    assert "reconciler_unverified_revision 1.0" in daemon.get("/metrics")[1]
    assert daemon.log_text().count(f"not applied: commit {unsigned[:12]}") == 1
    assert daemon.terminate() == 0


def test_signing_the_refused_commit_makes_the_host_apply_it(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path, fleet: Fleet
) -> None:
    daemon = verifying_host(remote, operator, daemons, tmp_path, fleet)
    unsigned_change(operator)
    daemon.push_hook()
    wait_until("the head refused", lambda: refused(daemon), 30)

    git(operator.path, *fleet.operator_key.config, "commit", "--quiet", "--amend", "--no-edit")
    git(operator.path, "push", "--quiet", "--force", "origin", "HEAD:main")
    signed = git(operator.path, "rev-parse", "HEAD")
    daemon.push_hook()

    wait_until("vm reported with two cores", lambda: cores(remote) == 2, 60, interval=0.3)
    node = remote.document("status/nodes/hv.yaml")
    assert node is not None and node["status"]["lastAppliedRevision"] == signed
    wait_until("/healthz healthy again", lambda: daemon.get("/healthz")[0] == 200, 30)
    assert "reconciler_unverified_revision 0.0" in daemon.get("/metrics")[1]
    assert daemon.terminate() == 0


def test_a_signed_revert_of_the_refused_commit_makes_the_host_apply_the_head(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path, fleet: Fleet
) -> None:
    daemon = verifying_host(remote, operator, daemons, tmp_path, fleet)
    unsigned_change(operator)
    daemon.push_hook()
    wait_until("the head refused", lambda: refused(daemon), 30)

    operator.write("vms/vm.yaml", ONE_CORE)
    head = operator.commit_and_push("back to one core", fleet.operator_key.config)
    daemon.push_hook()

    wait_until(
        "the revert applied",
        lambda: (
            (remote.document("status/nodes/hv.yaml") or {})
            .get("status", {})
            .get("lastAppliedRevision")
            == head
        ),
        60,
        interval=0.3,
    )
    wait_until("/healthz healthy again", lambda: daemon.get("/healthz")[0] == 200, 30)
    assert cores(remote) == 1
    assert daemon.terminate() == 0


def test_a_force_push_to_an_unsigned_head_is_refused_with_the_reason_in_healthz(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path, fleet: Fleet
) -> None:
    daemon = verifying_host(remote, operator, daemons, tmp_path, fleet)

    # The operator's only commit, rewritten: a new root that shares no history.
    operator.write("vms/vm.yaml", TWO_CORES)
    git(operator.path, "add", "-A")
    git(operator.path, "commit", "--quiet", "--amend", "-m", "rewritten", "--no-gpg-sign")
    git(operator.path, "push", "--quiet", "--force", "origin", "HEAD:main")
    daemon.push_hook()

    health = wait_until("/healthz refusing the rewritten history", lambda: refused(daemon), 30)
    assert daemon.get("/healthz")[0] == 503
    assert "no longer contains the last verified revision" in health["reasons"][0]
    assert "(unsigned)" in health["reasons"][0]
    # Reported again on top of the rewritten branch, as the verified revision has it.
    wait_until("vm reported with one core", lambda: cores(remote) == 1, 30, interval=0.3)
    assert daemon.terminate() == 0


def test_two_verifying_hosts_sign_their_reports_and_accept_each_others(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path, fleet: Fleet
) -> None:
    for node in ("hv-a", "hv-b"):
        operator.write(f"nodes/{node}.yaml", NODE.format(name=node))
    names = [f"vm-{n}" for n in range(6)]
    for name in names:
        operator.write(f"vms/{name}.yaml", vm_yaml(name=name, run_policy="AlwaysOn"))
    operator.commit_and_push("a fleet of two hosts and six VMs", fleet.operator_key.config)

    for node in ("hv-a", "hv-b"):
        daemons.append(Daemon(tmp_path / node, fleet.settings(remote, node)))
    for daemon in daemons:
        daemon.start()
    for daemon in daemons:
        daemon.wait_ready()

    def complete_readme() -> str | None:
        readme = remote.show("status/README.md") or ""
        reports = vm_reports(remote)
        listed = all(f"| {name} |" in readme for name in names)
        running = set(reports) == set(names) and all(
            r.get("phase") == "Running" for r in reports.values()
        )
        return readme if listed and running else None

    readme = wait_until("every VM in the README table", complete_readme, 90, interval=0.3)
    for daemon in daemons:
        daemon.push_hook()  # each host fetches the other's latest status commits
    for daemon in daemons:
        wait_until(
            f"{daemon.workdir.name} healthy", lambda d=daemon: d.get("/healthz")[0] == 200, 30
        )

    signatures = git(
        remote.path,
        "-c",
        f"gpg.ssh.allowedSignersFile={fleet.hosts}",
        "log",
        "--format=%G? %GS|%an",
        remote.branch,
    ).splitlines()
    status = [line for line in signatures if "vm-reconciler on" in line]
    assert {line.split("|")[0] for line in status} == {"G hv-a", "G hv-b"}
    reports = vm_reports(remote)
    assert {r["nodeName"] for r in reports.values()} == {"hv-a", "hv-b"}
    for node in ("hv-a", "hv-b"):
        assert f"| {node} |" in readme
        node_report = remote.document(f"status/nodes/{node}.yaml")
        assert node_report is not None and node_report["status"]["lastError"] == ""
    for daemon in daemons:
        assert daemon.terminate() == 0


def test_a_signers_file_that_is_missing_stops_the_daemon_at_start_naming_it(
    remote: Remote, tmp_path: Path, fleet: Fleet
) -> None:
    config = fleet.settings(remote, "hv")
    missing = tmp_path / "trust" / "nobody"
    config["repository"]["verify"]["hostSigners"] = str(missing)
    daemon = Daemon(tmp_path / "hv", config)
    daemon.write_config()

    completed = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 2
    assert f"repository.verify.hostSigners {missing}: No such file or directory" in completed.stderr


def test_reports_of_an_unverified_commit_are_not_read(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path, fleet: Fleet
) -> None:
    daemon = verifying_host(remote, operator, daemons, tmp_path, fleet)

    # A report no host signed, which the host would name (and skip) if it read it.
    operator.write("status/nodes/hv-other.yaml", deep_mapping(3_000))
    forged = operator.commit_and_push("a report nobody signed")
    daemon.push_hook()

    def last_error() -> str:
        document = remote.document("status/nodes/hv.yaml") or {}
        text = str(document.get("status", {}).get("lastError", ""))
        return text if forged[:12] in text else ""

    wait_until("lastError naming the forged commit", last_error, 30, interval=0.3)
    # Two more passes, after the host's own publish fetched the forged report too.
    passes = daemon.log_text().count(" pass (")
    for _ in range(2):
        daemon.push_hook()
    wait_until("two more passes", lambda: daemon.log_text().count(" pass (") >= passes + 2, 30)

    error = daemon.health()["lastError"]
    assert forged[:12] in error and "needs a host key" in error
    assert "report skipped" not in error
    assert daemon.terminate() == 0
