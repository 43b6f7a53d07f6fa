"""The lab the end-to-end tests run in: real libvirt objects on qemu:///system.

Plain functions and context managers; `conftest.py` turns them into fixtures. Everything
a test creates carries its session's token in its name, so cleanup removes only what
this test session made, even when other sessions share the same libvirtd.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from xml.sax.saxutils import escape, quoteattr

import libvirt
import libvirt_qemu

T = TypeVar("T")

# Observed on a 2-core CI machine under TCG: start to guest-ping in 7 s, shutdown in
# 1.5 s. The limits leave room for a machine that is busy with other work.
AGENT_TIMEOUT_S = 90.0
SHUTDOWN_TIMEOUT_S = 30.0
LEASE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TestGuest:
    """The tiny guest built by tests/guest/build-guest.sh, copied where QEMU can read it."""

    kernel: Path
    initrd: Path
    kernel_release: str
    # `quiet` keeps TCG from spending boot time on the serial console; the guest's
    # own /init lines still reach it.
    cmdline: str = "console=ttyS0 quiet"

    __test__ = False  # not a pytest test class, despite the name

    def kernel_boot(self) -> dict[str, str]:
        """The value of a VM manifest's `spec.kernelBoot` that boots this guest."""
        return {"kernel": str(self.kernel), "initrd": str(self.initrd), "cmdline": self.cmdline}


@dataclass(frozen=True)
class LabNetwork:
    """An isolated libvirt network (no forwarding) with DHCP on its own bridge."""

    name: str
    bridge: str
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The host's address on the bridge; dnsmasq serves DHCP from it."""
        return self.subnet.network_address + 1

    @property
    def dhcp_range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        """Addresses dnsmasq hands out dynamically; .2-.99 stay free for reservations."""
        return self.subnet.network_address + 100, self.subnet.network_address + 199


@dataclass(frozen=True)
class LabPool:
    """A dir-type storage pool in a directory of its own."""

    name: str
    path: Path


def wait_until(
    what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2
) -> T:
    """Poll `probe` until it returns something other than None; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# ---------------------------------------------------------------- domains


def domain_in_namespace(domain_name: str, namespace: str) -> bool:
    """Whether a domain belongs to `namespace`: the engine names domains `<vm>.<namespace>`."""
    return domain_name.endswith("." + namespace)


def remove_domains(conn: libvirt.virConnect, owns: Callable[[str], bool]) -> list[str]:
    """Destroy and undefine every domain whose name `owns` accepts; return their names."""
    removed = []
    for domain in conn.listAllDomains():
        name = domain.name()
        if not owns(name):
            continue
        with contextlib.suppress(libvirt.libvirtError):  # it may stop or vanish meanwhile
            if domain.isActive():
                domain.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            if domain.isPersistent():
                domain.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
                    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                )
        removed.append(name)
    return removed


def tiny_domain_xml(
    name: str,
    guest: TestGuest,
    *,
    network: str | None = None,
    memory_mib: int = 128,
    vcpus: int = 1,
    max_vcpus: int = 2,
    console_log: Path | None = None,
) -> str:
    """A minimal domain booting the test guest: TCG, machine `pc`, kernel boot, agent channel.

    128 MiB is comfortable (96 MiB is the floor, 64 MiB hangs). `max_vcpus` above `vcpus`
    leaves room for live vCPU hot-plug, which the guest's /init onlines.
    """
    nic = (
        f"<interface type='network'><source network={quoteattr(network)}/>"
        "<model type='virtio'/></interface>"
        if network
        else ""
    )
    serial = (
        f"<serial type='file'><source path={quoteattr(str(console_log))}/>"
        "<target port='0'/></serial>"
        if console_log
        else "<serial type='pty'><target port='0'/></serial>"
    )
    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu placement='static' current='{vcpus}'>{max_vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(str(guest.kernel))}</kernel>
    <initrd>{escape(str(guest.initrd))}</initrd>
    <cmdline>{escape(guest.cmdline)}</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    {nic}
    {serial}
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def agent_command(
    domain: libvirt.virDomain, execute: str, timeout: int = 5, **arguments: object
) -> Any:
    """Run one guest agent command and return its "return" value."""
    command: dict[str, object] = {"execute": execute}
    if arguments:
        command["arguments"] = arguments
    reply = libvirt_qemu.qemuAgentCommand(domain, json.dumps(command), timeout, 0)
    return json.loads(reply)["return"]


def wait_for_agent(domain: libvirt.virDomain, timeout: float = AGENT_TIMEOUT_S) -> float:
    """Wait until the guest agent answers guest-ping; return the seconds it took."""
    started = time.monotonic()

    def ping() -> bool | None:
        try:
            agent_command(domain, "guest-ping", timeout=1)
        except libvirt.libvirtError:  # "agent is not connected" until qemu-ga runs
            return None
        return True

    wait_until(f"guest agent of {domain.name()}", ping, timeout)
    return time.monotonic() - started


def wait_for_state(
    domain: libvirt.virDomain, state: int, timeout: float = SHUTDOWN_TIMEOUT_S
) -> tuple[int, int]:
    """Wait until the domain is in `state` (a libvirt.VIR_DOMAIN_*); return (state, reason)."""

    def current() -> tuple[int, int] | None:
        now, reason = domain.state()
        return (now, reason) if now == state else None

    return wait_until(f"{domain.name()} reaching state {state}", current, timeout)


def wait_for_lease(
    domain: libvirt.virDomain, timeout: float = LEASE_TIMEOUT_S
) -> ipaddress.IPv4Address:
    """Wait until libvirt's dnsmasq has leased an IPv4 address to the domain; return it."""

    def leased() -> ipaddress.IPv4Address | None:
        try:
            interfaces = domain.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE)
        except libvirt.libvirtError:
            return None
        for interface in interfaces.values():
            for address in interface.get("addrs") or []:
                if address["type"] == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                    return ipaddress.IPv4Address(address["addr"])
        return None

    return wait_until(f"DHCP lease of {domain.name()}", leased, timeout, interval=0.5)


