"""The floor of bench/oneshot.py: the libvirt calls any one-shot tool makes at the least.

    python bench/oneshot_bare.py --uri qemu:///system --pool NAME --vms FILE.json

FILE.json lists the wanted VMs ({"name", "memory_mib", "vcpus", "disk_bytes"}).
Whatever exists, the script does what a reconciler must: it lists the pool's
volumes and every domain with its definition (one XMLDesc each), creates the
volumes that are missing (qcow2, allocated lazily), and defines the domains that
are missing or whose memory, vCPUs or disk differ. Nothing else: no status, no
metadata, no checks beyond these. It prints how many calls changed something.
"""

from __future__ import annotations

import argparse
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import libvirt


def volume_xml(name: str, capacity_bytes: int) -> str:
    return (
        f"<volume><name>{escape(name)}</name>"
        f'<capacity unit="bytes">{capacity_bytes}</capacity>'
        '<allocation unit="bytes">0</allocation>'
        "<target><format type='qcow2'/></target></volume>"
    )


def domain_xml(
    domain_type: str, name: str, memory_mib: int, vcpus: int, disk: str, uuid: str = ""
) -> str:
    """A domain that is defined, never started: no NIC, one virtio disk. A redefinition
    names the domain's UUID (libvirt refuses a second domain of the same name)."""
    return (
        f"<domain type='{domain_type}'><name>{escape(name)}</name>"
        + (f"<uuid>{escape(uuid)}</uuid>" if uuid else "")
        + f"<memory unit='MiB'>{memory_mib}</memory><vcpu>{vcpus}</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os><devices>"
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file={quoteattr(disk)}/><target dev='vda' bus='virtio'/></disk>"
        "</devices></domain>"
    )


def defined_as(xml: str) -> tuple[str, tuple[int, int, str]]:
    """The UUID, and memory (KiB), vCPUs and first disk's file of a domain's definition."""
    root = ET.fromstring(xml)
    source = root.find("./devices/disk/source")
    return root.findtext("uuid") or "", (
        int(root.findtext("memory") or 0),
        int(root.findtext("vcpu") or 0),
        source.get("file", "") if source is not None else "",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--vms", type=Path, required=True)
    parser.add_argument("--domain-type", choices=("kvm", "qemu"))
    args = parser.parse_args()
    wanted = json.loads(args.vms.read_text())
    domain_type = args.domain_type or (
        "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"
    )
    conn = libvirt.open(args.uri)
    pool = conn.storagePoolLookupByName(args.pool)
    target = ET.fromstring(pool.XMLDesc(0)).findtext("./target/path") or ""
    volumes = set(pool.listVolumes())
    domains = {d.name(): d.XMLDesc(0) for d in conn.listAllDomains(0)}
    mutations = 0
    for vm in wanted:
        volume = f"{vm['name']}.qcow2"
        path = os.path.join(target, volume)
        if volume not in volumes:
            pool.createXML(volume_xml(volume, vm["disk_bytes"]), 0)
            mutations += 1
        uuid, defined = defined_as(domains.get(vm["name"]) or "<domain/>")
        if defined != (vm["memory_mib"] << 10, vm["vcpus"], path):
            xml = domain_xml(domain_type, vm["name"], vm["memory_mib"], vm["vcpus"], path, uuid)
            conn.defineXML(xml)
            mutations += 1
    print(f"{mutations} mutating call(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
