"""One reconcile pass: observe -> load -> plan -> apply -> observe again -> statuses.

The only engine module that does I/O, through the two narrow interfaces below,
which `reconciler.libvirt` implements.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from reconciler.engine.actions import Action
from reconciler.engine.desired import HostContext
from reconciler.engine.domain import ObservedDomain, VolumeFacts
from reconciler.engine.plan import Observation, Plan, PlanContext, change_table_for, plan
from reconciler.engine.status import Condition
from reconciler.findings import Finding
from reconciler.loader import LoadResult
from reconciler.policies import load_change_rules, load_topology_policy
from reconciler.rules import Inventory, check


class DomainSource(Protocol):
    def observe(self) -> Mapping[str, ObservedDomain]: ...

    def volumes(self, pool: str) -> Mapping[str, VolumeFacts]: ...


class ActionRunner(Protocol):
    def run(self, action: Action) -> str | None:
        """Carry out one action; the error message, or None on success."""
        ...


@dataclass
class ActionOutcome:
    action: Action
    error: str | None


@dataclass
class PassResult:
    context: PlanContext
    plan: Plan
    findings: list[Finding]
    applied: list[ActionOutcome] = field(default_factory=list)
    final: Plan | None = None

    @property
    def errors(self) -> list[ActionOutcome]:
        return [outcome for outcome in self.applied if outcome.error]

    @property
    def statuses_plan(self) -> Plan:
        return self.final or self.plan


def plan_context(
    result: LoadResult,
    host: HostContext,
    revision: str,
    pool: Sequence[ipaddress.IPv4Network] = (),
    policy_dir: Path | None = None,
) -> PlanContext:
    findings = check(result, pool, policy_dir)
    topology = load_topology_policy(policy_dir)
    rules = load_change_rules(host.change_profile, policy_dir)
    return PlanContext(
        inventory=Inventory(result),
        findings=findings,
        broken=frozenset(result.broken),
        unreadable_files=any(not f.object for f in result.findings),
        topology=topology,
        change_table=change_table_for(rules, topology),
        host=host,
        revision=revision,
    )


def observe(source: DomainSource, host: HostContext) -> Observation:
    volumes = {
        (host.storage_pool, name): v for name, v in source.volumes(host.storage_pool).items()
    }
    return Observation(source.observe(), volumes)


def reconcile_once(
    context: PlanContext,
    source: DomainSource,
    runner: ActionRunner | None,
    progress: Callable[[str], None] = lambda _: None,
) -> PassResult:
    """Plan, and with a runner apply and re-plan so statuses describe the result."""
    first = plan(context, observe(source, context.host))
    result = PassResult(context, first, context.findings)
    if runner is None or not first.has_changes:
        return result
    total = len(first.actions)
    for vm_plan in first.vms:
        failed = False
        for action in vm_plan.actions:
            if failed:
                # An object's later steps depend on its earlier ones.
                result.applied.append(ActionOutcome(action, "skipped after an earlier failure"))
                continue
            progress(f"[{len(result.applied) + 1}/{total}] {action.describe()}")
            error = runner.run(action)
            result.applied.append(ActionOutcome(action, error))
            failed = error is not None
    result.final = plan(replace(context, anticipate=False), observe(source, context.host))
    for outcome in result.errors:
        status = result.final.statuses.get(outcome.action.owner)
        if status is not None:
            status.set(
                Condition(
                    "ConfigurationApplied",
                    False,
                    "ConfigurationNotApplied",
                    f"{outcome.action.describe()} failed: {outcome.error}",
                )
            )
    return result
