"""A manifests repository with a bare remote on disk, and the daemon as a real subprocess.

Shared by the daemon tests (test driver), the end-to-end tests (a real libvirtd) and
bench/latency.py. The Git side is tests/gitrepos.py, re-exported here so that those
import everything from one place; the daemon is `reconciler run` started the way
systemd would start it: with a notify socket (owned here) and a watchdog.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

# Re-exported (`X as X`): tests/e2e and bench/latency.py import the Git harness from here.
from tests.gitrepos import Remote as Remote
from tests.gitrepos import Workspace as Workspace
from tests.gitrepos import git as git

T = TypeVar("T")

WEBHOOK_SECRET = "s3cret-webhook"


def wait_until(
    what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.1
) -> T:
    """probe()'s first truthy value; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Daemon:
    """`reconciler run` as a subprocess, with a notify socket this object owns."""

    workdir: Path
    settings: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    messages: list[str] = field(default_factory=list)
    _socket: socket.socket | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        secret = self.workdir / "webhook-secret"
        secret.write_text(WEBHOOK_SECRET + "\n", encoding="utf-8")
        self.port = self.port or free_port()
        config = {
            "listen": f"127.0.0.1:{self.port}",
            "webhookSecretFile": str(secret),
            "cacheDir": str(self.workdir / "cache"),
            **self.settings,
        }
        self.config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")

    def start(self, *, watchdog_seconds: float = 60.0) -> None:
        self.write_config()
        notify_path = self.workdir / "notify.sock"
        notify_path.unlink(missing_ok=True)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(notify_path))
        self._socket.settimeout(0.2)
        self.messages = []
        # Read as systemd does, all the time: an unread socket fills up.
        threading.Thread(target=self._read_notifications, args=(self._socket,), daemon=True).start()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                **self.env,
                "NOTIFY_SOCKET": str(notify_path),
                "WATCHDOG_USEC": str(int(watchdog_seconds * 1_000_000)),
                "PYTHONUNBUFFERED": "1",
            },
        )
        log.close()

    def _read_notifications(self, notify: socket.socket) -> None:
        while True:
            try:
                self.messages.extend(notify.recv(65536).decode().splitlines())
            except TimeoutError:
                continue
            except OSError:  # closed
                return

    def notifications(self) -> list[str]:
        """Every sd_notify line received so far."""
        time.sleep(0.3)  # what is in flight arrives
        return list(self.messages)

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            self.check_alive()
            return "READY=1" in self.notifications()

        wait_until(f"READY=1 from the daemon (log: {self.log_path})", ready, timeout)

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"the daemon exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def push_hook(self) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/hooks/git",
            data=b"{}",
            headers={"X-Reconciler-Token": WEBHOOK_SECRET},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def health(self) -> dict[str, Any]:
        return dict(json.loads(self.get("/healthz")[1]))

    def terminate(self, timeout: float = 120.0) -> int:
        """SIGTERM, as systemctl stop sends it; the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)  # the daemon dumps its threads' stacks
            time.sleep(1)
            raise AssertionError(
                f"the daemon did not exit within {timeout:.0f}s of SIGTERM:\n{self.log_tail(80)}"
            ) from None

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def settings(remote: Remote, node: str, **extra: Any) -> dict[str, Any]:
    """A daemon configuration following `remote` on libvirt's test driver as host `node`."""
    return {
        "repository": {"url": remote.url, "intervalSeconds": 2},
        "libvirtUri": "test:///default",
        "nodeName": node,
        "storagePool": "default-pool",
        "network": "default",
        **extra,
    }
