"""`reconciler describe vm`: one VM as `d8 k describe vm` prints it.

Nested values are laid out as kubectl describe does (camelCase keys as words, labels
aligned within a mapping); conditions are a table, and the changes a VM waits to
restart for are spelled out, since that is what an operator opens describe for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.api import RunPolicy
from reconciler.cli.tables import Listed, parse_time

# Word breaks of a camelCase key: "coreFraction", "virtualMachineIPAddressName".
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# What a VM without spec.runPolicy runs with (api/vm.py's default).
DEFAULT_RUN_POLICY = str(RunPolicy.ALWAYS_ON_UNLESS_STOPPED_MANUALLY)


def _field_label(key: str) -> str:
    """kubectl describe's labels: camelCase split into words, first letter upper."""
    words = _WORD_BREAK.sub(" ", key)
    return words[:1].upper() + words[1:]


def _nested(value: Any, indent: int) -> list[str]:
    """A value as kubectl describe nests it: labels aligned within each mapping."""
    pad = "  " * indent
    if isinstance(value, list):
        lines: list[str] = []
        for item in value:
            lines.extend(
                _nested(item, indent) if isinstance(item, Mapping) else [pad + _scalar(item)]
            )
        return lines
    if not isinstance(value, Mapping):
        return [pad + _scalar(value)]
    labels = {key: _field_label(str(key)) + ":" for key in value}
    width = max((len(labels[k]) for k, v in value.items() if not _is_block(v)), default=0)
    lines = []
    for key, item in value.items():
        if _is_block(item):
            lines += [pad + labels[key], *_nested(item, indent + 1)]
        else:
            lines.append(f"{pad}{labels[key].ljust(width)}  {_scalar(item)}".rstrip())
    return lines


def _is_block(value: Any) -> bool:
    return isinstance(value, Mapping | list) and bool(value)


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return "<none>" if not value else json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value).rstrip("\n").replace("\n", "\n    ")


def _pairs(values: Any) -> str:
    if not isinstance(values, Mapping) or not values:
        return "<none>"
    return "\n              ".join(f"{key}={values[key]}" for key in sorted(values))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _spec_lines(spec: Mapping[str, Any]) -> list[str]:
    """The parts of a VM's spec an operator looks for first; user data stays out."""
    cpu = _mapping(spec.get("cpu"))
    memory = _mapping(spec.get("memory"))
    shown: dict[str, Any] = {
        "virtualMachineClassName": spec.get("virtualMachineClassName", ""),
        "cpu": {"cores": cpu.get("cores", ""), "coreFraction": cpu.get("coreFraction", "")},
        "memory": {"size": memory.get("size", "")},
        "runPolicy": spec.get("runPolicy", DEFAULT_RUN_POLICY),
        "blockDeviceRefs": spec.get("blockDeviceRefs", []),
    }
    if spec.get("virtualMachineIPAddressName"):
        shown["virtualMachineIPAddressName"] = spec["virtualMachineIPAddressName"]
    return ["Spec:", *_nested(shown, 1)]


def _conditions_lines(conditions: Any) -> list[str]:
    if not isinstance(conditions, list) or not conditions:
        return ["  Conditions:  <none>"]
    header = ["Type", "Status", "Reason", "Message", "LastTransitionTime"]
    rows = [
        [str(c.get(key, "") or "") for key in ("type", "status", "reason", "message")]
        + [str(c.get("lastTransitionTime", "") or "")]
        for c in conditions
        if isinstance(c, Mapping)
    ]
    rule = ["-" * len(title) for title in header]
    widths = [max(len(line[i]) for line in (header, rule, *rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "    " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return ["  Conditions:", line(header), line(rule), *(line(row) for row in rows)]


def _restart_lines(changes: Any) -> list[str]:
    if not isinstance(changes, list) or not changes:
        return []
    lines = ["  Restart Awaiting Changes:"]
    for change in changes:
        if isinstance(change, Mapping):
            current = _scalar(change.get("currentValue"))
            desired = _scalar(change.get("desiredValue"))
            lines.append(
                f"    {change.get('path', '')}  {change.get('operation', '')}"
                f"  {current} -> {desired}"
            )
    return lines


def _status_lines(status: Mapping[str, Any] | None) -> list[str]:
    if status is None:
        return ["Status:  <none>  (no host has reported this VM yet)"]
    lines = [
        "Status:",
        f"  Phase:       {status.get('phase', '')}",
        f"  Node Name:   {status.get('nodeName', '')}".rstrip(),
        f"  IP Address:  {status.get('ipAddress', '')}".rstrip(),
    ]
    if status.get("appliedRevision"):
        lines.append(f"  Applied Revision:  {status['appliedRevision']}")
    if isinstance(status.get("resources"), Mapping):
        lines += ["  Resources:", *_nested(status["resources"], 2)]
    if isinstance(status.get("migrationState"), Mapping) and status["migrationState"]:
        # Where a Migrating VM goes: get's NODE stays the source until it arrives.
        lines += ["  Migration State:", *_nested(status["migrationState"], 2)]
    lines += _conditions_lines(status.get("conditions"))
    lines += _restart_lines(status.get("restartAwaitingChanges"))
    if isinstance(status.get("guestOSInfo"), Mapping) and status["guestOSInfo"]:
        lines += ["  Guest OS Info:", *_nested(status["guestOSInfo"], 2)]
    return lines


def _timestamp(moment: datetime | None) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S %z") if moment else "<unknown>"


def describe_vm(listed: Listed) -> str:
    """`d8 k describe vm NAME`: metadata, the spec's essentials, status and conditions."""
    document = listed.document()
    metadata = document["metadata"]
    created = parse_time(listed.created) if listed.created else None
    lines = [
        f"Name:         {listed.object_id.name}",
        f"Namespace:    {listed.object_id.namespace}",
        f"Labels:       {_pairs(metadata.get('labels'))}",
        f"Annotations:  {_pairs(metadata.get('annotations'))}",
        f"API Version:  {listed.api_version}",
        f"Kind:         {listed.object_id.kind}",
        "Metadata:",
        f"  Creation Timestamp:  {_timestamp(created)}",
    ]
    if listed.manifest is not None:
        lines += _spec_lines(listed.spec)
    else:
        lines.append("Spec:  <none>  (no manifest in the checkout)")
    lines += _status_lines(listed.status)
    lines.append("Events:  <none>")
    return "\n".join(lines)
