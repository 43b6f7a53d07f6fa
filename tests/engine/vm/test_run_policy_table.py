"""Every cell of docs/engine.md's "Run policies" table, driven through the planner.

The table is read from the document itself: a row, column or cell wording the tests do
not know fails here, so the document cannot say what the engine does not do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.engine.plan import Observation, PlanContext, plan
from reconciler.model.actions import CarryOutOperation, DefineDomain, StartDomain, StopDomain
from reconciler.model.domain import PowerState
from tests.engine.operations.vmops import (
    DOMAIN,
    LINUX_VM,
    context,
    defined,
    next_context,
    operation_actions,
    report,
    vmop_yaml,
    whole_pass,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "engine.md"
POLICIES = ("AlwaysOn", "AlwaysOnUnlessStoppedManually", "Manual", "AlwaysOff")
STOP_NAME, RESTART_NAME, START_NAME = (
    "stop-linux-vm-1718000000",
    "restart-linux-vm-1718000000",
    "start-linux-vm-1718000100",
)


def run_policy_table() -> dict[str, dict[str, str]]:
    """{what happened: {policy: cell}} from the table under `## Run policies`."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Run policies", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert tuple(header[1:]) == POLICIES, f"the table's columns are {header}"
    table: dict[str, dict[str, str]] = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(POLICIES, cells[1:], strict=True))
    return table


TABLE = run_policy_table()

# --- What happened: the contexts and hosts a row describes -----------------------------------

Situation = tuple[PlanContext, Observation]


def _off(reason: str, state: PowerState = PowerState.SHUTOFF) -> Callable[[str], list[Situation]]:
    def situation(policy: str) -> list[Situation]:
        ctx = context(run_policy=policy)
        return [(ctx, defined(ctx, state, reason))]

    return situation


def _new(policy: str) -> list[Situation]:
    return [(context(run_policy=policy), Observation({}, {}))]


def _running(policy: str) -> list[Situation]:
    ctx = context(run_policy=policy)
    return [(ctx, defined(ctx))]


def _crashed(policy: str) -> list[Situation]:
    return _off("crashed")(policy) + _off("panicked", PowerState.CRASHED)(policy)


def _operation(kind: str, name: str) -> Callable[[str], list[Situation]]:
    def situation(policy: str) -> list[Situation]:
        ctx = context(vmop_yaml(name, kind), run_policy=policy)
        if policy == "AlwaysOff":
            return [(ctx, defined(ctx, PowerState.SHUTOFF, "shutdown"))]
        return [(ctx, defined(ctx))]

    return situation


def _from_always_off(policy: str) -> list[Situation]:
    host = defined(context(run_policy="AlwaysOff"), PowerState.SHUTOFF, "shutdown")
    return [(context(run_policy=policy), host)]


SITUATIONS: dict[str, Callable[[str], list[Situation]]] = {
    "a new VM (no domain yet)": _new,
    "running, nothing happened": _running,
    "the guest shut itself down (libvirt's reason `shutdown`)": _off("shutdown"),
    "the guest crashed (reason `crashed`, or state `crashed`)": _crashed,
    "killed on the host (`virsh destroy`: reason `destroyed`)": _off("destroyed"),
    "defined but never started (reason `unknown`)": _off("unknown"),
    "a Stop operation": _operation("Stop", STOP_NAME),
    "a Restart operation": _operation("Restart", RESTART_NAME),
    "runPolicy switched from AlwaysOff (the VM is off)": _from_always_off,
}

# --- What the cell says happens next ---------------------------------------------------------


def _kinds(ctx: PlanContext, host: Observation) -> list[type]:
    return [type(a) for a in plan(ctx, host).actions]


def _state_after(ctx: PlanContext, host: Observation) -> PowerState:
    return whole_pass(ctx, host)[2].domains[DOMAIN].state


def _starts(ctx: PlanContext, host: Observation) -> None:
    assert StartDomain in _kinds(ctx, host)
    assert _state_after(ctx, host) is PowerState.RUNNING


def _defines_and_starts(ctx: PlanContext, host: Observation) -> None:
    kinds = _kinds(ctx, host)
    assert DefineDomain in kinds and kinds[-1] is StartDomain
    assert _state_after(ctx, host) is PowerState.RUNNING


