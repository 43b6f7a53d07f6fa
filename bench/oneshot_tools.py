"""The other tools of bench/oneshot.py: their venv, and the inputs each is given.

kcli and Ansible are installed with pip into a venv of their own (TOOLS_VENV), never
into the project's: `kcli`, `ansible` (the full package, which bundles the
community.libvirt collection: ansible-galaxy cannot reach the internet here),
`libvirt-python` (both import it; it builds against Debian's libvirt-dev as the
project's does) and `lxml` (community.libvirt.virt_volume needs it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
TOOLS_VENV = CHECKOUT / ".cache" / "bench-tools" / "venv"
PACKAGES = ("kcli", "ansible", "libvirt-python", "lxml")

CLASS = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: bench
spec:
  cpu:
    type: Host
  sizingPolicies:
    - cores: {min: 1, max: 4}
      memory: {min: 128Mi, max: 8Gi}
      coreFractions: [5, 10, 20, 50, 100]
"""

VM = """\
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: vm-{index:03d}
  namespace: {namespace}
spec:
  virtualMachineClassName: bench
  runPolicy: AlwaysOff
  cpu:
    cores: 1
    coreFraction: 100%
  memory:
    size: {memory}Mi
  blockDeviceRefs:
    - kind: VirtualDisk
      name: vm-{index:03d}-root
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: vm-{index:03d}-root
  namespace: {namespace}
spec:
  persistentVolumeClaim:
    size: 1Gi
"""


def ensure_tools() -> None:
    """The tools' venv, made on the first run."""
    if (TOOLS_VENV / "bin" / "kcli").exists() and (
        TOOLS_VENV / "bin" / "ansible-playbook"
    ).exists():
        return
    print(f"installing {', '.join(PACKAGES)} into {TOOLS_VENV}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(TOOLS_VENV)], check=True)
    pip = [str(TOOLS_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *PACKAGES], check=True)


def manifests(namespace: str, memory: dict[int, int]) -> dict[str, str]:
    """The reconciler's repository: file name -> text."""
    files = {"class.yaml": CLASS}
    for index, mib in memory.items():
        files[f"vm-{index:03d}.yaml"] = VM.format(index=index, namespace=namespace, memory=mib)
    return files


def kcli_config(uri: str, pool: str) -> str:
    """~/.kcli/config.yml: the bench's libvirtd (kcli's `url`) and pool."""
    return (
        f"default:\n  client: local\nlocal:\n  type: kvm\n  host: 127.0.0.1\n"
        f"  url: {json.dumps(uri)}\n  pool: {pool}\n"
    )


def kcli_plan(pool: str, vms: list[tuple[str, int]]) -> str:
    """A plan of VMs that are not started, without image, cloud-init or NIC."""
    lines = []
    for name, memory in vms:
        lines += [
            f"{name}:",
            f"  memory: {memory}",
            "  numcpus: 1",
            "  disks: [1]",
            "  nets: []",
            "  start: false",
            "  cloudinit: false",
            f"  pool: {pool}",
        ]
    return "\n".join(lines) + "\n"


def playbook(uri: str, pool: str) -> str:
    """Volumes, then definitions: each VM's item holds both XMLs (vms.json)."""
    uri_json, pool_json = json.dumps(uri), json.dumps(pool)
    return f"""\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: volumes
      community.libvirt.virt_volume:
        uri: {uri_json}
        pool: {pool_json}
        state: present
        xml: "{{{{ item.volume }}}}"
      loop: "{{{{ vms }}}}"
    - name: domains
      community.libvirt.virt:
        uri: {uri_json}
        command: define
        xml: "{{{{ item.domain }}}}"
      loop: "{{{{ vms }}}}"
"""
