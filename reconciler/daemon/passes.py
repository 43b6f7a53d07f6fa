"""One pass of the daemon: update the source, load, plan, apply, publish the reports.

Whatever a pass raises stops at its boundary (`Pass.run`): logged once, shown in
/healthz and the node report, and the next trigger tries the newest revision again.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from reconciler.api import Node
from reconciler.daemon.admission import write_admission_state
from reconciler.daemon.components import Components
from reconciler.daemon.notify import Notifier
from reconciler.engine.fleet.placement import host_capacity
from reconciler.engine.network.addressing import AddressInputs
from reconciler.engine.reconcile import (
    PassResult,
    deletions_held_back,
    reconcile_once,
)
from reconciler.engine.vm.desired import HostContext
from reconciler.libvirt.apply import Applier
from reconciler.libvirt.informer import InformedRunner
from reconciler.loader import LoadResult
from reconciler.model.actions import MigrateDomain
from reconciler.progress import for_log
from reconciler.reports import status_index
from reconciler.reports.addresses import read_leases
from reconciler.reports.documents import check_reports
from reconciler.reports.known import keep_known_reports, save_known_reports
from reconciler.reports.pass_inputs import read_plan_context
from reconciler.reports.publish import Write
from reconciler.reports.tree import (
    desired_vms,
    revision_objects,
    write_host_reports,
    write_node_report,
)
from reconciler.rules.inventory import models_of_kind
from reconciler.source import Revision, UnverifiedHistory

log = logging.getLogger("reconciler.daemon")

_LIBVIRT_ONLY = frozenset({"libvirt", "libvirt-reconnected", "agent"})
# Triggers whose pass trusts the informer's events (libvirt/informer.py); any other
# (interval, start, reload, libvirt-reconnected, the end of a migration) reads every
# domain again.
_EVENT_FED = frozenset({"push", "file", "libvirt", "agent"})
# A pass's stages in order: the one after the last finished is where a failure happened.
_STAGES = ("source", "load", "context", "engine", "status")
# How much of an exception's message /healthz and the node report repeat (the journal
# has all of it).
_MAX_FAILURE_CHARS = 500


class _Stages:
    """Where a pass spent its time, for its log line: a slow pass says which part was slow."""

    def __init__(self, started: float) -> None:
        self._started = started
        self._last = started
        self._spent: list[tuple[str, float]] = []

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def unfinished(self) -> str:
        """The stage that has not finished: where the pass is, or where it failed."""
        done = {stage for stage, _seconds in self._spent}
        return next((stage for stage in _STAGES if stage not in done), "status")

    def mark(self, stage: str) -> None:
        now = time.monotonic()
        self._spent.append((stage, now - self._last))
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in self._spent)


@dataclass
class PassMemory:
    """What a pass leaves the next one."""

    # The newest revision served: every later trigger (a libvirt event too) tries
    # this one, even when its pass failed, never an older one.
    revision: Revision | None = None
    # The manifests of the last pass that finished: a push of our own status commit
    # finds them unchanged.
    last_key: str | None = None
    # The last failure and held-back deletions logged: each is logged once, not again
    # at every pass that finds it unchanged.
    logged_failure: str = ""
    logged_held_back: str = ""
    # The copies of other hosts' VMs found here (engine/fleet/strays.py), logged once.
    logged_strays: tuple[str, ...] = ()
    logged_unverified: str = ""
    # The Nodes of the last pass's fleet: the hosts that push status with this one.
    fleet: tuple[str, ...] = ()

    def forget_revision(self) -> None:
        """After a reload: the next pass fetches and applies as if started anew."""
        self.revision = None
        self.last_key = None


class Pass:
    """One pass over the components of the running configuration."""

    def __init__(
        self,
        components: Components,
        memory: PassMemory,
        notifier: Notifier,
        progress: Callable[[str], None],
    ) -> None:
        self.config = components.config
        self._components = components
        self._libvirt = components.libvirt
        self._memory = memory
        self.metrics = components.metrics
        self.health = components.health
        self.notifier = notifier
        # The progress of a long step (an image upload) also keeps the watchdog fed.
        self._progress = progress
        # A long pass (the first over many VMs) says how far it is every ~10 s.
        self._steps = for_log("pass", log)

    def run(self, reasons: Counter[str]) -> None:
        """One pass. Whatever it raises stops here, at its boundary (a pass never dies
        of its input, issue 12)."""
        stages = _Stages(time.monotonic())
        why = ", ".join(sorted(reasons))
        # Report texts rendered before a restart: unchanged reports are neither rendered
        # nor parsed again (reports/known.py). Loaded once; the same file again is kept.
        keep_known_reports(self.config.cache_dir)
        # The readers of the status tree share one listing of it per pass; a pass fed by
        # events trusts the index of the publisher's clone as its writers and Git
        # operations left it (reports/status_index.py), and the others list it anew.
        publisher = self._components.publisher
        event_fed = reasons.keys() <= _EVENT_FED
        kept = [publisher.status_root] if publisher is not None and event_fed else []
        with status_index.reading(kept):
            try:
                self._pass(reasons, why, stages)
            except Exception as error:
                self._pass_failed(error, why, stages)

    def _host(self, loaded: LoadResult | None = None) -> HostContext:
        cpus = self._libvirt.cpus()
        # The repository's Node object, when it states a capacity, is what admission
        # weighs against (an operator may keep CPUs back for the host itself).
        millicores, memory = host_capacity(
            models_of_kind(loaded, Node) if loaded else (),
            self.config.node_name,
            1 if cpus is None else cpus,
            self._libvirt.memory_bytes(),
        )
        domain_type = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"
        forced = os.environ.get("RECONCILER_DOMAIN_TYPE")
        if forced in ("kvm", "qemu"):
            domain_type = forced
        return HostContext(
            node_name=self.config.node_name,
            domain_type="qemu" if domain_type == "qemu" else "kvm",
            storage_pool=self.config.storage_pool,
            network=self.config.network or None,
            cpu_capacity_millicores=millicores,
            memory_capacity_bytes=memory,
            change_profile=self.config.change_profile,
            node_labels=tuple(sorted(self.config.node_labels.items())),
            image_directories=tuple(str(d) for d in self.config.image_directories),
            migration_peers=tuple(self.config.migration_peers),
            migration_storage=self.config.migration_storage,
        )

    def _update_source(self, reasons: Counter[str]) -> Revision | None:
        """The revision to apply; lifecycle events reuse the last one, so a crashed
        guest is handled without waiting for a fetch."""
        last = self._memory.revision
        if last is not None and set(reasons) <= _LIBVIRT_ONLY:
            return last
        publisher = self._components.publisher
        # The source's copy of the reports is needed only while the publisher has none
        # of its own (_status_root).
        self._components.source.leave_out_status(
            publisher is not None and Path(publisher.status_root).is_dir() and not self._verifying()
        )
        try:
            revision = self._components.source.update()
        except Exception as error:
            self.metrics.errors.labels(stage="source").inc()
            self.health.source = f"error: {error}"
            if isinstance(error, UnverifiedHistory):
                self._unverified(str(error))
            else:
                log.error("source: %s", error)
            return last  # the last good revision, if there is one
        self._unverified(revision.unverified)
        self.health.source = revision.stale_error or revision.unverified or "ok"
        if revision.stale_error:
            self.metrics.errors.labels(stage="source").inc()
            log.warning("source: %s; serving revision %s", revision.stale_error, revision.sha)
        return revision

    def _verifying(self) -> bool:
        repository = self.config.repository
        return repository is not None and repository.verify is not None

    def _unverified(self, reason: str) -> None:
        """Why the head is not applied, into /healthz and the metric at every pass, and
        into the log once per reason (not at every pass that finds it again)."""
        self.health.unverified = reason
        self.metrics.unverified_revision.set(1 if reason else 0)
        if reason and reason != self._memory.logged_unverified:
            log.error("source: the branch head is not applied: %s", reason)
        elif not reason and self._memory.logged_unverified:
            log.info("source: the branch head verifies again and is applied")
        self._memory.logged_unverified = reason

    def _pass(self, reasons: Counter[str], why: str, stages: _Stages) -> None:
        revision = self._update_source(reasons)
        stages.mark("source")
        if revision is None:
            return
        self._memory.revision = revision
        if set(reasons) <= {"push", "file"} and revision.manifests_key == self._memory.last_key:
            # Our own status commit (or a change outside the manifests): nothing to do.
            log.info("trigger %s: manifests unchanged at %s", why, revision.sha[:12])
            return
        observer = self._libvirt.connect(self.config.libvirt_uri)
        if observer is None:
            self.metrics.errors.labels(stage="libvirt").inc()
            log.error("libvirt: %s", self.health.libvirt)
            self._publish_error(revision, f"libvirt: {self.health.libvirt}", why)
            return
        if not reasons.keys() <= _EVENT_FED:
            # The interval's pass (and a first one) reads the whole host: whatever changed
            # without an event (or with one that was lost) is corrected as it always was.
            observer.resync()
        loaded = self._components.cache.load(revision, self._steps.step)
        secrets = self._components.secrets.open(loaded)
        stages.mark("load")
        status_root = self._status_root(revision, fleet=_nodes(loaded) > 1)
        context = read_plan_context(
            loaded,
            self._host(loaded),
            revision.sha,
            self.config.virtual_machine_cidrs,
            status_root=status_root,
            addresses=AddressInputs(
                tuple(self.config.virtual_machine_cidrs),
                read_leases(status_root) if status_root is not None else (),
                datetime.now(UTC),
            ),
            secrets=secrets,
            require_encrypted_secrets=self.config.require_encrypted_secrets,
        )
        stages.mark("context")
        connection = self._libvirt.connection
        runner = (
            None
            if self.config.suspend
            else InformedRunner(
                Applier(
                    connection,
                    progress=self._progress,
                    migrations=self._libvirt.migrations,
                    migration_peers=tuple(self.config.migration_peers),
                ),
                observer,
            )
        )
        if self.config.suspend:
            # Report the host as it is, not as the plan would leave it.
            context = replace(context, anticipate=False)
        if self._libvirt.migrations is not None:
            # Why this process's migrations failed, for their operations' reports.
            context = replace(context, migration_failures=self._libvirt.migrations.failures())
        result = reconcile_once(context, observer, runner, self._progress, self._steps.step)
        stages.mark("engine")
        errors = [f"{e.action.describe()}: {e.error}" for e in result.errors]
        held_back = self._deletions_held_back(result)
        self._log_strays(result)
        if held_back:
            errors.insert(0, held_back)
        if status_root is not None:  # reports that could not be used were skipped: say so
            errors.extend(check_reports(status_root))
        if revision.stale_error:
            errors.insert(0, revision.stale_error)
        if revision.unverified:
            errors.insert(0, f"branch head not applied: {revision.unverified}")
        self.health.last_error = "; ".join(errors)
        self.health.pass_failure = ""
        self._memory.logged_failure = ""
        self._publish(result, revision, self.health.last_error, why)
        write_admission_state(self.config.cache_dir, result.context.host, result.statuses_plan)
        stages.mark("status")
        if any(isinstance(a, MigrateDomain) for a in result.statuses_plan.actions):
            # A migration this pass announced (its Migrating report now in Git) is begun
            # by the next pass, at once.
            self._components.triggers.request("migration")
        self._memory.last_key = revision.manifests_key
        self.health.revision = revision.sha
        self.health.last_pass = time.time()
        elapsed = stages.elapsed()
        self.metrics.pass_seconds.observe(elapsed)
        self.metrics.passes.labels(outcome="error" if errors else "ok").inc()
        self.metrics.revision.info({"revision": revision.sha})
        self.metrics.phases(s.phase for s in result.statuses_plan.statuses.values())
        if not errors:
            self.metrics.last_success.set_to_current_time()
        applied = len(result.applied)
        log.info(
            "pass (%s) at %s: %d action(s), %d error(s), %.2fs (%s; domains read: %s)",
            why,
            revision.sha[:12],
            applied,
            len(result.errors),
            elapsed,
            stages,
            observer.last_reading,
        )
        self.notifier.status(f"revision {revision.sha[:12]}, {applied} action(s) in last pass")

    def _deletions_held_back(self, result: PassResult) -> str:
        """Why the pass deleted nothing ("" when it deleted normally): into /healthz, the
        metrics, and the log once per revision and reason."""
        held_back = deletions_held_back(result.context, result.plan)
        unreadable = {finding.path for finding in result.context.unreadable_files}
        self.metrics.deletions_held_back.set(len(result.plan.held_back))
        self.metrics.unreadable_files.set(len(unreadable))
        if held_back and held_back != self._memory.logged_held_back:
            log.warning("%s", held_back)
        self._memory.logged_held_back = held_back
        self.health.held_back = held_back
        return held_back

    def _log_strays(self, result: PassResult) -> None:
        """Each domain here of a VM another host runs, in the journal when first found:
        the operator removes it (the Node report lists them all the while)."""
        strays = tuple(stray.message for stray in result.statuses_plan.strays)
        for message in strays:
            if message not in self._memory.logged_strays:
                log.warning("%s", message)
        self._memory.logged_strays = strays

    def _pass_failed(self, error: Exception, why: str, stages: _Stages) -> None:
        stage = stages.unfinished()
        revision = self._memory.revision
        at = f"revision {revision.sha[:12]}" if revision is not None else "no revision yet"
        detail = " ".join(f"{type(error).__name__}: {error}".split())
        if len(detail) > _MAX_FAILURE_CHARS:
            detail = detail[:_MAX_FAILURE_CHARS] + "…"
        failure = f"{stage} at {at}: {detail}"
        self.metrics.errors.labels(stage=stage).inc()
        self.metrics.passes.labels(outcome="failed").inc()
        self.health.pass_failure = failure
        self.health.last_error = f"pass failed in {failure}"
        if failure != self._memory.logged_failure:
            # The traceback once: a revision that fails the same way at every interval
            # must not flood the journal.
            log.error("pass (%s) failed in %s", why, failure, exc_info=error)
            self._memory.logged_failure = failure
        else:
            log.warning("pass (%s) failed again in %s at %s, as logged before", why, stage, at)
        if revision is not None:
            self._publish_error(revision, self.health.last_error, why)

    def _status_root(self, revision: Revision, fleet: bool = False) -> Path | None:
        """Where the pass reads the earlier reports; for a host of a fleet, refreshed
        first: the other hosts' reports decide what this host runs."""
        publisher = self._components.publisher
        if publisher is not None and self._verifying() and self._status_on_branch():
            # The publisher's clone holds the remote's head, verified or not: the fleet's
            # reports (leases, placement) are read from the verified revision instead.
            root = revision.repo_root / self.config.status.path
        elif publisher is not None:
            root = Path(publisher.status_root)
            if fleet and root.is_dir():
                publisher.refresh()
            if not root.is_dir() and self._status_on_branch():
                # A new cache: until the first publish fetches the status branch, the
                # revision's own copy of the reports is the latest there is. Without it
                # the first pass would take finished operations for new ones.
                root = revision.repo_root / self.config.status.path
        else:
            root = revision.repo_root / self.config.status.path
        return root if root.is_dir() else None

    def _status_on_branch(self) -> bool:
        """Whether the reports are on the followed branch (not on a branch of their own)."""
        repository = self.config.repository
        branch = repository.branch if repository is not None else None
        return self.config.status.branch in (None, branch)

    def _publish(self, result: PassResult, revision: Revision, errors: str, why: str) -> None:
        plan = result.statuses_plan
        host = result.context.host

        def write(root: Path) -> list[Path]:
            return write_host_reports(
                root,
                plan,
                host,
                revision.sha,
                errors,
                desired_vms(result.context),
                result.context.addressing,
                result.context.addresses.now if result.context.addresses else None,
                revision_objects(result.context),
                self._steps.step,
            )

        # Every Node's host pushes to the branch: the publisher takes turns with them.
        self._memory.fleet = tuple(node.name for node in result.context.fleet)
        self._write_reports(write, revision, f"{len(result.applied)} action(s) ({why})")

    def _publish_error(self, revision: Revision, error: str, why: str) -> None:
        """When no pass can run (libvirt down) or one failed, the node's report still
        says why."""

        def write(root: Path) -> list[Path]:
            # Here, inside the publisher's guard: a broken connection is one more error.
            return write_node_report(root, self._host(), revision.sha, error)

        self._write_reports(write, revision, f"error ({why})")

    def _write_reports(self, write: Write, revision: Revision, summary: str) -> None:
        publisher = self._components.publisher
        try:
            if publisher is None:
                write(revision.repo_root / self.config.status.path)
            else:
                before = publisher.rejections
                try:
                    outcome = publisher.publish(
                        write,
                        summary,
                        fleet=self._memory.fleet,
                        revision=revision.sha if self._status_on_branch() else "",
                    )
                finally:
                    self.metrics.status_push_rejections.inc(publisher.rejections - before)
                if outcome.committed:
                    log.info(
                        "status committed and pushed: %s%s",
                        publisher.last_commit,
                        f" (after {outcome.attempts - 1} rejected push(es))"
                        if outcome.attempts > 1
                        else "",
                    )
        except Exception as error:
            self.metrics.errors.labels(stage="status").inc()
            self.health.last_error = f"status: {error}"
            self.health.status_failure = str(error)
            log.error("status: %s", error)
        else:
            self.health.status_failure = ""
        save_known_reports(lazily=True)


def _nodes(loaded: LoadResult) -> int:
    """How many Node objects the revision has: more than one is a fleet."""
    return len(models_of_kind(loaded, Node))
