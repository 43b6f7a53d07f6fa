"""What a running daemon holds open: the source, the status publisher, libvirt, and the
triggers (interval, file watch, HTTP endpoint, libvirt events) that ask for passes.

Everything here is plumbing: started with a configuration, stopped before a reload or
at exit. What one pass does with it is in `passes.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer as FileObserver

from reconciler.config import Config, ConfigError
from reconciler.daemon.health import Health
from reconciler.daemon.http import Endpoint
from reconciler.daemon.key_files import warn_about_key_files
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.triggers import Triggers
from reconciler.libvirt.connection import LibvirtUnavailable, open_connection
from reconciler.libvirt.events import LifecycleWatch
from reconciler.libvirt.informer import InformedObserver
from reconciler.libvirt.migrations import Migrations
from reconciler.libvirt.observe import Observer
from reconciler.reports.publish import StatusPublisher
from reconciler.source import ManifestCache, Source, open_source
from reconciler.source.secrets import SecretOpener

log = logging.getLogger("reconciler.daemon")

# Events after which the run policy may have something to do.
_LIFECYCLE_TRIGGERS = frozenset({"stopped", "crashed", "shutdown", "started", "undefined"})
# Events after which the VM's report changes (AgentReady, guestOSInfo).
_AGENT_TRIGGERS = frozenset({"agent-connected", "agent-disconnected"})


class Component(Protocol):
    """Something started with the configuration, stopped before a reload or at exit."""

    def stop(self) -> None: ...


class LibvirtConnection(Protocol):
    """The calls the daemon makes on its libvirt connection itself, named as libvirt
    names them; everything else goes through reconciler.libvirt (Observer, Applier)."""

    def isAlive(self) -> int: ...

    # [model, memory MiB, CPUs, MHz, NUMA nodes, sockets, cores, threads]
    def getInfo(self) -> list[str | int]: ...


class Libvirt:
    """The daemon's own connection and the observer reading through it. Kept across
    reloads while the connection is alive; opened again when it is not."""

    def __init__(self, health: Health, on_migration_end: Callable[[], None]) -> None:
        self._health = health
        self._on_migration_end = on_migration_end
        self.connection: LibvirtConnection | None = None
        self.observer: InformedObserver | None = None
        # Live migrations outlast the pass that begins them (libvirt/migrations.py).
        self.migrations: Migrations | None = None

    def connect(self, uri: str) -> InformedObserver | None:
        """The observer over a live connection, opened again if it was lost; None when
        libvirt cannot be reached (health says why)."""
        if self.connection is not None:
            try:
                if self.connection.isAlive():
                    return self.observer
            except Exception:
                pass
            self.connection = None
        try:
            self.connection = open_connection(uri)
        except LibvirtUnavailable as error:
            self._health.libvirt = str(error)
            return None
        observer = Observer(self.connection)
        self.migrations = Migrations(self.connection, on_end=self._on_migration_end)
        observer.in_flight = self.migrations.running
        # Fed by the lifecycle watch's events (Components._on_domain_event): a pass
        # reads again only the domains that changed.
        self.observer = InformedObserver(observer)
        self._health.libvirt = "ok"
        return self.observer

    def cpus(self) -> int | None:
        """The host's CPUs as libvirt counts them; None before the first connection."""
        if self.connection is None:
            return None
        return int(self.connection.getInfo()[2])

    def memory_bytes(self) -> int | None:
        """The host's memory as libvirt counts it (virNodeGetInfo, in MiB); None before
        the first connection."""
        if self.connection is None:
            return None
        return int(self.connection.getInfo()[1]) * (1 << 20)


class _Scheduler:
    """The interval trigger: apscheduler's scheduler stopped without waiting for a job."""

    def __init__(self, triggers: Triggers, seconds: float) -> None:
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(
            lambda: triggers.request("interval"),
            "interval",
            seconds=seconds,
            id="interval",
            max_instances=1,
            coalesce=True,
        )

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        self._scheduler.shutdown(wait=False)


class _ManifestsChanged(FileSystemEventHandler):
    """A pass for every change under a local directory, except to reports and `.git`."""

    def __init__(self, root: Path, status_dir: str, triggers: Triggers) -> None:
        self._root = root
        self._status_dir = status_dir
        self._triggers = triggers

    def on_any_event(self, event: FileSystemEvent) -> None:
        parts = Path(str(event.src_path)).relative_to(self._root).parts
        # Our own status files and Git's bookkeeping are not changes of the manifests.
        if not parts or parts[0] in (self._status_dir, ".git"):
            return
        self._triggers.request("file")


def _check_trust_files(config: Config, config_path: Path) -> None:
    """The signing key and the signers' files are read by git and ssh-keygen at each use
    (so rotating them needs no restart), but one that is missing now is a mistake to say
    at start, not a refused head or an unsigned report later."""
    repository = config.repository
    assert repository is not None
    files = {"repository.signingKeyFile": repository.signing_key_file}
    if repository.verify is not None:
        files["repository.verify.allowedSigners"] = repository.verify.allowed_signers
        files["repository.verify.gpgKeyring"] = repository.verify.gpg_keyring
        files["repository.verify.hostSigners"] = repository.verify.host_signers
    for setting, path in files.items():
        if path is None:
            continue
        try:
            with path.open("rb"):
                pass
        except OSError as error:
            raise ConfigError(f"{config_path}: {setting} {path}: {error.strerror}") from None


