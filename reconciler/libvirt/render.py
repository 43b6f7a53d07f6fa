"""A `DomainSpec` as libvirt domain XML (SPEC §5)."""

from __future__ import annotations

from reconciler.libvirt.escape import escape
from reconciler.libvirt.metadata import OPERATION, OPERATIONS, metadata_fields
from reconciler.model.domain import (
    METADATA_NAMESPACE,
    METADATA_PREFIX,
    DiskDevice,
    DomainMetadata,
    DomainSpec,
    Nic,
)

GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"


class _Xml:
    """Indented XML written out as it is made.

    Building an ElementTree and serializing it cost several times more, in pure
    Python, and rendering is a large share of a cold pass over many VMs.
    """

    def __init__(self) -> None:
        self.out: list[str] = []
        self.indent = ""

    def open(self, tag: str, **attributes: str) -> None:
        self.out.append(f"{self.indent}<{tag}{_attributes(attributes)}>\n")
        self.indent += "  "

    def close(self, tag: str) -> None:
        self.indent = self.indent[:-2]
        self.out.append(f"{self.indent}</{tag}>\n" if self.indent else f"</{tag}>")

    def leaf(self, tag: str, text: str | None = None, **attributes: str) -> None:
        if text:
            body = escape(text, quote=False)
            self.out.append(f"{self.indent}<{tag}{_attributes(attributes)}>{body}</{tag}>\n")
        else:
            self.out.append(f"{self.indent}<{tag}{_attributes(attributes)}/>\n")

    def text(self) -> str:
        return "".join(self.out)


def _attributes(attributes: dict[str, str]) -> str:
    return "".join(f' {name}="{escape(value)}"' for name, value in attributes.items())


def render_domain(spec: DomainSpec) -> str:
    xml = _Xml()
    xml.open("domain", type=spec.domain_type)
    xml.leaf("name", spec.name)
    xml.leaf("uuid", spec.uuid)
    if spec.title:
        xml.leaf("title", spec.title)
    xml.open("metadata")
    _metadata(xml, spec.metadata)
    xml.close("metadata")
    xml.leaf("memory", str(spec.memory_kib), unit="KiB")
    xml.leaf("currentMemory", str(spec.memory_kib), unit="KiB")
    # The ceiling leaves room for hot-plugged vCPUs; `current` is what runs.
    xml.leaf("vcpu", str(spec.max_vcpus), placement="static", current=str(spec.vcpus))
    xml.open("cputune")
    xml.leaf("shares", str(spec.shares))
    xml.close("cputune")
    _os(xml, spec)
    xml.open("features")
    xml.leaf("acpi")
    xml.leaf("apic")
    xml.close("features")
    _cpu(xml, spec)
    xml.leaf("clock", offset="utc")
    xml.leaf("on_poweroff", "destroy")
    xml.leaf("on_reboot", "restart")
    # A crashed guest is left for the run policy to restart, with its reason visible.
    xml.leaf("on_crash", "destroy")
    _devices(xml, spec)
    xml.close("domain")
    return xml.text()


def _metadata(xml: _Xml, meta: DomainMetadata) -> None:
    """The project's element (metadata.py), under its own namespace prefix."""
    prefix = METADATA_PREFIX + ":"
    xml.out.append(f'{xml.indent}<{prefix}domain xmlns:{METADATA_PREFIX}="{METADATA_NAMESPACE}">\n')
    xml.indent += "  "
    for name, text in metadata_fields(meta):
        xml.leaf(prefix + name, text)
    if meta.completed_operations:
        xml.open(prefix + OPERATIONS)
        for operation in meta.completed_operations:
            xml.leaf(prefix + OPERATION, operation)
        xml.close(prefix + OPERATIONS)
    else:
        xml.leaf(prefix + OPERATIONS)
    xml.close(prefix + "domain")


def _os(xml: _Xml, spec: DomainSpec) -> None:
    xml.open("os")
    xml.leaf("type", "hvm", arch="x86_64", machine=spec.machine)
    if spec.kernel_boot is not None:
        xml.leaf("kernel", spec.kernel_boot.kernel)
        if spec.kernel_boot.initrd:
            xml.leaf("initrd", spec.kernel_boot.initrd)
        if spec.kernel_boot.cmdline:
            xml.leaf("cmdline", spec.kernel_boot.cmdline)
    xml.close("os")


def _cpu(xml: _Xml, spec: DomainSpec) -> None:
    attributes: dict[str, str] = {"mode": spec.cpu_mode}
    if spec.cpu_mode == "custom":
        attributes["match"] = "exact"
    xml.open("cpu", **attributes)
    if spec.cpu_mode == "custom" and spec.cpu_model:
        xml.leaf("model", spec.cpu_model, fallback="allow")
    xml.leaf(
        "topology",
        sockets=str(spec.sockets),
        dies="1",
        cores=str(spec.max_cores_per_socket),
        threads="1",
    )
    for feature in spec.cpu_features:
        xml.leaf("feature", policy="require", name=feature)
    xml.close("cpu")


def _devices(xml: _Xml, spec: DomainSpec) -> None:
    xml.open("devices")
    if any(disk.bus == "scsi" for disk in spec.disks):
        xml.leaf("controller", type="scsi", index="0", model="virtio-scsi")
    for disk in spec.disks:
        _disk(xml, disk)
    if spec.nic is not None:
        _nic(xml, spec.nic)
    xml.open("serial", type="pty")
    xml.leaf("target", port="0")
    xml.close("serial")
    xml.open("console", type="pty")
    xml.leaf("target", type="serial", port="0")
    xml.close("console")
    xml.open("channel", type="unix")
    xml.leaf("target", type="virtio", name=GUEST_AGENT_CHANNEL)
    xml.close("channel")
    xml.leaf("memballoon", model="virtio")
    xml.close("devices")


def _disk(xml: _Xml, disk: DiskDevice) -> None:
    kind = "volume" if disk.volume else "file"
    xml.open("disk", type=kind, device=disk.device)
    xml.leaf("driver", name="qemu", type=disk.format)
    if disk.volume:
        xml.leaf("source", pool=disk.pool or "", volume=disk.volume)
    else:
        xml.leaf("source", file=disk.path or "")
    xml.leaf("target", dev=disk.target, bus=disk.bus)
    if disk.readonly:
        xml.leaf("readonly")
    if disk.boot_order is not None:
        xml.leaf("boot", order=str(disk.boot_order))
    if disk.alias:
        xml.leaf("alias", name=disk.alias)
    xml.close("disk")


def render_disk(disk: DiskDevice) -> str:
    """One `<disk>` element, as attachDeviceFlags takes it for a hot-plug."""
    xml = _Xml()
    _disk(xml, disk)
    return xml.text()


def _nic(xml: _Xml, nic: Nic) -> None:
    xml.open("interface", type="network")
    xml.leaf("mac", address=nic.mac)
    xml.leaf("source", network=nic.network)
    xml.leaf("model", type=nic.model)
    xml.close("interface")
