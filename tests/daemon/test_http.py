"""The HTTP endpoint under attack, over raw sockets, as a network neighbour would try it.

Each test talks to a real listening Endpoint (the daemon's own class, in this process)
with a short timeout and a small connection cap, so that what takes minutes with the
defaults takes seconds here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from reconciler.daemon.http import MAX_WEBHOOK_BODY, Endpoint
from reconciler.daemon.metrics import Metrics
from tests.daemonlab import wait_until

SECRET = b"s3cret-webhook"
TIMEOUT = 1.0
CAP = 20
# What the kernel buffers between two loopback sockets (tcp_rmem and tcp_wmem at most
# 32 MiB and 4 MiB here) is all a client can send to a server that reads nothing.
UNREAD = 64 << 20
HUGE = 1 << 30


@dataclass
class Served:
    endpoint: Endpoint
    pushes: list[float] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.endpoint.address[1]


@pytest.fixture
def served() -> Iterator[Served]:
    pushes: list[float] = []
    endpoint = Endpoint(
        "127.0.0.1:0",
        Metrics(),
        lambda: pushes.append(time.monotonic()),
        lambda: (True, {"healthy": True}),
        SECRET,
        timeout=TIMEOUT,
        max_connections=CAP,
    )
    endpoint.start()
    yield Served(endpoint, pushes)
    endpoint.stop()


@dataclass
class Exchange:
    response: bytes
    body_sent: int

    @property
    def status(self) -> int:
        return int(self.response.split(b" ", 2)[1])


def exchange(port: int, head: bytes, body: int = 0, piece: bytes = b"x" * 65536) -> Exchange:
    """Sends `head`, then up to `body` bytes of `piece`s while reading the reply."""
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    client.sendall(head)
    sent = 0

    def send_body() -> None:
        nonlocal sent
        try:
            while sent < body:
                client.sendall(piece)
                sent += len(piece)
        except OSError:
            return  # the server closed the connection: the rest is never read

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    response = b""
    try:
        while chunk := client.recv(65536):
            response += chunk
    except OSError:
        pass  # a reset after the reply
    sender.join(30)
    client.close()
    return Exchange(response, sent)


def post(body: bytes, **headers: str) -> bytes:
    lines = [b"POST /hooks/git HTTP/1.1", b"Host: hv", b"Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}".encode() for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: hv\r\nConnection: close\r\n\r\n"
HOOK = b"POST /hooks/git HTTP/1.1\r\nHost: hv\r\n"


def test_a_negative_content_length_is_refused_before_the_body_is_read(served: Served) -> None:
    reply = exchange(served.port, HOOK + b"Content-Length: -1\r\n\r\n", body=HUGE)
    assert reply.status == 400
    assert reply.body_sent < UNREAD, "the body was read"
    assert served.pushes == []


def test_a_non_numeric_content_length_is_a_400_without_a_traceback(
    served: Served, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        assert exchange(served.port, HOOK + b"Content-Length: abc\r\n\r\n").status == 400
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING] == []
    assert "Traceback" not in caplog.text
    assert "Traceback" not in capfd.readouterr().err
    assert exchange(served.port, HEALTHZ).status == 200


@pytest.mark.parametrize(
    "length", [b"99999999999999999999", str(MAX_WEBHOOK_BODY + 1).encode(), b"+5", b"5, 5"]
)
def test_an_oversized_or_malformed_content_length_is_refused_unread(
    served: Served, length: bytes
) -> None:
    reply = exchange(served.port, HOOK + b"Content-Length: " + length + b"\r\n\r\n", body=HUGE)
    assert reply.status in (400, 413)
    assert reply.body_sent < UNREAD
    assert served.pushes == []


def test_a_chunked_body_over_the_cap_is_refused(served: Served) -> None:
    piece = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    reply = exchange(
        served.port, HOOK + b"Transfer-Encoding: chunked\r\n\r\n", body=HUGE, piece=piece
    )
    assert reply.status == 413
    assert reply.body_sent < UNREAD
    assert served.pushes == []


def test_a_body_of_exactly_the_cap_is_still_read(served: Served) -> None:
    body = b"x" * MAX_WEBHOOK_BODY
    signature = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    reply = exchange(served.port, post(body, X_Hub_Signature_256=f"sha256={signature}"))
    assert reply.status == 202
    assert len(served.pushes) == 1


def test_the_token_header_triggers_a_push(served: Served) -> None:
    reply = exchange(served.port, post(b"{}", X_Reconciler_Token=SECRET.decode()))
    assert reply.status == 202
    assert json.loads(reply.response.split(b"\r\n\r\n", 1)[1]) == {"accepted": True}
    assert len(served.pushes) == 1


def test_a_body_signed_with_the_secret_triggers_a_push(served: Served) -> None:
    body = b'{"ref": "refs/heads/main"}'
    signature = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    reply = exchange(served.port, post(body, X_Hub_Signature_256=f"sha256={signature}"))
    assert reply.status == 202
    assert len(served.pushes) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X_Reconciler_Token": "wrong"},
        {"X_Reconciler_Token": SECRET.decode() + "x"},
        {"X_Hub_Signature_256": "sha256=" + hmac.new(b"", b"{}", hashlib.sha256).hexdigest()},
        {"X_Hub_Signature_256": "sha256=" + hmac.new(SECRET, b"{ }", hashlib.sha256).hexdigest()},
        {"X_Hub_Signature_256": "sha256=\u00e9\u00e9"},
    ],
    ids=["none", "wrong-token", "longer-token", "empty-key", "other-body", "not-hex"],
)
def test_a_wrong_token_or_signature_is_forbidden(
    served: Served, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    head = post(b"{}").split(b"Content-Length")[0]
    extra = b"".join(
        f"{k.replace('_', '-')}: {v}\r\n".encode("latin-1") for k, v in headers.items()
    )
    reply = exchange(served.port, head + extra + b"Content-Length: 2\r\n\r\n{}")
    assert reply.status == 403
    assert served.pushes == []
    assert "Traceback" not in caplog.text


def test_without_a_secret_the_webhook_is_off() -> None:
    endpoint = Endpoint("127.0.0.1:0", Metrics(), lambda: None, lambda: (True, {}), b"")
    endpoint.start()
    try:
        signature = hmac.new(b"", b"{}", hashlib.sha256).hexdigest()
        reply = exchange(
            endpoint.address[1], post(b"{}", X_Hub_Signature_256=f"sha256={signature}")
        )
        assert reply.status == 403
    finally:
        endpoint.stop()


def test_metrics_are_in_the_prometheus_text_format(served: Served) -> None:
    reply = exchange(served.port, b"GET /metrics HTTP/1.1\r\nHost: hv\r\nConnection: close\r\n\r\n")
    head, _, body = reply.response.partition(b"\r\n\r\n")
    assert reply.status == 200
    assert b"Content-Type: text/plain; version=" in head
    assert b"# TYPE reconciler_pass_duration_seconds histogram" in body


def accepted_connections(port: int) -> int:
    """Connections to `port` the server has accepted and still holds open, from the
    kernel's own table (sockets still in the accept queue have no inode yet)."""
    count = 0
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            established = fields[3] == "01"
            if local_port == port and established and fields[9] != "0":
                count += 1
    return count


