"""The destination re-checks capacity before it accepts a live migration (issue 14), by
libvirt's own mechanism: its QEMU hook, `reconciler hook qemu DOMAIN migrate begin -`
with the incoming domain's XML on stdin, exiting 1 with a one-line reason to refuse.

The XML is what libvirt's test driver gives for a domain a pass defined (the migratable
XML, as a source sends it); the state is what the daemon writes after a pass. The hook
runs as libvirtd runs it: a process of its own, the XML on its stdin.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import libvirt
import pytest

from reconciler.daemon.admission import held_by_running_vms, write_admission_state
from reconciler.engine.vm.desired import HostContext
from reconciler.libvirt.hook import STATE_FILE
from tests.hosts import Host, vm_yaml

CHECKOUT = Path(__file__).resolve().parents[2]
GIB = 1 << 30
DOMAIN = "incoming.default"


def run_hook(
    cache_dir: Path, xml: bytes, *arguments: str, domain: str = DOMAIN
) -> subprocess.CompletedProcess[bytes]:
    """The hook as libvirtd runs it: `qemu DOMAIN OPERATION SUBOP EXTRA`, XML on stdin."""
    operation = arguments or ("migrate", "begin", "-")
    command = ["hook", "qemu", "--cache-dir", str(cache_dir), "--", domain, *operation]
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *command],
        input=xml,
        cwd=CHECKOUT,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def incoming_xml(host: Host) -> bytes:
    """The XML of a VM of two full cores and 2 GiB, as its source host sends it."""
    host.write("vm.yaml", vm_yaml("incoming", cores=2, fraction="100%", memory="2Gi"))
    host.reconcile()
    return host.domain(DOMAIN).XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE).encode()


def destination(
    tmp_path: Path, cpus: int, memory_gib: int, held: dict[str, tuple[int, int]]
) -> Path:
    """A destination's cacheDir, with the state its daemon wrote after its last pass."""
    cache_dir = tmp_path / "destination-cache"
    cache_dir.mkdir(exist_ok=True)
    (cache_dir / STATE_FILE).write_text(
        json.dumps(
            {
                "format": 1,
                "node": "hv2",
                "capacity": {"cpuMillicores": cpus * 1000, "memoryBytes": memory_gib * GIB},
                "domains": {name: list(share) for name, share in held.items()},
            }
        ),
        encoding="utf-8",
    )
    return cache_dir


def test_a_vm_that_fits_is_accepted_silently(tmp_path: Path, incoming_xml: bytes) -> None:
    # given a destination with 4 CPUs and 8 GiB, one VM holding 1 CPU and 1 GiB
    cache_dir = destination(tmp_path, 4, 8, {"other.default": (1000, GIB)})
    # when libvirt asks the hook about the incoming VM of 2 CPUs and 2 GiB
    done = run_hook(cache_dir, incoming_xml)
    # then it is accepted, and nothing is printed that libvirt would take for new XML
    assert done.returncode == 0
    assert done.stdout == b"" and done.stderr == b""


def test_a_vm_needing_more_cpu_than_is_free_is_refused_with_the_reason(
    tmp_path: Path, incoming_xml: bytes
) -> None:
    # given a destination of 4 CPUs whose VMs hold 3
    cache_dir = destination(tmp_path, 4, 64, {"other.default": (3000, GIB)})
    # when the VM of two full cores would arrive
    done = run_hook(cache_dir, incoming_xml)
    # then the migration is refused, with one line that says why
    assert done.returncode == 1
    assert done.stdout == b""
    reason = done.stderr.decode()
    assert reason.count("\n") == 1
    assert "Node hv2 refuses VM default/incoming" in reason
    assert "needs 2000m of guaranteed CPU and only 1000m of 4000m are free" in reason


def test_a_vm_needing_more_memory_than_is_free_is_refused_with_the_reason(
    tmp_path: Path, incoming_xml: bytes
) -> None:
    cache_dir = destination(tmp_path, 64, 4, {"other.default": (1000, 3 * GIB)})

    done = run_hook(cache_dir, incoming_xml)

    assert done.returncode == 1
    assert f"needs {2 * GIB} bytes of memory and only {GIB} of {4 * GIB}" in done.stderr.decode()


def test_a_domain_the_state_still_counts_here_is_not_counted_twice(
    tmp_path: Path, incoming_xml: bytes
) -> None:
    # given a destination the VM left a moment ago: the state still counts it there
    cache_dir = destination(tmp_path, 2, 2, {DOMAIN: (2000, 2 * GIB)})
    # then it may come back
    assert run_hook(cache_dir, incoming_xml).returncode == 0


@pytest.mark.parametrize(
    "operation",
    [("prepare", "begin", "-"), ("start", "begin", "-"), ("migrate", "end", "-")],
)
def test_every_other_operation_is_let_through_on_a_full_host(
    tmp_path: Path, incoming_xml: bytes, operation: tuple[str, str, str]
) -> None:
    cache_dir = destination(tmp_path, 1, 1, {"other.default": (1000, GIB)})

    assert run_hook(cache_dir, incoming_xml, *operation).returncode == 0


