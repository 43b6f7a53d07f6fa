"""The daemon for real: `reconciler run` as a subprocess, a bare remote on disk, a real
libvirtd with QEMU under TCG. What an operator sees is what is asserted: commits in the
remote, the status files in them, the domains in libvirt, the daemon's notify messages.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.daemonlab import Daemon, Remote, Workspace, git, wait_until
from tests.hosts import CLASS, vm_yaml

from .lab import (
    LabNetwork,
    LabPool,
    SystemConnection,
    TestGuest,
    agent_command,
    wait_for_agent,
    wait_for_state,
)

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 3


class Fleet:
    """One host's daemon, the remote it follows and an operator's clone of it."""

    def __init__(
        self,
        tmp_path: Path,
        namespace: str,
        guest: TestGuest,
        pool: LabPool,
        network: LabNetwork,
    ) -> None:
        self.namespace = namespace
        self.guest = guest
        self.node = f"hv-{namespace}"
        self.remote = Remote.create(tmp_path / "remote.git")
        self.operator = Workspace.clone(self.remote, tmp_path / "operator")
        self.operator.write("class.yaml", CLASS)
        self.daemon = Daemon(
            tmp_path / "daemon",
            {
                "repository": {"url": self.remote.url, "intervalSeconds": INTERVAL},
                "libvirtUri": "qemu:///system",
                "nodeName": self.node,
                "storagePool": pool.name,
                "network": network.name,
            },
            env={"RECONCILER_DOMAIN_TYPE": "qemu"},
        )

    def write_vm(self, name: str = "linux-vm", **spec: Any) -> None:
        self.operator.write(
            f"vms/{name}.yaml",
            vm_yaml(
                name=name,
                namespace=self.namespace,
                kernel_boot=self.guest.kernel_boot(),
                grace=30,
                memory="1Gi",
                **spec,
            ),
        )

    def push(self, message: str) -> str:
        sha = self.operator.commit_and_push(message)
        if self.daemon.process is not None and self.daemon.process.poll() is None:
            assert self.daemon.push_hook() == 202
        return sha

    def report(self, name: str = "linux-vm") -> dict[str, Any]:
        document = self.remote.document(f"status/virtualmachines/{self.namespace}/{name}.yaml")
        return document["status"] if document else {}

    def readme_row(self, name: str = "linux-vm") -> dict[str, str]:
        text = self.remote.show("status/README.md") or ""
        header: list[str] = []
        for line in text.splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if "NEED RESTART" in cells:
                header = cells
            elif header and name in cells and self.namespace in cells:
                return dict(zip(header, cells, strict=False))
        return {}


@pytest.fixture
def fleet(
    tmp_path: Path,
    e2e_namespace: str,
    guest: TestGuest,
    e2e_pool: LabPool,
    e2e_network: LabNetwork,
) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, e2e_namespace, guest, e2e_pool, e2e_network)
    try:
        yield fleet
    finally:
        fleet.daemon.close()


def vcpus(conn: libvirt.virConnect, domain: str) -> int:
    return int(conn.lookupByName(domain).info()[3])


def test_a_change_waits_for_restart_then_applies_automatically_and_commits_once(
    fleet: Fleet, system_conn: libvirt.virConnect
) -> None:
    domain = f"linux-vm.{fleet.namespace}"
    fleet.write_vm(cores=1, run_policy="AlwaysOn")
    fleet.push("a VM with one core")
    fleet.daemon.start()
    fleet.daemon.wait_ready()
    wait_until("the VM reported Running", lambda: fleet.report().get("phase") == "Running", 120)
    assert vcpus(system_conn, domain) == 1

    fleet.write_vm(cores=2, run_policy="AlwaysOn")
    fleet.push("two cores")
    pending = wait_until(
        "cpu.cores in restartAwaitingChanges",
        lambda: fleet.report().get("restartAwaitingChanges"),
        60,
    )
    assert [change["path"] for change in pending] == ["cpu.cores"]
    assert pending[0]["currentValue"] == 1 and pending[0]["desiredValue"] == 2
    assert fleet.readme_row()["NEED RESTART"] == "True"
    assert vcpus(system_conn, domain) == 1, "a restart-only change must wait"

    fleet.write_vm(cores=2, run_policy="AlwaysOn", approval="Automatic")
    fleet.push("restart it automatically")
    wait_until(
        "the VM running 2 vCPUs with nothing awaiting restart",
        lambda: (
            fleet.report().get("phase") == "Running"
            and not fleet.report().get("restartAwaitingChanges")
            and vcpus(system_conn, domain) == 2
        ),
        120,
        interval=0.5,
    )
    assert fleet.readme_row()["NEED RESTART"] == "False"
    # The new boot's agent answering is the last thing the report has to say.
    wait_until("AgentReady in the report", lambda: _agent_ready(fleet.report()), 60)

    # Quiet from now on: interval passes run, find nothing to do, commit nothing.
    wait_until("the last status commit", lambda: _settled(fleet), 30, interval=0.5)
    head = fleet.remote.head()
    passes_before = fleet.daemon.log_text().count("pass (interval")
    time.sleep(3 * INTERVAL + 1)
    assert fleet.daemon.log_text().count("pass (interval") >= passes_before + 3
    assert fleet.remote.head() == head, git(fleet.remote.path, "diff", head, fleet.remote.branch)

    for line in fleet.remote.status_commits():
        assert f" vm-reconciler on {fleet.node}|status({fleet.node}): " in line
        assert line.endswith("[skip ci]")
    assert fleet.daemon.terminate() == 0
    assert "STOPPING=1" in fleet.daemon.notifications()


def _agent_ready(report: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "AgentReady" and c.get("status") == "True"
        for c in report.get("conditions", [])
    )


def _settled(fleet: Fleet) -> bool:
    """No status commit in the last two intervals."""
    head = fleet.remote.head()
    time.sleep(INTERVAL * 2)
    return fleet.remote.head() == head


def test_killed_in_the_middle_of_a_pass_the_next_daemon_converges_without_repeating(
    fleet: Fleet, system_conn: libvirt.virConnect
) -> None:
    names = [f"vm-{n}" for n in range(4)]
    for name in names:
        fleet.write_vm(name, cores=1, run_policy="AlwaysOn")
    fleet.push("four VMs")
    fleet.daemon.start()
    wait_until(
        "the fifth action of the first pass",
        lambda: "[5/" in fleet.daemon.log_text(),
        120,
        interval=0.02,
    )
    fleet.daemon.kill()
    first_run = fleet.daemon.log_text()
    done = set(re.findall(r"\[\d+/\d+\] (.*)", first_run))
    assert done and len(done) < 3 * len(names), "killed after the pass ended"

    fleet.daemon.start()
    fleet.daemon.wait_ready()
    wait_until(
        "every VM reported Running",
        lambda: all(fleet.report(name).get("phase") == "Running" for name in names),
        180,
        interval=0.5,
    )
    second_run = fleet.daemon.log_text()[len(first_run) :]
    repeated = done & set(re.findall(r"\[\d+/\d+\] (.*)", second_run))
    # The action running at the kill may have been cut short; nothing finished before it
    # is done again.
    assert len(repeated) <= 1, repeated
    for name in names:
        assert system_conn.lookupByName(f"{name}.{fleet.namespace}").isActive()


def test_a_dead_guest_and_an_unreachable_remote_are_handled_and_reported(
    fleet: Fleet, system_conn: libvirt.virConnect
) -> None:
    domain = f"linux-vm.{fleet.namespace}"
    _running_vm(fleet)

    # A guest that dies is started again on the lifecycle event, not at the next interval.
    destroyed = time.monotonic()
    system_conn.lookupByName(domain).destroy()
    wait_until("the AlwaysOn VM started again", lambda: _active(domain), 10, interval=0.05)
    print(f"destroyed guest running again after {time.monotonic() - destroyed:.2f}s")

    # The remote goes away: the daemon keeps serving the last revision and says so.
    hidden = fleet.remote.path.with_name("remote-away.git")
    fleet.remote.path.rename(hidden)
    fleet.daemon.push_hook()
    wait_until(
        "/healthz naming the unreachable remote",
        lambda: "cannot fetch" in fleet.daemon.health()["source"],
        30,
    )
    system_conn.lookupByName(domain).destroy()
    wait_until("the VM started again while offline", lambda: _active(domain), 10, interval=0.05)
    hidden.rename(fleet.remote.path)
    fleet.daemon.push_hook()
    wait_until("/healthz source ok", lambda: fleet.daemon.health()["source"] == "ok", 30)
    fleet.daemon.check_alive()
    assert fleet.daemon.terminate() == 0


@pytest.mark.restarts_libvirtd
def test_a_libvirtd_restart_is_survived_and_reported(
    fleet: Fleet, system_conn: SystemConnection
) -> None:
    _running_vm(fleet)
    _stop_libvirtd()
    try:
        wait_until(
            "/healthz reporting libvirt down",
            lambda: fleet.daemon.get("/healthz")[0] == 503,
            30,
        )
        fleet.daemon.push_hook()
        wait_until(
            "the node report naming the libvirt error",
            lambda: "libvirt" in str(_node_report(fleet).get("lastError", "")),
            30,
        )
    finally:
        subprocess.run([str(REPO_ROOT / "scripts/start-libvirtd.sh")], check=True)
        system_conn.reconnect()
    wait_until("/healthz ok again", lambda: fleet.daemon.get("/healthz")[0] == 200, 60)
    fleet.write_vm(cores=1, run_policy="AlwaysOn", labels="{tier: web}")
    fleet.push("a label after the restart")
    wait_until(
        "the node report clean again",
        lambda: _node_report(fleet).get("lastError") == "",
        60,
        interval=0.5,
    )
    assert _active(f"linux-vm.{fleet.namespace}")
    fleet.daemon.check_alive()
    assert fleet.daemon.terminate() == 0


def _running_vm(fleet: Fleet) -> None:
    fleet.write_vm(cores=1, run_policy="AlwaysOn")
    fleet.push("a VM")
    fleet.daemon.start()
    fleet.daemon.wait_ready()
    wait_until("the VM reported Running", lambda: fleet.report().get("phase") == "Running", 120)


def _active(domain: str) -> bool:
    conn = libvirt.open("qemu:///system")
    try:
        return bool(conn.lookupByName(domain).isActive())
    except libvirt.libvirtError:
        return False
    finally:
        conn.close()


def _node_report(fleet: Fleet) -> dict[str, Any]:
    document = fleet.remote.document(f"status/nodes/{fleet.node}.yaml")
    return document["status"] if document else {}


def _stop_libvirtd() -> None:
    pid = int(Path("/var/run/libvirtd.pid").read_text().strip())
    subprocess.run(["kill", "-TERM", str(pid)], check=True)
    wait_until("libvirtd to exit", lambda: not Path(f"/proc/{pid}").exists(), 30)


def test_a_guest_that_powers_itself_off_follows_its_run_policy(
    fleet: Fleet, system_conn: libvirt.virConnect
) -> None:
    """The reference's rule, on a real guest: AlwaysOn starts it again at once (the libvirt
    event, not the timer); AlwaysOnUnlessStoppedManually leaves it Stopped."""
    fleet.write_vm("always", run_policy="AlwaysOn")
    fleet.write_vm("unless", run_policy="AlwaysOnUnlessStoppedManually")
    fleet.push("two VMs with different run policies")
    fleet.daemon.start()
    fleet.daemon.wait_ready()
    for name in ("always", "unless"):
        wait_until(
            f"{name} reported Running",
            lambda n=name: fleet.report(n).get("phase") == "Running",
            120,
        )
    always = system_conn.lookupByName(f"always.{fleet.namespace}")
    unless = system_conn.lookupByName(f"unless.{fleet.namespace}")
    wait_for_agent(always)
    wait_for_agent(unless)

    first_instance = always.ID()
    log_before = len(fleet.daemon.log_text())
    asked = time.monotonic()
    _power_off_from_inside(always)
    # Too quick to catch it shut off by polling: a new instance is the proof.
    try:
        wait_until(
            "the AlwaysOn guest running again",
            # A handle keeps the ID it was looked up with: look the domain up again.
            lambda: system_conn.lookupByName(always.name()).ID() not in (-1, first_instance),
            60,
            interval=0.1,
        )
    except AssertionError as error:
        raise AssertionError(
            f"{error}; domain state {always.state()}; the daemon's log ends:\n"
            + fleet.daemon.log_tail(30)
        ) from None
    print(f"AlwaysOn guest running again {time.monotonic() - asked:.2f}s after asking it to stop")
    # The pass that started it logs its triggers when it ends.
    wait_until(
        "the pass triggered by the libvirt event",
        lambda: re.search(r"pass \([^)]*libvirt", fleet.daemon.log_text()[log_before:]),
        15,
    )

    _power_off_from_inside(unless)
    _state, reason = wait_for_state(unless, libvirt.VIR_DOMAIN_SHUTOFF)
    assert reason == libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN
    wait_until(
        "unless reported Stopped", lambda: fleet.report("unless").get("phase") == "Stopped", 30
    )
    passes = fleet.daemon.log_text().count("pass (")
    wait_until("two more passes", lambda: fleet.daemon.log_text().count("pass (") >= passes + 2, 30)
    assert unless.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF, "started again against its policy"
    assert fleet.report("unless").get("phase") == "Stopped"
    assert fleet.daemon.terminate() == 0


def _power_off_from_inside(domain: libvirt.virDomain) -> None:
    """The guest's own poweroff (its agent runs `shutdown`), as a user inside would."""
    with contextlib.suppress(libvirt.libvirtError):  # the agent may go before it answers
        agent_command(domain, "guest-shutdown", mode="powerdown")
