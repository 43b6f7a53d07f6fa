"""libvirt's QEMU hook: the destination re-checks capacity before it takes a live migration.

Before an incoming migration starts, libvirtd on the destination runs
`/etc/libvirt/hooks/qemu DOMAIN migrate begin -` with the incoming domain's XML on stdin
(https://libvirt.org/hooks.html); a non-zero exit refuses the migration, and the hook's
standard error travels back in libvirt's error to the source, whose operation reports
it as its reason. `reconciler hook qemu` is that hook (docs/install.md).

A hook must not call back into libvirt (libvirtd waits for it), so it weighs the
incoming VM against what this host's daemon last wrote into its cacheDir after a pass
(`state_document`): the host's guaranteed capacity (its Node manifest's, else libvirt's
count) and the guaranteed CPU and memory each of its running VMs holds. The incoming
VM's share is read from our `<metadata>` in its XML (the spec it runs with) and its
memory from the XML's `<memory>`. What is not ours, and every other operation, is let
through; so is everything while there is no state to weigh against (a daemon that
never ran must not stop migrations: it says so on stderr). The migrations it let in
since the daemon's last pass count too (hook_ledger.py): two VMs of a drain bound for
one host do not both fit in the room of one.

libvirtd starts the hook for every domain it starts, stops or receives: this module
imports only the standard library's json and ElementTree and two small modules of ours.
It never writes to stdout: on `migrate begin`, whatever the hook prints replaces the
incoming domain's XML.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from reconciler.libvirt import hook_ledger
from reconciler.libvirt.units import memory_kib
from reconciler.model.cpu import millicores_of
from reconciler.model.xmlns import METADATA_NAMESPACE

STATE_FILE = "migration-admission.json"
_FORMAT = 1
# An incoming domain's XML: ours stay far below (the spec in the metadata is bounded by
# the loader's limits); a larger one is no migration we take.
MAX_XML_BYTES = 8 << 20
# The state file: some 60 bytes per running domain, for many thousands of them.
MAX_STATE_BYTES = 64 << 20
# The largest number the state may hold: 2**63, beyond any host's millicores or bytes.
_MOST = 1 << 63

ACCEPT = 0
REFUSE = 1


def state_path(cache_dir: Path) -> Path:
    return cache_dir / STATE_FILE


def state_document(
    node: str, cpu_millicores: int, memory_bytes: int | None, held: Mapping[str, tuple[int, int]]
) -> dict[str, object]:
    """The state the daemon writes after a pass (daemon/admission.py): the host's capacity
    and what its running domains hold (`held`: domain name -> (millicores, bytes))."""
    return {
        "format": _FORMAT,
        "node": node,
        "capacity": {"cpuMillicores": cpu_millicores, "memoryBytes": memory_bytes},
        "domains": {name: list(share) for name, share in sorted(held.items())},
    }


class State:
    """What the daemon last wrote: its node, its capacity and what its domains hold."""

    __slots__ = ("cpu_millicores", "held", "memory_bytes", "node")

    def __init__(
        self,
        node: str,
        cpu_millicores: int,
        memory_bytes: int | None,
        held: dict[str, tuple[int, int]],
    ) -> None:
        self.node = node
        self.cpu_millicores = cpu_millicores
        self.memory_bytes = memory_bytes
        self.held = held


class StateUnreadable(Exception):
    pass


def read_state(path: Path) -> State:
    """The state at `path`; StateUnreadable with why when it is missing or not one."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_STATE_BYTES + 1)
    except OSError as error:
        raise StateUnreadable(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > MAX_STATE_BYTES:
        raise StateUnreadable(f"{path} is larger than {MAX_STATE_BYTES} bytes")
    try:
        stored = json.loads(data)
    except (ValueError, RecursionError):
        raise StateUnreadable(f"{path} is not JSON") from None
    if not isinstance(stored, dict) or stored.get("format") != _FORMAT:
        raise StateUnreadable(f"{path} is not a state this version writes")
    capacity, domains = stored.get("capacity"), stored.get("domains")
    node = stored.get("node")
    if not isinstance(capacity, dict) or not isinstance(domains, dict) or not isinstance(node, str):
        raise StateUnreadable(f"{path} lacks the node, its capacity or its domains")
    cpu, memory = capacity.get("cpuMillicores"), capacity.get("memoryBytes")
    if not isinstance(cpu, int) or not _count(cpu) or not (memory is None or _count(memory)):
        raise StateUnreadable(f"{path} states no usable capacity")
    held: dict[str, tuple[int, int]] = {}
    for name, share in domains.items():
        if not (isinstance(share, list) and len(share) == 2 and all(map(_count, share))):
            raise StateUnreadable(f"{path}: what domain {name[:80]!r} holds is not two counts")
        held[name] = (share[0], share[1])
    return State(node, cpu, memory, held)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MOST


class Incoming:
    """What an incoming domain of ours asks of the host: its name, share and memory."""

    __slots__ = ("memory_bytes", "millicores", "vm")

    def __init__(self, vm: str, millicores: int, memory_bytes: int) -> None:
        self.vm = vm
        self.millicores = millicores
        self.memory_bytes = memory_bytes


class UnreadableXML(Exception):
    pass


def incoming_domain(xml: bytes) -> Incoming | None:
    """The VM the incoming XML carries, None when the domain is not ours; UnreadableXML
    when it is no domain XML we can read.

    Defused as well as the standard library's parser allows without a dependency: a
    size limit, and no document type at all (libvirt never sends one; an entity is the
    way to a billion laughs or to a file of the host). ElementTree resolves no external
    entity, and expat (2.4 and later) limits amplification besides.
    """
    if len(xml) > MAX_XML_BYTES:
        raise UnreadableXML(f"the domain XML is larger than {MAX_XML_BYTES} bytes")
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise UnreadableXML("the domain XML declares a document type, which libvirt never does")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise UnreadableXML(f"the domain XML does not parse: {error}") from None
    if root.tag != "domain":
        raise UnreadableXML(f"the XML is a <{root.tag[:40]}>, not a <domain>")
    ours = root.find(f"metadata/{{{METADATA_NAMESPACE}}}domain")
    if ours is None:
        return None
    namespace = ours.findtext(f"{{{METADATA_NAMESPACE}}}namespace") or ""
    name = ours.findtext(f"{{{METADATA_NAMESPACE}}}name") or ""
    try:
        spec = json.loads(ours.findtext(f"{{{METADATA_NAMESPACE}}}spec") or "{}")
    except (ValueError, RecursionError):
        raise UnreadableXML("the spec in its metadata is not JSON") from None
    if not isinstance(spec, dict):
        raise UnreadableXML("the spec in its metadata is not a mapping")
    vm = f"{namespace}/{name}" if namespace else name
    return Incoming(vm, millicores_of(spec), memory_kib(root.find("memory")) * 1024)


def qemu_hook(
    domain: str, operation: str, subop: str, stdin: BinaryIO, cache_dir: Path
) -> tuple[int, str]:
    """The hook's exit code and what it says on stderr ("" for nothing)."""
    if (operation, subop) == ("release", "end"):
        hook_ledger.release(hook_ledger.ledger_path(cache_dir), domain)
        return ACCEPT, ""
    if (operation, subop) != ("migrate", "begin"):
        return ACCEPT, ""
    try:
        incoming = incoming_domain(stdin.read(MAX_XML_BYTES + 1))
    except UnreadableXML as error:
        return REFUSE, f"reconciler: refusing the incoming migration of {domain}: {error}"
    if incoming is None:
        return ACCEPT, ""
    try:
        state = read_state(state_path(cache_dir))
    except StateUnreadable as error:
        return ACCEPT, (
            f"reconciler: accepting the incoming migration of {domain} unchecked:"
            f" no capacity to weigh it against ({error}; the daemon writes it after each pass)"
        )
    refusal = hook_ledger.admit(
        hook_ledger.ledger_path(cache_dir),
        domain,
        (incoming.millicores, incoming.memory_bytes),
        state.held,
        time.time(),
        lambda arriving: _does_not_fit(domain, incoming, state, arriving),
    )
    return (REFUSE, refusal) if refusal else (ACCEPT, "")


def _does_not_fit(
    domain: str,
    incoming: Incoming,
    state: State,
    arriving: Mapping[str, tuple[int, int, float]],
) -> str:
    """Why the host cannot take the VM, "" when it can: what its domains hold, and the
    migrations let in since (`arriving`), leave too little. The domain itself, if the
    state still counts it here, is not counted twice."""
    shares = [share for name, share in state.held.items() if name != domain]
    shares += [(entry[0], entry[1]) for entry in arriving.values()]
    cpu = sum(share[0] for share in shares)
    memory = sum(share[1] for share in shares)
    free_cpu = max(state.cpu_millicores - cpu, 0)
    where = f"Node {state.node}"
    coming = f" ({len(arriving)} more arriving)" if arriving else ""
    if incoming.millicores > free_cpu:
        return (
            f"reconciler: {where} refuses VM {incoming.vm} ({domain}): it needs"
            f" {incoming.millicores}m of guaranteed CPU and only {free_cpu}m of"
            f" {state.cpu_millicores}m are free{coming}"
        )
    if state.memory_bytes is not None:
        free_memory = max(state.memory_bytes - memory, 0)
        if incoming.memory_bytes > free_memory:
            return (
                f"reconciler: {where} refuses VM {incoming.vm} ({domain}): it needs"
                f" {incoming.memory_bytes} bytes of memory and only {free_memory} of"
                f" {state.memory_bytes} are free{coming}"
            )
    return ""
