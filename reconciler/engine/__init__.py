"""The engine: from desired objects, the observed host and policies (all values) to the
actions a pass applies and the statuses it reports. It reads no file and calls no
libvirt itself; the pass driver hands it what it needs.

The public surface: `plan` (one decision over values), `reconcile_once` (observe, plan,
apply and observe again over the sources it is given) and the types they take and return.
"""

from reconciler.engine.plan import Observation, Outcome, Plan, PlanContext, Settled, VMPlan, plan
from reconciler.engine.reconcile import (
    ActionOutcome,
    ActionRunner,
    DomainSource,
    EarlierReports,
    PassResult,
    observe,
    plan_context,
    reconcile_once,
)

__all__ = [
    "ActionOutcome",
    "ActionRunner",
    "DomainSource",
    "EarlierReports",
    "Observation",
    "Outcome",
    "PassResult",
    "Plan",
    "PlanContext",
    "Settled",
    "VMPlan",
    "observe",
    "plan",
    "plan_context",
    "reconcile_once",
]