def console_tail(path: Path | None, lines: int = 40) -> str:
    """The end of a serial console log, for failure messages."""
    if path is None:
        return "(no console log)"
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(console log unreadable: {error})"
    return "\n".join(text.splitlines()[-lines:]) or "(console log empty)"


# ---------------------------------------------------------------- storage and network


class SystemConnection:
    """qemu:///system, reopened by `reconnect()` after a test restarted libvirtd.

    Everything else is the libvirt connection's own API; objects looked up before a
    restart belong to the dead connection, so look them up again.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._conn = libvirt.open(uri)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def reconnect(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self._conn.close()
        self._conn = libvirt.open(self.uri)


def _assert_gone(what: str, lookup: Callable[[str], object], name: str) -> None:
    """Teardown suppresses errors step by step; say so if the object survived them all."""
    try:
        lookup(name)
    except libvirt.libvirtError:
        return
    raise RuntimeError(f"{what} is left behind on the host after teardown")


@contextlib.contextmanager
def dir_pool(conn: libvirt.virConnect, name: str, path: Path) -> Iterator[LabPool]:
    """A started dir pool at `path`; afterwards its volumes, the pool and the directory go."""
    path.mkdir(parents=True)
    path.chmod(0o755)  # QEMU runs as libvirt-qemu and must reach the volumes
    pool = conn.storagePoolDefineXML(
        f"<pool type='dir'><name>{escape(name)}</name>"
        f"<target><path>{escape(str(path))}</path></target></pool>"
    )
    try:
        pool.create()
        yield LabPool(name=name, path=path)
    finally:
        # Looked up again: libvirtd may have been restarted meanwhile (test_daemon).
        with contextlib.suppress(libvirt.libvirtError):
            pool = conn.storagePoolLookupByName(name)
        with contextlib.suppress(libvirt.libvirtError):
            pool.refresh()
            for volume in pool.listAllVolumes():
                volume.delete()
        with contextlib.suppress(libvirt.libvirtError):
            if pool.isActive():
                pool.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            pool.undefine()
        shutil.rmtree(path, ignore_errors=True)
        _assert_gone(f"storage pool {name}", conn.storagePoolLookupByName, name)


@contextlib.contextmanager
def isolated_network(
    conn: libvirt.virConnect, name: str, bridge: str, third_octets: Iterator[int]
) -> Iterator[LabNetwork]:
    """A started isolated network on 10.213.<n>.0/24 with DHCP; destroyed and undefined after.

    libvirt refuses a subnet already routed on the host (another session's network, say),
    so the next candidate from `third_octets` is tried.
    """
    attempts = []
    for octet in third_octets:
        lab = LabNetwork(name, bridge, ipaddress.IPv4Network(f"10.213.{octet}.0/24"))
        first, last = lab.dhcp_range
        network = conn.networkDefineXML(
            f"""<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>{escape(name)}</name>
  <bridge name={quoteattr(bridge)} stp='off' delay='0'/>
  <ip address='{lab.gateway}' netmask='{lab.subnet.netmask}'>
    <dhcp><range start='{first}' end='{last}'/></dhcp>
  </ip>
  <dnsmasq:options><dnsmasq:option value='no-ping'/></dnsmasq:options>
</network>"""
        )
        try:
            network.create()
        except libvirt.libvirtError as error:
            attempts.append(f"{lab.subnet}: {error}")
            network.undefine()
            if len(attempts) >= 5:
                break
            continue
        try:
            yield lab
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                network = conn.networkLookupByName(name)
            with contextlib.suppress(libvirt.libvirtError):
                network.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                network.undefine()
            _assert_gone(f"network {name}", conn.networkLookupByName, name)
        return
    raise RuntimeError(f"could not start network {name}:\n  " + "\n  ".join(attempts))
