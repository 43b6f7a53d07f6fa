"""Placeholder until the Migratable condition lands."""

from __future__ import annotations

from reconciler.api import VirtualMachine
from reconciler.engine.plan_types import PlanContext


def why_not_migratable(context: PlanContext, vm: VirtualMachine) -> str:
    return ""
