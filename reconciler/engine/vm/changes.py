"""The difference between the spec a VM runs with and the spec it should have.

Follows the platform's comparators (reference/dvp-api.md §3.2-3.3): paths as the
platform emits them, `add` / `remove` / `replace`, `cpu` as one change when
both cores and coreFraction moved, block devices keyed by (kind, name). Which
changes wait for a restart is data: policies/change-application*.yaml.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.policies import ChangeAction, ChangeRule, TopologyPolicy
from reconciler.rules.topology import TopologyError, topology_for

JSON = Any

# Read live by the engine, never diffed (dvp-api.md §3.3 "Not compared at all").
NOT_COMPARED = frozenset({"liveMigrationPolicy"})
# The JSON field is virtualMachineIPAddressName; the platform reports the change
# under this shorter path (dvp-api.md §10b), and so do we.
PATH_ALIASES = {"virtualMachineIPAddressName": "virtualMachineIPAddress"}
# Fields diffed member by member rather than as a whole value.
NESTED = frozenset({"disruptions", "memory"})


@dataclass(frozen=True)
class Change:
    path: str
    operation: str  # add | remove | replace
    current: JSON
    desired: JSON
    action: ChangeAction

    def as_status(self) -> dict[str, JSON]:
        entry: dict[str, JSON] = {"operation": self.operation, "path": self.path}
        if self.current is not None:
            entry["currentValue"] = self.current
        if self.desired is not None:
            entry["desiredValue"] = self.desired
        return entry


def _empty(value: JSON) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _operation(current: JSON, desired: JSON) -> str | None:
    if _empty(current) and _empty(desired):
        return None
    if _empty(current):
        return "add"
    if _empty(desired):
        return "remove"
    return None if current == desired else "replace"


SocketsOf = Callable[[int], int | None]


@dataclass(frozen=True)
class ChangeTable:
    """The ordered rules of one profile plus what their `when` conditions need."""

    rules: Sequence[ChangeRule]
    sockets_of: SocketsOf

    def action(self, path: str, operation: str, current: JSON, desired: JSON) -> ChangeAction:
        for rule in self.rules:
            if rule.operation is not None and rule.operation != operation:
                continue
            if not fnmatch.fnmatchcase(path, rule.path):
                continue
            if rule.when == "sameSockets" and not self._same_sockets(current, desired):
                continue
            return rule.action
        return ChangeAction.RESTART

    def _same_sockets(self, current: JSON, desired: JSON) -> bool:
        def cores(value: JSON) -> int | None:
            if isinstance(value, dict):
                value = value.get("cores")
            return value if isinstance(value, int) else None

        before, after = cores(current), cores(desired)
        if before is None or after is None:
            return False
        sockets = self.sockets_of(before)
        return sockets is not None and sockets == self.sockets_of(after)


def compare_specs(
    current: dict[str, JSON], desired: dict[str, JSON], table: ChangeTable
) -> list[Change]:
    """Every change from `current` to `desired`, sorted by path as the platform lists them."""
    if current == desired:
        return []  # the common case on a resync: nothing to walk
    changes: list[Change] = []

    def emit(path: str, before: JSON, after: JSON) -> None:
        operation = _operation(before, after)
        if operation is not None:
            action = table.action(path, operation, before, after)
            changes.append(Change(path, operation, before, after, action))

    for key in sorted(set(current) | set(desired)):
        if key in NOT_COMPARED:
            continue
        before, after = current.get(key), desired.get(key)
        if before == after:
            continue
        if key == "cpu":
            _compare_cpu(before or {}, after or {}, emit)
        elif key == "blockDeviceRefs":
            changes.extend(_compare_block_devices(before or [], after or [], table))
        elif key == "provisioning":
            _compare_provisioning(before, after, emit)
        elif key in NESTED and isinstance(before, dict) and isinstance(after, dict):
            for member in sorted(set(before) | set(after)):
                emit(f"{key}.{member}", before.get(member), after.get(member))
        else:
            emit(PATH_ALIASES.get(key, key), before, after)
    return sorted(changes, key=lambda change: change.path)


def _compare_cpu(before: dict[str, JSON], after: dict[str, JSON], emit: Any) -> None:
    cores_moved = before.get("cores") != after.get("cores")
    fraction_moved = before.get("coreFraction") != after.get("coreFraction")
    if cores_moved and fraction_moved:
        emit("cpu", before, after)
    elif cores_moved:
        emit("cpu.cores", before.get("cores"), after.get("cores"))
    elif fraction_moved:
        emit("cpu.coreFraction", before.get("coreFraction"), after.get("coreFraction"))


def _compare_provisioning(before: JSON, after: JSON, emit: Any) -> None:
    if not isinstance(before, dict) or not isinstance(after, dict):
        emit("provisioning", before, after)
        return
    if before.get("type") != after.get("type"):
        emit("provisioning", before.get("type"), after.get("type"))
        return
    for member in sorted((set(before) | set(after)) - {"type"}):
        emit(f"provisioning.{member}", before.get(member), after.get(member))


def _device_key(ref: dict[str, JSON]) -> tuple[str, str]:
    return (str(ref.get("kind")), str(ref.get("name")))


def _compare_block_devices(
    before: list[dict[str, JSON]], after: list[dict[str, JSON]], table: ChangeTable
) -> list[Change]:
    """dvp-api.md §3.3: whole-list add/remove, else per index; adds by desired index,
    removes and moves by current index, an add and a remove at one index become a replace."""

    def change(path: str, op: str, current: JSON, desired: JSON) -> Change:
        return Change(path, op, current, desired, table.action(path, op, current, desired))

    if not before or not after:
        op = _operation(before, after)
        return [change("blockDeviceRefs", op, before or None, after or None)] if op else []
    before_keys = [_device_key(ref) for ref in before]
    after_keys = [_device_key(ref) for ref in after]
    added = {i: ref for i, ref in enumerate(after) if _device_key(ref) not in before_keys}
    removed = {i: ref for i, ref in enumerate(before) if _device_key(ref) not in after_keys}
    changes: list[Change] = []
    if not added and not removed:
        for index, ref in enumerate(before):
            if index >= len(after) or ref != after[index]:
                desired = after[index] if index < len(after) else None
                changes.append(change(f"blockDeviceRefs.{index}", "replace", ref, desired))
        return changes
    for index in sorted(set(added) | set(removed)):
        path = f"blockDeviceRefs.{index}"
        if index in added and index in removed:
            changes.append(change(path, "replace", removed[index], added[index]))
        elif index in added:
            changes.append(change(path, "add", None, added[index]))
        else:
            changes.append(change(path, "remove", removed[index], None))
    return changes


def change_table_for(rules: Sequence[ChangeRule], topology: TopologyPolicy) -> ChangeTable:
    """The table for these rules, with the sockets each core count gets under `topology`
    (a count the policy has no band for has none)."""

    def sockets_of(cores: int) -> int | None:
        try:
            return topology_for(topology, cores).sockets
        except TopologyError:
            return None

    return ChangeTable(rules, sockets_of)