def closed_by_server(client: socket.socket) -> bool:
    try:
        return client.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset


def test_a_thousand_slow_clients_are_cut_off_and_a_well_behaved_one_is_answered(
    served: Served,
) -> None:
    slow = []
    held = []
    try:
        for _ in range(1000):
            client = socket.create_connection(("127.0.0.1", served.port), timeout=30)
            client.sendall(b"POST /hooks/git HTTP/1.1\r\nHost: hv\r\nContent-Le")  # and no more
            slow.append(client)
        held.append(accepted_connections(served.port))

        assert exchange(served.port, HEALTHZ).status == 200

        for client in slow:
            client.setblocking(False)

        def all_cut_off() -> bool:
            held.append(accepted_connections(served.port))
            return all(closed_by_server(client) for client in slow)

        wait_until("every slow client disconnected", all_cut_off, 60, interval=0.5)
    finally:
        for client in slow:
            client.close()
    # The kernel hands its table out a page at a time while connections come and go, so
    # a reading can count a few twice; without the cap it would be a thousand.
    assert max(held) < 2 * CAP, f"{max(held)} connections open at once, cap {CAP}"
    assert served.pushes == []


def test_a_client_trickling_its_request_is_cut_off_at_the_deadline(served: Served) -> None:
    client = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    # A byte every tenth of a second: never idle for long, done in a minute.
    request = b"POST /hooks/git HTTP/1.1\r\nHost: hv\r\nX-Padding: " + b"x" * 560
    sent = 0
    try:
        for byte in request:
            client.sendall(bytes([byte]))
            sent += 1
            time.sleep(0.1)
    except OSError:
        pass  # cut off
    finally:
        client.close()
    assert sent < len(request), "the whole request went through a byte at a time"
    assert served.pushes == []