def test_a_domain_that_is_not_ours_is_let_through_on_a_full_host(
    tmp_path: Path, host: Host
) -> None:
    # given the test driver's own domain `test`, without our metadata
    theirs = host.connection.lookupByName("test").XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
    cache_dir = destination(tmp_path, 1, 1, {"other.default": (1000, GIB)})

    done = run_hook(cache_dir, theirs.encode(), domain="test")

    assert done.returncode == 0 and done.stderr == b""


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (b"not xml at all", "does not parse"),
        (b"<domain><name>x</name>", "does not parse"),
        (b"<network/>", "not a <domain>"),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><domain>&a;</domain>',
            "declares a document type",
        ),
        (b"<domain>" + b" " * (9 << 20) + b"</domain>", "larger than"),
    ],
)
def test_an_incoming_xml_that_cannot_be_read_is_refused_with_the_reason(
    tmp_path: Path, xml: bytes, reason: str
) -> None:
    cache_dir = destination(tmp_path, 64, 64, {})

    done = run_hook(cache_dir, xml)

    assert done.returncode == 1
    assert f"refusing the incoming migration of {DOMAIN}" in done.stderr.decode()
    assert reason in done.stderr.decode()


@pytest.mark.parametrize("state", [None, "{not json", '{"format": 1, "capacity": "lots"}'])
def test_without_a_usable_state_the_migration_is_accepted_and_the_hook_says_so(
    tmp_path: Path, incoming_xml: bytes, state: str | None
) -> None:
    # given a destination whose daemon never ran (or whose state is damaged)
    cache_dir = tmp_path / "never-ran"
    cache_dir.mkdir()
    if state is not None:
        (cache_dir / STATE_FILE).write_text(state, encoding="utf-8")
    # then a migration is never blocked for it, and the hook says why it did not check
    done = run_hook(cache_dir, incoming_xml)
    assert done.returncode == 0
    assert "accepting the incoming migration of incoming.default unchecked" in done.stderr.decode()


def test_the_daemons_state_counts_what_its_running_vms_hold(host: Host, tmp_path: Path) -> None:
    # given a host running a VM of one full core and 1 GiB, and one of 2 cores at 50%
    host.write("a.yaml", vm_yaml("a", cores=1, fraction="100%", memory="1Gi"))
    host.write("b.yaml", vm_yaml("b", cores=2, fraction="50%", memory="2Gi"))
    result, _ = host.reconcile()
    # when the daemon writes its state after the pass
    context: HostContext = replace(host.context, memory_capacity_bytes=8 * GIB)
    write_admission_state(tmp_path, context, result.statuses_plan)
    # then it holds the host's capacity and each running VM's share
    state = json.loads((tmp_path / STATE_FILE).read_text(encoding="utf-8"))
    assert state["capacity"] == {"cpuMillicores": 16000, "memoryBytes": 8 * GIB}
    assert state["domains"] == {"a.default": [1000, GIB], "b.default": [1000, 2 * GIB]}
    assert held_by_running_vms(result.statuses_plan, "elsewhere") == {}


def test_the_hook_refuses_a_vm_the_daemons_own_state_has_no_room_for(
    host: Host, tmp_path: Path, incoming_xml: bytes
) -> None:
    # given the state a daemon wrote for a host of 3 CPUs already running `incoming` (2)
    result = host.passes[-1]
    context = replace(host.context, node_name="hv1", cpu_capacity_millicores=3000)
    write_admission_state(tmp_path, context, result.statuses_plan)
    # when another VM of the same size arrives
    xml = incoming_xml.replace(b"<name>incoming.default</name>", b"<name>twin.default</name>")
    done = run_hook(tmp_path, xml, domain="twin.default")
    # then it does not fit beside it
    assert done.returncode == 1
    assert "only 1000m of 3000m are free" in done.stderr.decode()


# --- migrations let in since the daemon's last pass -----------------------------------


def twin(xml: bytes, name: str) -> bytes:
    """The incoming XML of another VM of the same size."""
    return xml.replace(b"<name>incoming.default</name>", f"<name>{name}</name>".encode())


def test_a_second_vm_arriving_before_the_daemon_passes_counts_the_first(
    tmp_path: Path, incoming_xml: bytes
) -> None:
    # given a destination of 3 free CPUs, as its daemon last wrote
    cache_dir = destination(tmp_path, 3, 64, {})
    # when two VMs of 2 CPUs each are sent to it, one after the other (a drain)
    first = run_hook(cache_dir, incoming_xml)
    second = run_hook(cache_dir, twin(incoming_xml, "twin.default"), domain="twin.default")
    # then the first is let in and the second is refused: both would not fit
    assert first.returncode == 0
    assert second.returncode == 1
    assert "only 1000m of 3000m are free (1 more arriving)" in second.stderr.decode()


def test_a_migration_libvirt_released_no_longer_counts(tmp_path: Path, incoming_xml: bytes) -> None:
    # given a VM let in whose migration then failed: libvirt releases its domain here
    cache_dir = destination(tmp_path, 3, 64, {})
    assert run_hook(cache_dir, incoming_xml).returncode == 0
    assert run_hook(cache_dir, b"", "release", "end", "-").returncode == 0
    # then another of the same size fits in its room
    done = run_hook(cache_dir, twin(incoming_xml, "twin.default"), domain="twin.default")
    assert done.returncode == 0


def test_a_vm_that_arrived_is_counted_once_the_daemons_state_has_it(
    tmp_path: Path, incoming_xml: bytes
) -> None:
    # given a destination of 4 free CPUs that let in a VM of 2
    cache_dir = destination(tmp_path, 4, 64, {})
    assert run_hook(cache_dir, incoming_xml).returncode == 0
    # when its daemon's next pass counts that VM as running there
    destination(tmp_path, 4, 64, {DOMAIN: (2000, 2 * GIB)})
    # then a second VM of 2 CPUs fits beside it: the first is not counted twice
    done = run_hook(cache_dir, twin(incoming_xml, "twin.default"), domain="twin.default")
    assert done.returncode == 0
