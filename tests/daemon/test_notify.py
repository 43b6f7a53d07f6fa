"""sd_notify through a datagram socket the test owns, as systemd would hold it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.daemon.notify import Heartbeat, Notifier, watchdog_interval_seconds


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    yield server, path
    server.close()


def test_ready_watchdog_status_and_stopping_arrive(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    server, path = systemd_socket
    notifier = Notifier(path)
    assert notifier.ready("following repo (main)")
    assert server.recv(4096).decode().splitlines() == ["READY=1", "STATUS=following repo (main)"]
    assert notifier.watchdog()
    assert server.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert server.recv(4096) == b"STOPPING=1"


def test_abstract_socket_names_work() -> None:
    name = f"vmr-notify-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(2)
    try:
        assert Notifier("@" + name).ready()
        assert server.recv(4096) == b"READY=1"
    finally:
        server.close()


def test_without_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert not notifier.ready()


def test_watchdog_interval_is_half_of_watchdogsec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "120000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_seconds() == 60
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval_seconds() is None


def test_heartbeat_pings_while_beaten_and_stops_when_the_daemon_stalls(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    server, path = systemd_socket
    server.settimeout(0.5)
    heartbeat = Heartbeat(Notifier(path), interval=0.05, stall_seconds=0.3)
    heartbeat.start()
    try:
        assert server.recv(4096) == b"WATCHDOG=1"  # a long pass that makes progress
        time.sleep(0.4)  # no beat for longer than the stall limit: a hung daemon
        drain(server)
        with pytest.raises(TimeoutError):
            server.recv(4096)
        heartbeat.beat()
        assert server.recv(4096) == b"WATCHDOG=1"
    finally:
        heartbeat.stop()


def drain(server: socket.socket) -> None:
    server.setblocking(False)
    try:
        while True:
            server.recv(4096)
    except BlockingIOError:
        pass
    finally:
        server.settimeout(0.5)


def test_a_reader_that_does_not_read_never_stalls_the_daemon(tmp_path: Path) -> None:
    path = str(tmp_path / "full")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    try:
        notifier = Notifier(path)
        sent = [notifier.status(f"pass {n}") for n in range(5000)]
        assert not all(sent), "the queue filled up and later messages were dropped"
        assert server.recv(4096) == b"STATUS=pass 0"
    finally:
        server.close()
