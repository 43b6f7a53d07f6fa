"""A `DomainSpec` as libvirt domain XML (SPEC §5)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html import escape

from reconciler.engine.domain import (
    METADATA_NAMESPACE,
    METADATA_PREFIX,
    DiskDevice,
    DomainSpec,
    Nic,
)
from reconciler.libvirt.metadata import metadata_element

GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def render_domain(spec: DomainSpec) -> str:
    domain = ET.Element("domain", type=spec.domain_type)
    _sub(domain, "name", spec.name)
    _sub(domain, "uuid", spec.uuid)
    if spec.title:
        _sub(domain, "title", spec.title)
    _sub(domain, "metadata").append(metadata_element(spec.metadata))
    _sub(domain, "memory", str(spec.memory_kib), unit="KiB")
    _sub(domain, "currentMemory", str(spec.memory_kib), unit="KiB")
    # The ceiling leaves room for hot-plugged vCPUs; `current` is what runs.
    _sub(domain, "vcpu", str(spec.max_vcpus), placement="static", current=str(spec.vcpus))
    cputune = _sub(domain, "cputune")
    _sub(cputune, "shares", str(spec.shares))
    _os(domain, spec)
    features = _sub(domain, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _cpu(domain, spec)
    _sub(domain, "clock", offset="utc")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    # A crashed guest is left for the run policy to restart, with its reason visible.
    _sub(domain, "on_crash", "destroy")
    _devices(domain, spec)
    out: list[str] = []
    _serialize(domain, out, "")
    return "".join(out)


_NAMESPACE_MARK = f"{{{METADATA_NAMESPACE}}}"


def _serialize(element: ET.Element, out: list[str], indent: str) -> None:
    """Indented XML of a tree whose only namespace is ours.

    ElementTree's own serializer first walks the whole tree for namespaces, in
    pure Python, which made rendering the largest cost of a cold pass.
    """
    tag = element.tag
    attributes = "".join(f' {name}="{escape(value)}"' for name, value in element.items())
    if tag.startswith(_NAMESPACE_MARK):
        tag = METADATA_PREFIX + ":" + tag[len(_NAMESPACE_MARK) :]
        if element.tag == f"{_NAMESPACE_MARK}domain":
            attributes += f' xmlns:{METADATA_PREFIX}="{METADATA_NAMESPACE}"'
    children = list(element)
    if children:
        out.append(f"{indent}<{tag}{attributes}>\n")
        for child in children:
            _serialize(child, out, indent + "  ")
        out.append(f"{indent}</{tag}>\n" if indent else f"</{tag}>")
    elif element.text:
        out.append(f"{indent}<{tag}{attributes}>{escape(element.text, quote=False)}</{tag}>\n")
    else:
        out.append(f"{indent}<{tag}{attributes}/>\n")


def _os(domain: ET.Element, spec: DomainSpec) -> None:
    os_element = _sub(domain, "os")
    _sub(os_element, "type", "hvm", arch="x86_64", machine=spec.machine)
    if spec.kernel_boot is not None:
        _sub(os_element, "kernel", spec.kernel_boot.kernel)
        if spec.kernel_boot.initrd:
            _sub(os_element, "initrd", spec.kernel_boot.initrd)
        if spec.kernel_boot.cmdline:
            _sub(os_element, "cmdline", spec.kernel_boot.cmdline)


def _cpu(domain: ET.Element, spec: DomainSpec) -> None:
    attrs: dict[str, str] = {"mode": spec.cpu_mode}
    if spec.cpu_mode == "custom":
        attrs["match"] = "exact"
    cpu = _sub(domain, "cpu", **attrs)
    if spec.cpu_mode == "custom" and spec.cpu_model:
        _sub(cpu, "model", spec.cpu_model, fallback="allow")
    _sub(
        cpu,
        "topology",
        sockets=str(spec.sockets),
        dies="1",
        cores=str(spec.max_cores_per_socket),
        threads="1",
    )
    for feature in spec.cpu_features:
        _sub(cpu, "feature", policy="require", name=feature)


def _devices(domain: ET.Element, spec: DomainSpec) -> None:
    devices = _sub(domain, "devices")
    if any(disk.bus == "scsi" for disk in spec.disks):
        _sub(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    for disk in spec.disks:
        _disk(devices, disk)
    if spec.nic is not None:
        _nic(devices, spec.nic)
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    channel = _sub(devices, "channel", type="unix")
    _sub(channel, "target", type="virtio", name=GUEST_AGENT_CHANNEL)
    _sub(devices, "memballoon", model="virtio")


def _disk(devices: ET.Element, disk: DiskDevice) -> ET.Element:
    kind = "volume" if disk.volume else "file"
    element = _sub(devices, "disk", type=kind, device=disk.device)
    _sub(element, "driver", name="qemu", type=disk.format)
    if disk.volume:
        _sub(element, "source", pool=disk.pool or "", volume=disk.volume)
    else:
        _sub(element, "source", file=disk.path or "")
    _sub(element, "target", dev=disk.target, bus=disk.bus)
    if disk.readonly:
        _sub(element, "readonly")
    if disk.boot_order is not None:
        _sub(element, "boot", order=str(disk.boot_order))
    if disk.alias:
        _sub(element, "alias", name=disk.alias)
    return element


def render_disk(disk: DiskDevice) -> str:
    """One `<disk>` element, as attachDeviceFlags takes it for a hot-plug."""
    out: list[str] = []
    _serialize(_disk(ET.Element("devices"), disk), out, "")
    return "".join(out)


def _nic(devices: ET.Element, nic: Nic) -> None:
    element = _sub(devices, "interface", type="network")
    _sub(element, "mac", address=nic.mac)
    _sub(element, "source", network=nic.network)
    _sub(element, "model", type=nic.model)
