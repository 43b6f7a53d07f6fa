"""`reconciler run`: follow a branch, reconcile on every trigger, report back into Git.

One pass at a time in the main thread; every trigger (interval, file watch,
webhook, libvirt event, start, reload) only asks for a pass, and requests that
arrive during a pass are merged into the next one. All state lives in libvirt
and Git, so a daemon killed at any point converges when started again.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from reconciler.api import Node
from reconciler.config import ConfigError, load_config, read_webhook_secret
from reconciler.daemon.health import Health
from reconciler.daemon.http import Endpoint
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import Heartbeat, Notifier, watchdog_interval_seconds
from reconciler.daemon.triggers import Triggers
from reconciler.engine.addressing import AddressInputs
from reconciler.engine.desired import HostContext
from reconciler.engine.reconcile import (
    PassResult,
    deletions_held_back,
    reconcile_once,
)
from reconciler.loader import LoadResult
from reconciler.source import SourceError
from reconciler.status.addresses import read_leases
from reconciler.status.documents import check_reports
from reconciler.status.pass_inputs import read_plan_context

log = logging.getLogger("reconciler.daemon")

# Events after which the run policy may have something to do.
_LIFECYCLE_TRIGGERS = frozenset({"stopped", "crashed", "shutdown", "started", "undefined"})
# Events after which the VM's report changes (AgentReady, guestOSInfo).
_AGENT_TRIGGERS = frozenset({"agent-connected", "agent-disconnected"})
_LIBVIRT_ONLY = frozenset({"libvirt", "libvirt-reconnected", "agent"})


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


class Daemon:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.config = load_config(config_path)
        self.webhook_secret = read_webhook_secret(self.config, config_path)
        self.triggers = Triggers()
        self.metrics = Metrics()
        self.health = Health()
        self.notifier = Notifier()
        # Replaced by a pinging one when systemd asks for a watchdog.
        self.heartbeat = Heartbeat(self.notifier, 3600.0)
        self._reload = threading.Event()
        self._components: list[Any] = []
        self._connection: Any = None
        self._observer: Any = None
        self._source: Any = None
        self._cache: Any = None
        self._publisher: Any = None
        self._last_key: str | None = None
        self._revision: Any = None
        # The last failure and held-back deletions logged: each is logged once, not
        # again at every pass that finds it unchanged.
        self._logged_failure = ""
        self._logged_held_back = ""

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        from reconciler.libvirt.events import start_event_loop

        start_event_loop()
        try:
            self._start_components()
        except (ConfigError, SourceError) as error:
            log.error("cannot start: %s", error)
            self._stop_components()
            return 2
        self.notifier.ready(f"following {self._describe_source()}")
        self.triggers.request("start")
        interval = watchdog_interval_seconds()
        if interval:
            self.heartbeat = Heartbeat(self.notifier, interval)
            self.heartbeat.start()
        while True:
            reasons = self.triggers.wait(timeout=10.0)
            self.heartbeat.beat()
            if self.triggers.stopping:
                break
            if self._reload.is_set():
                self._reload.clear()
                self._reload_config()
                continue
            if reasons is None:
                continue
            self._one_pass(reasons)
            self.heartbeat.beat()
        self.heartbeat.stop()
        self.notifier.stopping()
        self._stop_components()
        log.info("stopped")
        return 0

    def _on_term(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the current pass, then exiting", signum)
        self.triggers.stop()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload.set()
        self.triggers.request("reload")

    def _reload_config(self) -> None:
        try:
            config = load_config(self.config_path)
            secret = read_webhook_secret(config, self.config_path)
        except ConfigError as error:
            log.error("reload refused, keeping the running configuration: %s", error)
            self.metrics.errors.labels(stage="config").inc()
            return
        self.notifier.reloading()
        self._stop_components()
        previous, self.config = self.config, config
        previous_secret, self.webhook_secret = self.webhook_secret, secret
        self._last_key = None
        self._revision = None
        try:
            self._start_components()
        except (ConfigError, SourceError) as error:
            log.error("reload refused, keeping the running configuration: %s", error)
            self._stop_components()
            self.config, self.webhook_secret = previous, previous_secret
            self._start_components()
            self.notifier.ready("reload refused; running configuration kept")
            self.triggers.request("reload")
            return
        self.notifier.ready("configuration reloaded")
        log.info("configuration reloaded from %s", self.config_path)
        self.triggers.request("reload")

    def _describe_source(self) -> str:
        repository = self.config.repository
        if repository is None:
            return "no repository"
        return f"{repository.url} ({repository.branch})"

    # ---------------------------------------------------------------- components

    def _start_components(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        from reconciler.libvirt.events import LifecycleWatch
        from reconciler.source import ManifestCache, open_source

        config = self.config
        if config.repository is None:
            raise ConfigError(f"{self.config_path}: repository.url is required to run")
        config.cache_dir.mkdir(parents=True, exist_ok=True)
        self._source = open_source(
            config.repository, config.cache_dir / "source", config.status.path
        )
        self._cache = ManifestCache()
        self._publisher = self._make_publisher()
        self._connect_libvirt()

        scheduler = BackgroundScheduler(daemon=True)
        scheduler.add_job(
            lambda: self.triggers.request("interval"),
            "interval",
            seconds=config.repository.interval_seconds,
            id="interval",
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        self._components.append(("scheduler", scheduler))

        watch = LifecycleWatch(config.libvirt_uri, self._on_domain_event, self._on_libvirt)
        watch.start()
        self._components.append(("libvirt-watch", watch))

        if self._source.local_path is not None:
            self._watch_directory(self._source.local_path)

        secret = self.webhook_secret  # read with the configuration: a reload keeps it
        try:
            endpoint = Endpoint(
                config.listen,
                self.metrics,
                lambda: self.triggers.request("push"),
                self.health.report,
                secret,
            )
        except OSError as error:
            raise ConfigError(f"listen {config.listen}: {error.strerror or error}") from None
        endpoint.start()
        self._components.append(("http", endpoint))
        log.info(
            "listening on http://%s:%s (metrics, healthz%s)",
            *endpoint.address,
            ", webhook" if secret else "",
        )

    def _stop_components(self) -> None:
        for name, component in reversed(self._components):
            try:
                if name == "scheduler":
                    component.shutdown(wait=False)
                else:
                    component.stop()
            except Exception as error:  # a component that fails to stop must not block exit
                log.warning("stopping %s: %s", name, error)
        self._components.clear()

    def _watch_directory(self, path: Path) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        triggers = self.triggers
        status_dir = self.config.status.path

        class Changed(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                parts = Path(str(event.src_path)).relative_to(path).parts
                # Our own status files and Git's bookkeeping are not changes of the manifests.
                if not parts or parts[0] in (status_dir, ".git"):
                    return
                triggers.request("file")

        observer = Observer()
        observer.schedule(Changed(), str(path), recursive=True)
        observer.daemon = True
        observer.start()
        self._components.append(("file-watch", _Stoppable(observer)))

    def _make_publisher(self) -> Any:
        from reconciler.status.publish import StatusPublisher

        repository = self.config.repository
        assert repository is not None
        if not self._source.publishes_status:
            return None  # a local directory: reports are written beside the manifests
        branch = self.config.status.branch or repository.branch
        return StatusPublisher(
            repository.url,
            branch,
            self.config.status.path,
            self.config.node_name,
            self.config.cache_dir / "status",
            environment=self._source.git_env,
            # Only a status branch of its own may be started: the followed branch,
            # deleted on the remote, must not come back holding nothing but reports.
            create_missing_branch=branch != repository.branch,
        )

    def _connect_libvirt(self) -> bool:
        from reconciler.libvirt.connection import LibvirtUnavailable, open_connection
        from reconciler.libvirt.observe import Observer

        if self._connection is not None:
            try:
                if self._connection.isAlive():
                    return True
            except Exception:
                pass
            self._connection = None
        try:
            self._connection = open_connection(self.config.libvirt_uri)
        except LibvirtUnavailable as error:
            self.health.libvirt = str(error)
            return False
        self._observer = Observer(self._connection)
        self.health.libvirt = "ok"
        return True

    def _on_domain_event(self, domain: str, event: str) -> None:
        if event in _AGENT_TRIGGERS:
            observer = self._observer
            if observer is not None:
                observer.agents.agent_changed(domain)  # ask it again: maybe another boot
            self.triggers.request("agent")
        elif event in _LIFECYCLE_TRIGGERS:
            self.triggers.request("libvirt")

    def _on_libvirt(self, up: bool, why: str) -> None:
        if up:
            self.triggers.request("libvirt-reconnected")
        else:
            self.health.libvirt = why or "disconnected"
            log.warning("libvirt: %s", why)

    # ---------------------------------------------------------------------- pass

    def _host(self, loaded: LoadResult | None = None) -> HostContext:
        capacity = 1
        if self._connection is not None:
            capacity = int(self._connection.getInfo()[2])
        # The repository's Node object, when it states a capacity, is what admission
        # weighs against (an operator may keep CPUs back for the host itself).
        for obj in loaded.objects if loaded is not None else ():
            model = obj.model
            if isinstance(model, Node) and model.name == self.config.node_name:
                capacity = model.spec.capacity.cpu or capacity
        domain_type = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"
        forced = os.environ.get("RECONCILER_DOMAIN_TYPE")
        if forced in ("kvm", "qemu"):
            domain_type = forced
        return HostContext(
            node_name=self.config.node_name,
            domain_type="qemu" if domain_type == "qemu" else "kvm",
            storage_pool=self.config.storage_pool,
            network=self.config.network or None,
            cpu_capacity_millicores=capacity * 1000,
            change_profile=self.config.change_profile,
            node_labels=tuple(sorted(self.config.node_labels.items())),
            image_directories=tuple(str(d) for d in self.config.image_directories),
        )

    def _update_source(self, reasons: Counter[str]) -> Any:
        """The revision to apply; lifecycle events reuse the last one, so a crashed
        guest is handled without waiting for a fetch."""
        if self._revision is not None and set(reasons) <= _LIBVIRT_ONLY:
            return self._revision
        leave_out_status = getattr(self._source, "leave_out_status", None)
        if leave_out_status is not None:
            # The source's copy of the reports is needed only while the publisher has
            # none of its own (_status_root).
            leave_out_status(
                self._publisher is not None and Path(self._publisher.status_root).is_dir()
            )
        try:
            revision = self._source.update()
        except Exception as error:
            self.metrics.errors.labels(stage="source").inc()
            self.health.source = f"error: {error}"
            log.error("source: %s", error)
            return self._revision  # the last good revision, if there is one
        self.health.source = revision.stale_error or "ok"
        if revision.stale_error:
            self.metrics.errors.labels(stage="source").inc()
            log.warning("source: %s; serving revision %s", revision.stale_error, revision.sha)
        return revision

    def _one_pass(self, reasons: Counter[str]) -> None:
        """One pass. Whatever it raises stops here, at its boundary (a pass never dies
        of its input, issue 12): logged once, shown in /healthz and the node report,
        and the next trigger tries the newest revision again as usual."""
        stages = _Stages(time.monotonic())
        why = ", ".join(sorted(reasons))
        try:
            self._pass(reasons, why, stages)
        except Exception as error:
            self._pass_failed(error, why, stages)

    def _pass(self, reasons: Counter[str], why: str, stages: _Stages) -> None:
        revision = self._update_source(reasons)
        stages.mark("source")
        if revision is None:
            return
        # Every later trigger (a libvirt event too) tries this revision, even when this
        # pass fails: never an older one.
        self._revision = revision
        if set(reasons) <= {"push", "file"} and revision.manifests_key == self._last_key:
            # Our own status commit (or a change outside the manifests): nothing to do.
            log.info("trigger %s: manifests unchanged at %s", why, revision.sha[:12])
            return
        if not self._connect_libvirt():
            self.metrics.errors.labels(stage="libvirt").inc()
            log.error("libvirt: %s", self.health.libvirt)
            self._publish_error(revision, f"libvirt: {self.health.libvirt}", why)
            return
        loaded = self._cache.load(revision)
        stages.mark("load")
        status_root = self._status_root(revision)
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
        )
        stages.mark("context")
        from reconciler.libvirt.apply import Applier

        # The progress of a long step (an image upload) also keeps the watchdog fed.
        runner = None if self.config.suspend else Applier(self._connection, progress=self._progress)
        if self.config.suspend:
            # Report the host as it is, not as the plan would leave it.
            context = replace(context, anticipate=False)
        result = reconcile_once(context, self._observer, runner, self._progress)
        stages.mark("engine")
        errors = [f"{e.action.describe()}: {e.error}" for e in result.errors]
        held_back = self._deletions_held_back(result)
        if held_back:
            errors.insert(0, held_back)
        if status_root is not None:  # reports that could not be used were skipped: say so
            errors.extend(check_reports(status_root))
        if revision.stale_error:
            errors.insert(0, revision.stale_error)
        self.health.last_error = "; ".join(errors)
        self.health.pass_failure = ""
        self._logged_failure = ""
        self._publish(result, revision, self.health.last_error, why)
        stages.mark("status")
        self._last_key = revision.manifests_key
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
            "pass (%s) at %s: %d action(s), %d error(s), %.2fs (%s)",
            why,
            revision.sha[:12],
            applied,
            len(result.errors),
            elapsed,
            stages,
        )
        self.notifier.status(f"revision {revision.sha[:12]}, {applied} action(s) in last pass")

    def _deletions_held_back(self, result: PassResult) -> str:
        """Why the pass deleted nothing ("" when it deleted normally): into /healthz, the
        metrics, and the log once per revision and reason."""
        held_back = deletions_held_back(result.context, result.plan)
        unreadable = {finding.path for finding in result.context.unreadable_files}
        self.metrics.deletions_held_back.set(len(result.plan.held_back))
        self.metrics.unreadable_files.set(len(unreadable))
        if held_back and held_back != self._logged_held_back:
            log.warning("%s", held_back)
        self._logged_held_back = held_back
        self.health.held_back = held_back
        return held_back

    def _pass_failed(self, error: Exception, why: str, stages: _Stages) -> None:
        stage = stages.unfinished()
        revision = self._revision
        at = f"revision {revision.sha[:12]}" if revision is not None else "no revision yet"
        detail = " ".join(f"{type(error).__name__}: {error}".split())
        if len(detail) > _MAX_FAILURE_CHARS:
            detail = detail[:_MAX_FAILURE_CHARS] + "…"
        failure = f"{stage} at {at}: {detail}"
        self.metrics.errors.labels(stage=stage).inc()
        self.metrics.passes.labels(outcome="failed").inc()
        self.health.pass_failure = failure
        self.health.last_error = f"pass failed in {failure}"
        if failure != self._logged_failure:
            # The traceback once: a revision that fails the same way at every interval
            # must not flood the journal.
            log.error("pass (%s) failed in %s", why, failure, exc_info=error)
            self._logged_failure = failure
        else:
            log.warning("pass (%s) failed again in %s at %s, as logged before", why, stage, at)
        if revision is not None:
            self._publish_error(revision, self.health.last_error, why)

    def _progress(self, line: str) -> None:
        self.heartbeat.beat()
        log.info("%s", line)

    def _status_root(self, revision: Any) -> Path | None:
        if self._publisher is not None:
            root = Path(self._publisher.status_root)
            repository = self.config.repository
            branch = repository.branch if repository is not None else None
            if not root.is_dir() and self.config.status.branch in (None, branch):
                # A new cache: until the first publish fetches the status branch, the
                # revision's own copy of the reports is the latest there is. Without it
                # the first pass would take finished operations for new ones.
                root = revision.repo_root / self.config.status.path
        else:
            root = revision.repo_root / self.config.status.path
        return root if root.is_dir() else None

    def _publish(
        self,
        result: PassResult,
        revision: Any,
        errors: str,
        why: str,
    ) -> None:
        from reconciler.status.reports import desired_vms, revision_objects, write_host_reports

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
            )

        self._write_reports(write, revision, f"{len(result.applied)} action(s) ({why})")

    def _publish_error(self, revision: Any, error: str, why: str) -> None:
        """When no pass can run (libvirt down) or one failed, the node's report still
        says why."""
        from reconciler.status.reports import write_node_report

        def write(root: Path) -> list[Path]:
            # Here, inside the publisher's guard: a broken connection is one more error.
            return write_node_report(root, self._host(), revision.sha, error)

        self._write_reports(write, revision, f"error ({why})")

    def _write_reports(self, write: Any, revision: Any, summary: str) -> None:
        try:
            if self._publisher is None:
                write(revision.repo_root / self.config.status.path)
            else:
                outcome = self._publisher.publish(write, summary)
                if outcome.committed:
                    log.info("status committed and pushed: %s", self._publisher.last_commit)
        except Exception as error:
            self.metrics.errors.labels(stage="status").inc()
            self.health.last_error = f"status: {error}"
            self.health.status_failure = str(error)
            log.error("status: %s", error)
        else:
            self.health.status_failure = ""


class _Stoppable:
    def __init__(self, observer: Any) -> None:
        self._observer = observer

    def stop(self) -> None:
        self._observer.stop()


def run(config_path: Path) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # A line per scheduled trigger would drown the passes in the journal.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # `kill -USR1` writes every thread's stack to the journal: for a daemon that hangs.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        daemon = Daemon(config_path)
    except ConfigError as error:
        log.error("%s", error)
        return 2
    return daemon.run()
