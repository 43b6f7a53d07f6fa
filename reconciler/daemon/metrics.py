"""What `GET /metrics` exposes (prometheus-client), in a registry of the daemon's own."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from reconciler.model.phases import VMPhase

# The phases the gauge always lists, at 0 when no VM is in them.
_LISTED_PHASES = (
    VMPhase.PENDING,
    VMPhase.STARTING,
    VMPhase.RUNNING,
    VMPhase.STOPPING,
    VMPhase.STOPPED,
    VMPhase.TERMINATING,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pass_seconds = Histogram(
            "reconciler_pass_duration_seconds",
            "Duration of one reconcile pass, from observation to the pushed status.",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.passes = Counter(
            "reconciler_passes",
            "Reconcile passes, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "reconciler_errors",
            "Errors, by where they happened: source, libvirt, status, or the stage of a pass"
            " that raised (load, context, engine).",
            ["stage"],
            registry=self.registry,
        )
        self.status_push_rejections = Counter(
            "reconciler_status_push_rejections",
            "Status pushes the remote rejected because another host's push landed first;"
            " each is retried on the new head.",
            registry=self.registry,
        )
        self.vms_by_phase = Gauge(
            "reconciler_virtual_machines",
            "Virtual machines reported by this host, by phase.",
            ["phase"],
            registry=self.registry,
        )
        self.revision = Info(
            "reconciler_applied_revision", "The Git revision last applied.", registry=self.registry
        )
        self.last_success = Gauge(
            "reconciler_last_success_timestamp_seconds",
            "When the last pass without errors finished.",
            registry=self.registry,
        )
        self.deletions_held_back = Gauge(
            "reconciler_deletions_held_back",
            "Deletions the last pass did not make because the revision has unreadable"
            " files or no objects at all.",
            registry=self.registry,
        )
        self.unreadable_files = Gauge(
            "reconciler_unreadable_files",
            "Files of the applied revision that yield no object (broken YAML, a file that"
            " cannot be read); while there are any, nothing is deleted.",
            registry=self.registry,
        )
        self.unverified_revision = Gauge(
            "reconciler_unverified_revision",
            "1 while the branch head is not applied because its history does not verify"
            " (repository.verify): the last verified revision is served meanwhile.",
            registry=self.registry,
        )

    def phases(self, phases: Iterable[str]) -> None:
        counts = Tally(phases)
        for listed in _LISTED_PHASES:
            counts.setdefault(listed, 0)
        for phase, count in counts.items():
            self.vms_by_phase.labels(phase=phase).set(count)
