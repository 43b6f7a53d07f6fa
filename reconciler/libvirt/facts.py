"""Domain XML read back into the facts the planner compares (the inverse of render)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from reconciler.libvirt.metadata import parse_metadata
from reconciler.libvirt.render import GUEST_AGENT_CHANNEL
from reconciler.libvirt.units import memory_kib
from reconciler.model.domain import DefinitionView, DomainFacts

# libvirt keeps the aliases a user gives devices only with this prefix; ours mark the
# disks hot-plugged for attachments (engine/attachments.py).
USER_ALIAS_PREFIX = "ua-"


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def parse_definition(xml: str) -> DefinitionView:
    """Facts and metadata of one definition (persistent or live)."""
    root = ET.fromstring(xml)
    vcpu = root.find("vcpu")
    max_vcpus = _int(vcpu.text if vcpu is not None else None, 1)
    vcpus = _int(vcpu.get("current") if vcpu is not None else None, max_vcpus)
    cpu = root.find("cpu")
    topology = cpu.find("topology") if cpu is not None else None
    sockets = _int(topology.get("sockets") if topology is not None else None, 1)
    cores = _int(topology.get("cores") if topology is not None else None, max_vcpus)
    shares_element = root.find("cputune/shares")
    disks: list[tuple[str, str, str]] = []
    attached: list[tuple[str, str, str]] = []
    nics: list[tuple[str, str]] = []
    agent_channel = ""
    # One walk over the devices: ElementPath searches ("devices/disk", ...) each walk
    # them again, in Python, and a resync reads every definition on the host.
    devices = root.find("devices")
    for device in devices if devices is not None else ():
        tag = device.tag
        if tag == "disk":
            disk = _disk(device)
            disks.append(disk)
            alias = device.find("alias")
            if alias is not None and alias.get("name", "").startswith(USER_ALIAS_PREFIX):
                attached.append((alias.get("name", ""), disk[0], disk[1]))
        elif tag == "interface":
            mac = device.find("mac")
            source = device.find("source")
            nics.append(
                (
                    (mac.get("address", "") if mac is not None else "").lower(),
                    source.get("network", "") if source is not None else "",
                )
            )
        elif tag == "channel" and not agent_channel:
            # libvirt's `state` of the guest-agent channel (live XML only): qemu-ga
            # opening its port flips it to "connected", which tells without asking
            # the agent anything.
            target = device.find("target")
            if target is not None and target.get("name") == GUEST_AGENT_CHANNEL:
                agent_channel = target.get("state", "")
    facts = DomainFacts(
        vcpus=vcpus,
        max_vcpus=max_vcpus,
        sockets=sockets,
        cores_per_socket=cores,
        memory_kib=memory_kib(root.find("memory")),
        cpu_mode=cpu.get("mode", "custom") if cpu is not None else "",
        shares=_int(shares_element.text) if shares_element is not None else None,
        disks=tuple(disks),
        nics=tuple(nics),
        attached=tuple(attached),
    )
    return DefinitionView(facts, parse_metadata(root.find("metadata")), agent_channel)


def _disk(disk: ET.Element) -> tuple[str, str, str]:
    """(target dev, source as "pool/volume" or a path, device kind)."""
    target = disk.find("target")
    source = disk.find("source")
    if source is None:
        location = ""
    elif source.get("volume"):
        location = f"{source.get('pool', '')}/{source.get('volume')}"
    else:
        location = source.get("file") or source.get("dev") or ""
    return (
        target.get("dev", "") if target is not None else "",
        location,
        disk.get("device", "disk"),
    )
