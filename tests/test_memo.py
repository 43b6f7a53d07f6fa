"""The identity memo: served only for the very objects an entry was made from."""

from __future__ import annotations

from reconciler.memo import IdentityMemo


class Thing:
    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Thing) and other.value == self.value

    def __hash__(self) -> int:
        return self.value


def test_an_entry_is_served_for_the_same_objects_only() -> None:
    memo: IdentityMemo[str] = IdentityMemo()
    a, b = Thing(1), Thing(2)
    assert memo.put((a, b), "ab") == "ab"
    assert memo.get(a, b) == "ab"
    assert memo.get(Thing(1), b) is None  # equal is not enough
    assert memo.get(b, a) is None


def test_entries_hold_their_objects_so_an_id_is_not_reused() -> None:
    memo: IdentityMemo[int] = IdentityMemo()
    for value in range(100):
        memo.put((Thing(value),), value)  # dropped by the caller at once
    fresh = [Thing(value) for value in range(100)]
    assert all(memo.get(thing) is None for thing in fresh)


def test_the_memo_empties_itself_past_its_limit() -> None:
    memo: IdentityMemo[int] = IdentityMemo(limit=3)
    things = [Thing(value) for value in range(4)]
    for thing in things[:3]:
        memo.put((thing,), thing.value)
    assert len(memo) == 3
    memo.put((things[3],), 3)
    assert len(memo) == 1
    assert memo.get(things[3]) == 3 and memo.get(things[0]) is None
