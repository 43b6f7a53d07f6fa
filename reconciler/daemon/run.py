"""`reconciler run`: follow a branch, reconcile on every trigger, report back into Git.

One pass at a time in the main thread; every trigger (interval, file watch,
webhook, libvirt event, start, reload) only asks for a pass, and requests that
arrive during a pass are merged into the next one. All state lives in libvirt
and Git, so a daemon killed at any point converges when started again.

This module is the daemon's lifecycle (signals, reload, the main loop); what it
holds open is in `components.py`, what one pass does in `passes.py`.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
from collections import Counter
from pathlib import Path
from types import FrameType

from reconciler.config import ConfigError, load_config, read_webhook_secret
from reconciler.daemon.collector import PassCollector
from reconciler.daemon.components import Components, Libvirt
from reconciler.daemon.health import Health
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import Heartbeat, Notifier, watchdog_interval_seconds
from reconciler.daemon.passes import Pass, PassMemory
from reconciler.daemon.triggers import Triggers
from reconciler.libvirt.events import start_event_loop
from reconciler.reports.known import save_known_reports
from reconciler.source import SourceError

log = logging.getLogger("reconciler.daemon")


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
        self._libvirt = Libvirt(self.health, lambda: self.triggers.request("migration"))
        self._components: Components | None = None
        self._memory = PassMemory()
        self._collector = PassCollector()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
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
        save_known_reports()  # saved lazily after passes: what the last ones added
        log.info("stopped")
        return 0

    def _one_pass(self, reasons: Counter[str]) -> None:
        components = self._components
        if components is not None:  # started before the loop, and again by every reload
            with self._collector.during_pass():
                Pass(components, self._memory, self.notifier, self._progress).run(reasons)
                # Inside: its collection is the pass's only one, not one more after it.
                self._collector.after_pass()

    def _progress(self, line: str) -> None:
        self.heartbeat.beat()
        log.info("%s", line)

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
        self._memory.forget_revision()
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

    def _start_components(self) -> None:
        """Opens and starts what the configuration names; on an error, what started is
        left in `_components` for `_stop_components`."""
        self._components = Components(
            self.config,
            self.config_path,
            self._libvirt,
            self.triggers,
            self.metrics,
            self.health,
        )
        self._components.start(self.webhook_secret)

    def _stop_components(self) -> None:
        if self._components is not None:
            self._components.stop()


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
