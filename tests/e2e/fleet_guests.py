"""Guests on the fleet lab's hosts (tests/e2e/fleet.py), and what the hosts tell of them.

A test guest is the tiny guest with one qcow2 disk `vda`: in host A's `default` pool,
or in the lab's shared folder. Its agent runs shell commands (`guest_output`); the
hosts' lifecycle events and the migration capabilities their libvirtd set in QEMU are
what a test reads to see what libvirt did.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import libvirt

from reconciler.libvirt.events import start_event_loop

from .fleet import IMAGES, LIBVIRTD_LOG, Fleet, FleetHost
from .lab import (
    TestGuest,
    agent_command,
    remove_domains,
    tiny_domain_xml,
    wait_for_agent,
    wait_until,
)

MARKER = "vmr-fleet-marker"  # what a guest writes at the start of its disk


def disk_xml(path: str, *, cache: str | None = None) -> str:
    """A qcow2 virtio disk `vda` at `path`, as the host sees it."""
    cache_attr = f" cache={quoteattr(cache)}" if cache else ""
    return (
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'{cache_attr}/>"
        f"<source file={quoteattr(path)}/><target dev='vda' bus='virtio'/></disk>"
    )


def guest_domain_xml(name: str, guest: TestGuest, disk: str) -> str:
    """The tiny guest with one disk; its console goes to the host's private log folder."""
    xml = tiny_domain_xml(name, guest, console_log=Path(f"/var/log/libvirt/qemu/{name}.console"))
    return xml.replace("<devices>", f"<devices>\n    {disk}", 1)


def create_qcow2(host: FleetHost, name: str, size_mib: int, pattern_mib: int = 0) -> str:
    """A qcow2 volume in the host's `default` pool; its first `pattern_mib` MiB hold data
    (0xa5 bytes, which no copy can skip as zeroes). Returns its path as the host sees it."""
    inside = f"{IMAGES}/{name}.qcow2"
    path = host.outside(inside)
    _qcow2(path, size_mib)
    if pattern_mib:
        qemu_io = ("qemu-io", "-f", "qcow2", "-c", f"write -q -P 0xa5 0 {pattern_mib}M")
        subprocess.run([*qemu_io, str(path)], check=True, capture_output=True)
    return inside


def _qcow2(path: Path, size_mib: int) -> None:
    create = ("qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{size_mib}M")
    subprocess.run(create, check=True, capture_output=True)


def guest_output(domain: libvirt.virDomain, script: str, timeout: float = 30.0) -> str:
    """Run `sh -c script` in the guest through its agent; its standard output."""
    # Just after a migration the destination's QEMU reconnects the agent's channel: until
    # then libvirt answers "Guest agent not available for now" (seen on CI once).
    wait_for_agent(domain)
    started = agent_command(
        domain, "guest-exec", path="/bin/sh", arg=["-c", script], **{"capture-output": True}
    )

    def exited() -> dict[str, object] | None:
        status: dict[str, object] = agent_command(domain, "guest-exec-status", pid=started["pid"])
        return status if status.get("exited") else None

    status = wait_until(f"{script!r} in {domain.name()}", exited, timeout, interval=0.1)
    if status.get("exitcode") != 0:
        raise AssertionError(f"{script!r} in {domain.name()} ended with {status}")
    return base64.b64decode(str(status.get("out-data", ""))).decode()


class DomainEvents:
    """The lifecycle events (event, detail) of one host's domains, as libvirt sends them."""

    def __init__(self, host: FleetHost) -> None:
        start_event_loop()  # before the connection opens, or it gets no events
        self.seen: list[tuple[str, int, int]] = []
        self._conn = host.connect()
        self._id = self._conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event, None
        )

    def _event(
        self, _conn: object, domain: libvirt.virDomain, event: int, detail: int, _opaque: object
    ) -> None:
        self.seen.append((domain.name(), event, detail))

    def of(self, name: str) -> list[tuple[int, int]]:
        return [(event, detail) for domain, event, detail in self.seen if domain == name]

    def close(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self._conn.domainEventDeregisterAny(self._id)
            self._conn.close()


def migration_capabilities(host: FleetHost, since: int) -> list[dict[str, bool]]:
    """The migration capabilities the host's libvirtd set in QEMU after byte `since` of its
    log (`log_size`), one dict per `migrate-set-capabilities` command.

    libvirt 9.0 shows auto-converge nowhere else until QEMU throttles, which an idle
    guest never makes it do; the lab's libvirtd logs its QMP commands for this.
    """
    with host.outside(LIBVIRTD_LOG).open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    found = []
    for line in text.splitlines():
        if "QEMU_MONITOR_SEND_MSG" not in line or "migrate-set-capabilities" not in line:
            continue
        # The message ends the line: QMP commands end in CRLF, " fd=" follows on the next.
        command, _end = json.JSONDecoder().raw_decode(line.partition(" msg=")[2])
        found.append({c["capability"]: c["state"] for c in command["arguments"]["capabilities"]})
    return found


def log_size(host: FleetHost) -> int:
    return host.outside(LIBVIRTD_LOG).stat().st_size


# ---------------------------------------------------------------- a running guest on A


@dataclass
class Guest:
    """A running test guest on host A: its name, its domain there and its boot."""

    name: str
    source: libvirt.virDomain
    boot_id: str


def boot_guest(fleet: Fleet, disk_mib: int, data_mib: int = 0, *, shared: bool = False) -> Guest:
    """A guest started on A with a disk in A's pool, or (`shared`) in the shared folder."""
    name = fleet.new_name()
    if shared:
        path = fleet.shared / f"{name}.qcow2"
        _qcow2(path, disk_mib)
        disk = disk_xml(str(path), cache="none")  # no host page cache between two hosts
    else:
        disk = disk_xml(create_qcow2(fleet.a, name, disk_mib, data_mib))
    domain = fleet.connections[0].defineXML(guest_domain_xml(name, fleet.guest, disk))
    domain.create()
    wait_for_agent(domain)
    return Guest(name, domain, boot_id(domain))


def remove_guest(fleet: Fleet, name: str) -> None:
    """The guest's domain off both hosts, and its disk wherever it is or was copied."""
    for conn in fleet.connections:
        remove_domains(conn, lambda candidate: candidate == name)
    for host in fleet.hosts:
        host.outside(f"{IMAGES}/{name}.qcow2").unlink(missing_ok=True)
    (fleet.shared / f"{name}.qcow2").unlink(missing_ok=True)


def boot_id(domain: libvirt.virDomain) -> str:
    """The guest kernel's random id of this boot: the same after a live migration."""
    return guest_output(domain, "cat /proc/sys/kernel/random/boot_id").strip()


def write_marker(domain: libvirt.virDomain) -> None:
    guest_output(domain, f"echo {MARKER} | dd of=/dev/vda conv=fsync 2>/dev/null")


def read_marker(domain: libvirt.virDomain) -> str:
    return guest_output(domain, f"head -c {len(MARKER)} /dev/vda")


def domain_names(conn: libvirt.virConnect) -> list[str]:
    return [domain.name() for domain in conn.listAllDomains()]
