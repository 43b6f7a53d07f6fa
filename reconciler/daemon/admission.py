"""What the QEMU hook weighs an incoming live migration against (libvirt/hook.py): after
each pass the daemon writes the host's guaranteed capacity and what its running VMs
hold into its cacheDir, whole or not at all (the hook may read it at any moment)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

from reconciler.api import VirtualMachine
from reconciler.api.quantity import Quantity, QuantityError
from reconciler.engine.plan import Plan
from reconciler.engine.vm.desired import HostContext
from reconciler.libvirt.hook import state_document, state_path
from reconciler.model.names import domain_name

log = logging.getLogger("reconciler.daemon")


def held_by_running_vms(plan: Plan, node: str) -> dict[str, tuple[int, int]]:
    """Domain name -> (guaranteed millicores, memory bytes) of every VM the pass found
    running on this host: a VM states its requestedCores only while its domain is active."""
    held: dict[str, tuple[int, int]] = {}
    for object_id, status in plan.statuses.items():
        if object_id.kind != VirtualMachine.KIND or status.node_name != node:
            continue
        if status.requested_millicores is None:
            continue
        try:
            memory = Quantity(status.memory).bytes if status.memory else 0
        except QuantityError:
            memory = 0  # the spec it runs with was checked when it was applied
        held[domain_name(object_id)] = (status.requested_millicores, memory)
    return held


def write_admission_state(cache_dir: Path, host: HostContext, plan: Plan) -> None:
    """The state file for the hook; a failure is logged and costs only the hook's check
    (it lets migrations through while it has no state)."""
    document = state_document(
        host.node_name,
        host.cpu_capacity_millicores,
        host.memory_capacity_bytes,
        held_by_running_vms(plan, host.node_name),
    )
    path = state_path(cache_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(document, file, separators=(",", ":"))
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as error:
        log.warning("cannot write %s for the migration hook: %s", path, error)