def _defines_and_stays_off(ctx: PlanContext, host: Observation) -> None:
    assert DefineDomain in _kinds(ctx, host)
    _stays_off(ctx, whole_pass(ctx, host)[2])


def _stays_off(ctx: PlanContext, host: Observation) -> None:
    result = plan(ctx, host)
    assert not any(isinstance(a, StartDomain | CarryOutOperation) for a in result.actions)
    assert result.statuses[LINUX_VM].phase == "Stopped"


def _keeps_running(ctx: PlanContext, host: Observation) -> None:
    result = plan(ctx, host)
    assert result.actions == []
    assert result.statuses[LINUX_VM].phase == "Running"


def _stops(ctx: PlanContext, host: Observation) -> None:
    assert StopDomain in _kinds(ctx, host)
    assert _state_after(ctx, host) is PowerState.SHUTOFF


def _refused(then: Callable[[PlanContext, Observation], None]) -> Callable[..., None]:
    def check(ctx: PlanContext, host: Observation) -> None:
        first, final, after = whole_pass(ctx, host)
        assert [a.outcome for a in operation_actions(first)] == ["failed"]
        (name,) = (op.name for op in final.object_reports if op.kind == "VirtualMachineOperation")
        verdict = report(final, name)
        assert (verdict["phase"], verdict["reason"]) == (
            "Failed",
            "NotApplicableForVirtualMachineRunPolicy",
        )
        then(next_context(ctx, final), after)

    return check


def _stopped_until_a_start(ctx: PlanContext, host: Observation) -> None:
    first, final, host = whole_pass(ctx, host)
    assert [a.step for a in operation_actions(first)] == ["stop"]
    assert report(final, STOP_NAME)["phase"] == "Completed"
    ctx = next_context(ctx, final)
    for reason in ("shutdown", "destroyed", "crashed", "unknown"):
        found = Observation({DOMAIN: replace(host.domains[DOMAIN], reason=reason)}, host.volumes)
        _stays_off(ctx, found)
    policy = ctx.inventory.get(LINUX_VM).model.spec.run_policy.value  # type: ignore[union-attr]
    with_start = context(
        vmop_yaml(STOP_NAME, "Stop"), vmop_yaml(START_NAME, "Start"), run_policy=policy
    )
    with_start = replace(with_start, operation_reports=ctx.operation_reports)
    first, final, host = whole_pass(with_start, host)
    assert [a.step for a in operation_actions(first)] == ["start"]
    assert host.domains[DOMAIN].state is PowerState.RUNNING


def _restarted(ctx: PlanContext, host: Observation) -> None:
    first, final, after = whole_pass(ctx, host)
    assert [a.step for a in operation_actions(first)] == ["restart"]
    assert report(final, RESTART_NAME)["phase"] == "Completed"
    assert after.domains[DOMAIN].state is PowerState.RUNNING


OUTCOMES: dict[str, Callable[[PlanContext, Observation], None]] = {
    "define, start": _defines_and_starts,
    "define, stays off": _defines_and_stays_off,
    "keeps running": _keeps_running,
    "start": _starts,
    "stop": _stops,
    "stays off": _stays_off,
    "refused, keeps running": _refused(_keeps_running),
    "refused, stays off": _refused(_stays_off),
    "stopped, stays off until a Start": _stopped_until_a_start,
    "restarted": _restarted,
}


def test_the_table_has_a_row_for_each_event_and_the_tests_know_every_row() -> None:
    assert set(TABLE) == set(SITUATIONS)
    unknown = {cell for row in TABLE.values() for cell in row.values()} - set(OUTCOMES)
    assert not unknown, f"cells the tests do not know: {unknown}"


@pytest.mark.parametrize(
    ("event", "policy"),
    [(event, policy) for event in TABLE for policy in POLICIES],
    ids=[f"{re.sub(r'[^a-zA-Z]+', '-', e)[:40]}-{p}" for e in TABLE for p in POLICIES],
)
def test_run_policy_cell(event: str, policy: str) -> None:
    cell = TABLE[event][policy]
    for ctx, host in SITUATIONS[event](policy):
        OUTCOMES[cell](ctx, host)
