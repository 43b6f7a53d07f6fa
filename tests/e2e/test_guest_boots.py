"""The lab itself works: the tiny guest boots under TCG, answers, gets an address, powers off.

One domain serves the whole module, because every start costs seconds; the tests only
observe it, except the last, which shuts it down (pytest runs them in file order, and
the fixture boots it again should that test run alone).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest

from .conftest import E2ESession
from .lab import (
    LabNetwork,
    TestGuest,
    agent_command,
    console_tail,
    remove_domains,
    tiny_domain_xml,
    wait_for_agent,
    wait_for_lease,
    wait_for_state,
    wait_until,
)


@dataclass(frozen=True)
class BootedGuest:
    domain: libvirt.virDomain
    console_log: Path
    seconds_to_agent: float


@pytest.fixture(scope="module")
def booted_guest(
    system_conn: libvirt.virConnect,
    e2e_session: E2ESession,
    guest: TestGuest,
    e2e_network: LabNetwork,
) -> Iterator[BootedGuest]:
    namespace = e2e_session.new_name()
    name = f"smoke.{namespace}"
    console_log = e2e_session.workdir / f"{name}.console.log"
    domain = system_conn.defineXML(
        tiny_domain_xml(name, guest, network=e2e_network.name, console_log=console_log)
    )
    try:
        domain.create()
        try:
            seconds = wait_for_agent(domain)
        except TimeoutError as error:
            pytest.fail(f"{error}; guest console:\n{console_tail(console_log)}", pytrace=False)
        yield BootedGuest(domain, console_log, seconds)
    finally:
        remove_domains(system_conn, lambda candidate: candidate == name)


def test_guest_agent_answers_after_boot(booted_guest: BootedGuest, guest: TestGuest) -> None:
    info = agent_command(booted_guest.domain, "guest-get-osinfo")

    assert info["kernel-release"] == guest.kernel_release
    assert info["id"] == "vmr-test-guest"
    print(f"start to guest-ping: {booted_guest.seconds_to_agent:.1f} s")


def test_guest_leases_an_address_on_the_e2e_network(
    booted_guest: BootedGuest, e2e_network: LabNetwork
) -> None:
    try:
        address = wait_for_lease(booted_guest.domain)
    except TimeoutError as error:
        pytest.fail(f"{error}; console:\n{console_tail(booted_guest.console_log)}", pytrace=False)

    assert address in e2e_network.subnet
    first, last = e2e_network.dhcp_range
    assert first <= address <= last

    def configured_in_guest() -> bool | None:
        # dnsmasq records the lease as it acknowledges; the guest configures it a moment later.
        nics = agent_command(booted_guest.domain, "guest-network-get-interfaces")
        addresses = {
            ipaddress.ip_address(ip["ip-address"])
            for nic in nics
            for ip in nic.get("ip-addresses", [])
        }
        return True if address in addresses else None

    wait_until(f"{address} configured in the guest", configured_in_guest, timeout=10)


def test_acpi_power_button_shuts_the_guest_off(booted_guest: BootedGuest) -> None:
    domain = booted_guest.domain

    domain.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)

    try:
        state, reason = wait_for_state(domain, libvirt.VIR_DOMAIN_SHUTOFF)
    except TimeoutError as error:
        pytest.fail(f"{error}; console:\n{console_tail(booted_guest.console_log)}", pytrace=False)
    assert (state, reason) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN)
