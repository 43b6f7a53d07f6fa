"""The seed medium a guest is provisioned from: a small ISO 9660 image (SPEC §5).

cloud-init reads a NoCloud seed: a volume labelled `cidata` holding `user-data`,
`meta-data` and, for a static address, `network-config`. Windows Setup reads
`autounattend.xml` / `unattend.xml` from the root of any CD-ROM. The image carries
Rock Ridge names (what Linux mounts show) and Joliet names (what Windows shows),
so the guest sees the file names exactly as written here.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass

from reconciler.api import ObjectId
from reconciler.model import names
from reconciler.provisioning.payload import ProvisioningPayload

CIDATA_VOLUME_ID = "cidata"
# KubeVirt labels the sysprep disk it builds for the platform "unattendCD"
# (pkg/config/sysprep.go); Windows Setup ignores the label, so any would do.
SYSPREP_VOLUME_ID = "unattendCD"
# The interface id in network-config; see render_network_config.
_INTERFACE_ID = "eth0"

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_HOSTNAME = re.compile(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
)


@dataclass(frozen=True)
class NetworkConfig:
    """A static address for the guest's NIC, found by its MAC address."""

    mac: str
    address: str
    prefix: int
    gateway: str | None = None
    dns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _MAC.match(self.mac):
            raise ValueError(f"{self.mac!r} is not a lower-case MAC address like 52:54:00:12:34:56")
        interface = ipaddress.ip_interface(f"{self.address}/{self.prefix}")
        for server in (self.gateway, *self.dns):
            if server is not None and ipaddress.ip_address(server).version != interface.version:
                raise ValueError(f"{server} is not of the address family of {interface}")


def seed_instance_id(
    namespace: str, vm_name: str, payload: ProvisioningPayload, network: NetworkConfig | None
) -> str:
    """The NoCloud instance-id: the VM's identity plus a hash of what the seed says.

    cloud-init runs its once-per-instance work (users, keys, packages, runcmd, and
    for NoCloud the network config) only when the instance-id changes. A changed
    user-data or address therefore gets a new id and is applied on the next boot;
    an unchanged seed keeps its id, so a plain restart or a move to another host
    (same inputs, same id) does not provision the guest again.
    """
    sha = hashlib.sha256(payload.digest.encode())
    if network is not None:
        sha.update(render_network_config(network).encode())
    return names.seed_instance_id(ObjectId(names.VM_KIND, namespace, vm_name), sha.hexdigest())


def render_meta_data(instance_id: str, hostname: str) -> str:
    if not _HOSTNAME.match(hostname) or len(hostname) > 253:
        raise ValueError(f"{hostname!r} is not a valid host name")
    # Values as JSON strings, which YAML reads as double-quoted scalars: a host name
    # like "1234" stays a string. One key per line, because the test guest reads
    # local-hostname with sed (tests/guest/rootfs/init).
    return f"instance-id: {json.dumps(instance_id)}\nlocal-hostname: {json.dumps(hostname)}\n"


def render_network_config(network: NetworkConfig) -> str:
    """Network config version 2 matching the NIC by MAC, with a static address.

    No `set-name`: cloud-init then looks the interface up by its MAC and keeps the
    name the guest gave it (`ens3` stays `ens3`); releases too old to look it up
    fall back to the id, hence `eth0`. The default route is written as `0.0.0.0/0`
    (or `::/0`) rather than `default`, which older releases do not parse.
    """
    interface = ipaddress.ip_interface(f"{network.address}/{network.prefix}")
    lines = [
        "version: 2",
        "ethernets:",
        f"  {_INTERFACE_ID}:",
        "    match:",
        f"      macaddress: {json.dumps(network.mac)}",
        "    addresses:",
        f"      - {json.dumps(str(interface))}",
    ]
    if network.gateway is not None:
        default = "0.0.0.0/0" if interface.version == 4 else "::/0"
        lines += [
            "    routes:",
            f"      - to: {json.dumps(default)}",
            f"        via: {json.dumps(network.gateway)}",
        ]
    if network.dns:
        lines += ["    nameservers:", "      addresses:"]
        lines += [f"        - {json.dumps(server)}" for server in network.dns]
    return "\n".join(lines) + "\n"
