"""The rules' findings for objects seen before equal a fresh check's.

The rules keep what they read off each object with it (rules/derived.py), and a
daemon's pass hands them the very objects of the pass before for every unchanged
file. Over random sequences of file changes, a check of such a mix of old and new
objects gives exactly the findings of a check of everything loaded afresh.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.loader import LoadResult, load_text
from reconciler.rules import Pool, check
from tests.conftest import (
    OPEN_CLASS,
    REFERENCE_CLASS,
    USER_DATA_REF,
    disk_yaml,
    docs,
    vm_yaml,
    vmip_yaml,
)

BIG_USER_DATA = "provisioning:\n  type: UserData\n  userData: " + "x" * 20000 + "\n"


def _secret(kind: str, key: str) -> str:
    return (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cloud-init\n"
        f"type: {kind}\nstringData:\n  {key}: hello\n"
    )


def _vmbda(disk: str) -> str:
    return (
        "apiVersion: virtualization.deckhouse.io/v1alpha2\n"
        "kind: VirtualMachineBlockDeviceAttachment\n"
        "metadata:\n  name: attach\n"
        "spec:\n  virtualMachineName: a\n"
        f"  blockDeviceRef:\n    kind: VirtualDisk\n    name: {disk}\n"
    )


# Documents that, together, meet every rule: missing and broken references, sizing
# and topology, duplicates, claims on one disk, IP and address, volume names.
DOCUMENTS = [
    REFERENCE_CLASS,
    REFERENCE_CLASS.replace("max: 8Gi", "max: 2Gi"),  # the class changes under its VMs
    OPEN_CLASS,
    vm_yaml("a"),
    vm_yaml("a", cores=2, memory="4Gi"),
    vm_yaml("b", cores=6),
    vm_yaml("b", cores=3, fraction="30%"),
    vm_yaml("c", vmclass="open", disks=["a-root"]),
    vm_yaml("d", ip="ip1"),
    vm_yaml("e", ip="ip1", vmclass="missing"),
    vm_yaml("f", extra_spec=USER_DATA_REF),
    vm_yaml("g", cores=200, extra_spec=BIG_USER_DATA),
    disk_yaml("a-root"),
    disk_yaml("b-root"),
    disk_yaml("b-c", namespace="a"),
    disk_yaml("c", namespace="a-b"),
    vmip_yaml("ip1", "10.0.0.5"),
    vmip_yaml("ip2", "10.0.0.5"),
    vmip_yaml("ip3", "10.0.0.0"),
    _secret("provisioning.virtualization.deckhouse.io/cloud-init", "userData"),
    _secret("provisioning.virtualization.deckhouse.io/cloud-init", "other"),
    _secret("Opaque", "userData"),
    _vmbda("a-root"),
    _vmbda("nowhere"),
    "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualMachine\n"
    "metadata:\n  name: a\nspec: 5\n",
]
FILES = [f"f{index}.yaml" for index in range(4)]
CONTENT = st.lists(st.sampled_from(DOCUMENTS), min_size=1, max_size=3).map(lambda d: docs(*d))
# A change: a file's new text, or None to delete it.
CHANGES = st.lists(
    st.dictionaries(st.sampled_from(FILES), st.none() | CONTENT, min_size=1, max_size=3),
    min_size=1,
    max_size=6,
)
POOLS = st.sampled_from([None, (ipaddress.IPv4Network("10.0.0.0/24"),)])


def _combined(loads: dict[str, LoadResult]) -> LoadResult:
    result = LoadResult()
    for name in sorted(loads):
        result.extend(loads[name])
    return result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A class changed under a VM of an unchanged file: its sizing is judged again.
@example(
    start={"f0.yaml": DOCUMENTS[0], "f1.yaml": DOCUMENTS[4]},
    changes=[{"f0.yaml": DOCUMENTS[1]}, {"f0.yaml": DOCUMENTS[0]}],
    pool=None,
    encrypted=False,
)
@given(
    start=st.dictionaries(st.sampled_from(FILES), CONTENT, min_size=1),
    changes=CHANGES,
    pool=POOLS,
    encrypted=st.booleans(),
)
def test_a_check_of_objects_seen_before_equals_a_fresh_one(
    start: dict[str, str],
    changes: list[dict[str, str | None]],
    pool: Pool | None,
    encrypted: bool,
) -> None:
    texts = dict(start)
    kept = {name: load_text(text, name) for name, text in texts.items()}
    check(_combined(kept), pool, require_encrypted_secrets=encrypted)
    for change in changes:
        for name, text in change.items():
            if text is None:
                texts.pop(name, None)
                kept.pop(name, None)
            elif texts.get(name) != text:
                texts[name] = text
                kept[name] = load_text(text, name)  # unchanged files keep their objects
        fresh = {name: load_text(text, name) for name, text in texts.items()}

        again = check(_combined(kept), pool, require_encrypted_secrets=encrypted)

        assert again == check(_combined(fresh), pool, require_encrypted_secrets=encrypted)