class Components:
    """What one configuration opens. `__init__` opens the source and the publisher
    (ConfigError, SourceError when it cannot); `start` starts the triggers, and `stop`
    stops whatever of them started."""

    def __init__(
        self,
        config: Config,
        config_path: Path,
        libvirt: Libvirt,
        triggers: Triggers,
        metrics: Metrics,
        health: Health,
    ) -> None:
        if config.repository is None:
            raise ConfigError(f"{config_path}: repository.url is required to run")
        self.config = config
        self.libvirt = libvirt
        self.triggers = triggers
        self.metrics = metrics
        self.health = health
        self._running: list[tuple[str, Component]] = []
        _check_trust_files(config, config_path)
        warn_about_key_files(config, config_path)
        config.cache_dir.mkdir(parents=True, exist_ok=True)
        self.source: Source = open_source(
            config.repository, config.cache_dir / "source", config.status.path
        )
        self.cache = ManifestCache()
        # Kept with the configuration: a revision's Secrets are decrypted once, not at
        # every pass (a reload makes a new one, for a new key file).
        self.secrets = SecretOpener(
            config.age_key_file, require_encrypted=config.require_encrypted_secrets
        )
        self.publisher = self._make_publisher()

    def start(self, webhook_secret: bytes | None) -> None:
        config = self.config
        assert config.repository is not None  # checked in __init__
        self.libvirt.connect(config.libvirt_uri)

        scheduler = _Scheduler(self.triggers, config.repository.interval_seconds)
        scheduler.start()
        self._running.append(("scheduler", scheduler))

        watch = LifecycleWatch(
            config.libvirt_uri,
            self._on_domain_event,
            self._on_libvirt,
            on_changed=self._on_domain_changed,
        )
        watch.start()
        self._running.append(("libvirt-watch", watch))

        if self.source.local_path is not None:
            self._watch_directory(self.source.local_path)

        try:
            endpoint = Endpoint(
                config.listen,
                self.metrics,
                lambda: self.triggers.request("push"),
                self.health.report,
                webhook_secret,  # read with the configuration: a reload keeps it
            )
        except OSError as error:
            raise ConfigError(f"listen {config.listen}: {error.strerror or error}") from None
        endpoint.start()
        self._running.append(("http", endpoint))
        log.info(
            "listening on http://%s:%s (metrics, healthz%s)",
            *endpoint.address,
            ", webhook" if webhook_secret else "",
        )

    def stop(self) -> None:
        for name, component in reversed(self._running):
            try:
                component.stop()
            except Exception as error:  # a component that fails to stop must not block exit
                log.warning("stopping %s: %s", name, error)
        self._running.clear()

    def _watch_directory(self, path: Path) -> None:
        observer = FileObserver()
        observer.schedule(
            _ManifestsChanged(path, self.config.status.path, self.triggers),
            str(path),
            recursive=True,
        )
        observer.daemon = True
        observer.start()
        self._running.append(("file-watch", observer))

    def _make_publisher(self) -> StatusPublisher | None:
        repository = self.config.repository
        assert repository is not None
        if not self.source.publishes_status:
            return None  # a local directory: reports are written beside the manifests
        branch = self.config.status.branch or repository.branch
        return StatusPublisher(
            repository.url,
            branch,
            self.config.status.path,
            self.config.node_name,
            self.config.cache_dir / "status",
            environment=self.source.git_env,
            # Only a status branch of its own may be started: the followed branch,
            # deleted on the remote, must not come back holding nothing but reports.
            create_missing_branch=branch != repository.branch,
            signing_key=repository.signing_key_file,
            # The source has just fetched the same branch: its objects need not come
            # twice (a branch of the reports' own shares none of them).
            borrowed_objects=self.source.object_store if branch == repository.branch else None,
        )

    def _on_domain_changed(self, domain: str) -> None:
        """Any event of a domain: the next pass reads it again (the trigger, if the event
        calls for a pass at all, comes from _on_domain_event)."""
        observer = self.libvirt.observer
        if observer is not None:
            observer.changed(domain)

    def _on_domain_event(self, domain: str, event: str) -> None:
        if event in _AGENT_TRIGGERS:
            observer = self.libvirt.observer
            if observer is not None:
                observer.agents.agent_changed(domain)  # ask it again: maybe another boot
            self.triggers.request("agent")
        elif event in _LIFECYCLE_TRIGGERS:
            self.triggers.request("libvirt")

    def _on_libvirt(self, up: bool, why: str) -> None:
        observer = self.libvirt.observer
        if observer is not None:
            observer.resync()  # events may have been missed meanwhile
        if up:
            self.triggers.request("libvirt-reconnected")
        else:
            self.health.libvirt = why or "disconnected"
            log.warning("libvirt: %s", why)
