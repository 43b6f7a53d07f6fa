"""A check made from the last check's findings (rules/recheck.py) equals a full one.

Random repositories meeting every rule are changed at random, mostly as a push edits
them: a manifest replaced by another of the same identity (a VM's cores, a class's
sizing, a Secret's type), a file read again with a comment above its documents (the
same objects, every finding a line lower), besides files added, deleted or rewritten.
Unchanged files keep their objects, as the daemon's manifest cache keeps them. After
each change the check is compared with one made with nothing kept.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.loader import LoadResult, load_text
from reconciler.rules import Pool, check, recheck
from reconciler.rules import inventory as inventory_module
from reconciler.rules.inventory import Inventory
from tests.conftest import docs, vm_yaml
from tests.rules.test_incremental_check import DOCUMENTS

FILES = [f"f{index}.yaml" for index in range(4)]
# Each document with the others of the same identity: an edit keeps the identity.
SAME_IDENTITY = {
    document: [
        other
        for other in DOCUMENTS
        if [o.id for o in load_text(other, "x").objects]
        == [o.id for o in load_text(document, "x").objects]
    ]
    for document in DOCUMENTS
}
# More VMs of one identity: the edits a push makes most.
# More VMs of one identity: the edits a push makes most, and those that change what a
# VM refers to or claims (another VM's disk, an address, a class).
for variant in (
    vm_yaml("a", cores=3),
    vm_yaml("a", memory="2Gi"),
    vm_yaml("a", disks=["b-root"]),
    vm_yaml("a", disks=["c"]),
    vm_yaml("a", ip="ip1"),
    vm_yaml("a", vmclass="open"),
):
    for document, same in SAME_IDENTITY.items():
        if document.startswith(vm_yaml("a").split("spec:")[0]) and "name: a\n" in document:
            same.append(variant)
POOLS = st.sampled_from([None, (ipaddress.IPv4Network("10.0.0.0/24"),)])


@contextmanager
def nothing_kept() -> Iterator[None]:
    last = list(recheck._LAST)
    made = list(inventory_module._LAST_MADE)
    recheck.forget()
    inventory_module._LAST_MADE.clear()
    try:
        yield
    finally:
        recheck._LAST[:] = last
        inventory_module._LAST_MADE[:] = made


@st.composite
def edits(draw: st.DrawFn, texts: dict[str, list[str]]) -> None:
    """One change of one file; `texts` holds each file's documents."""
    name = draw(st.sampled_from(FILES))
    documents = texts.get(name)
    kind = draw(st.sampled_from(("edit", "edit", "touch", "new", "delete")))
    if documents is None or kind == "new":
        texts[name] = draw(st.lists(st.sampled_from(DOCUMENTS), min_size=1, max_size=3))
    elif kind == "edit":
        at = draw(st.integers(0, len(documents) - 1))
        documents[at] = draw(st.sampled_from(SAME_IDENTITY.get(documents[at], [documents[at]])))
    elif kind == "touch":
        documents[0] = "# read again\n" + documents[0]
    else:
        del texts[name]


def combined(loads: dict[str, LoadResult]) -> LoadResult:
    result = LoadResult()
    for name in sorted(loads):
        result.extend(loads[name])
    return result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.dictionaries(
        st.sampled_from(FILES), st.lists(st.sampled_from(DOCUMENTS), min_size=1, max_size=3)
    ),
    pool=POOLS,
    encrypted=st.booleans(),
    data=st.data(),
)
def test_a_check_from_the_last_one_equals_a_full_one(
    start: dict[str, list[str]], pool: Pool | None, encrypted: bool, data: st.DataObject
) -> None:
    texts = {name: list(documents) for name, documents in start.items()}
    kept: dict[str, tuple[str, LoadResult]] = {}
    for _ in range(data.draw(st.integers(1, 8))):
        loads = {}
        for name, documents in texts.items():
            text = docs(*documents)
            if name not in kept or kept[name][0] != text:
                kept[name] = (text, load_text(text, name))  # unchanged files keep objects
            loads[name] = kept[name][1]
        result = combined(loads)
        before = inventory_module._LAST_MADE[0][4] if inventory_module._LAST_MADE else None
        found = check(result, pool, require_encrypted_secrets=encrypted)
        with nothing_kept():
            assert found == check(result, pool, require_encrypted_secrets=encrypted)
        # The inventory made from the last one is the one made whole, and knows what
        # replaced what.
        made, whole = Inventory.of(result), Inventory(result)
        assert indexes(made) == indexes(whole)
        if before is not None:
            assert made.replaced_since(before) == whole.replaced_since(before)
        data.draw(edits(texts))


def indexes(inventory: Inventory) -> tuple[object, ...]:
    return (
        [id(o) for o in inventory.objects],
        [(id(a), id(b)) for a, b in inventory.duplicates],
        {key: id(o) for key, o in inventory._by_id.items()},
        {key: [id(o) for o in same] for key, same in inventory._by_class.items()},
        inventory._broken,
        inventory._broken_findings,
        inventory.secrets,
    )


def test_an_edited_vm_is_checked_alone() -> None:
    texts = {"a.yaml": vm_yaml("a"), "b.yaml": vm_yaml("b", cores=200)}
    loads = {name: load_text(text, name) for name, text in texts.items()}
    first = check(combined(loads))
    before = recheck._LAST[0]
    loads["a.yaml"] = load_text("# edited\n" + vm_yaml("a", cores=2), "a.yaml")
    result = combined(loads)
    again = check(result)
    # b's findings are the last check's very objects: nothing but a was checked again.
    kept = [f for f in again if f.object.endswith("/b")]
    assert kept and all(any(f is g for g in before.findings) for f in kept)
    # a's are made again: a line lower.
    assert [f.line + 1 for f in first if f.object.endswith("/a")] == [
        f.line for f in again if f.object.endswith("/a")
    ]
    with nothing_kept():
        assert again == check(result)


def test_an_edit_that_claims_another_vms_disk_is_found_in_the_other_vm() -> None:
    loads = {
        "a.yaml": load_text(vm_yaml("a"), "a.yaml"),
        "c.yaml": load_text(vm_yaml("c", disks=["b-root"]), "c.yaml"),
    }
    check(combined(loads))
    loads["a.yaml"] = load_text(vm_yaml("a", disks=["b-root"]), "a.yaml")
    result = combined(loads)
    found = check(result)
    assert any(f.object.endswith("/c") and "already used by" in f.message for f in found)
    with nothing_kept():
        assert found == check(result)


def test_an_inventory_whose_broken_objects_changed_replaced_nothing_in_place() -> None:
    broken = DOCUMENTS[-1]  # a VirtualMachine `a` whose spec is no mapping
    loads = {"b.yaml": load_text(vm_yaml("b"), "b.yaml"), "a.yaml": load_text(broken, "a.yaml")}
    before = Inventory.of(combined(loads))
    del loads["a.yaml"]
    result = combined(loads)
    assert Inventory.of(result).replaced_since(before) is None
    assert indexes(Inventory.of(result)) == indexes(Inventory(result))
