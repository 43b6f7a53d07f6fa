"""The daemon's HTTP endpoint: /metrics, /healthz and the push webhook.

Anyone who can reach the listen address can talk to it, so the server is waitress
rather than hand-written `http.server` code: its parser refuses bad framing with a
400 or 413 before reading a body (a negative, non-numeric, repeated or oversized
Content-Length, a chunked body over the cap), it serves connections from one event
loop instead of a thread each, and it never logs a traceback for a bad request.
Two rules are added on top of it, in `_Server`: a connection lives at most
`timeout` seconds unless its request is being answered (waitress's own timeout is
one of idleness, which a client sending a byte a second never reaches), and at the
connection cap a new connection replaces the oldest one that is not being
answered, so that slow clients cannot keep a well-behaved one queued.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

from prometheus_client import make_wsgi_app
from waitress.server import TcpWSGIServer

from reconciler.daemon.metrics import Metrics

if TYPE_CHECKING:  # typeshed's WSGI types exist for type checkers only
    from _typeshed.wsgi import InputStream, StartResponse, WSGIApplication, WSGIEnvironment

MAX_WEBHOOK_BODY = 1 << 20
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_CONNECTIONS = 50
# Threads that run requests; each request is answered from memory in well under a
# millisecond, so two are plenty, and the event loop holds the waiting connections.
_WORKER_THREADS = 2

log = logging.getLogger("reconciler.daemon.http")


class _Server(TcpWSGIServer):  # type: ignore[misc]  # waitress has no type hints
    """waitress's server with a deadline per connection and eviction at the cap."""

    def __init__(self, app: WSGIApplication, sock: socket.socket, timeout: float, cap: int) -> None:
        self._timeout = timeout
        self._cap = cap
        super().__init__(
            app,
            map={},
            _sock=sock,
            bind_socket=False,
            sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
            sockets=[sock],
            threads=_WORKER_THREADS,
            ident="vm-reconciler",
            # waitress answers 413 once a body reaches this size: the cap itself is allowed.
            max_request_body_size=MAX_WEBHOOK_BODY + 1,
            # A body up to the cap stays in memory rather than in a temporary file.
            inbuf_overflow=MAX_WEBHOOK_BODY + 1,
            max_request_header_size=64 * 1024,
            cleanup_interval=max(1, int(timeout / 2)),
            # poll(), not select(): a descriptor above 1023 must not stop the loop.
            asyncore_use_poll=True,
            expose_tracebacks=False,
            # waitress counts its own socket and wake-up pipe too; with one more, it
            # stops accepting only when every connection under the cap is being
            # answered (nothing to evict), one connection over the cap.
            connection_limit=cap + 3,
        )

    def maintenance(self, now: float) -> None:
        cutoff = now - self._timeout
        for channel in list(self.active_channels.values()):
            if not channel.requests and channel.creation_time < cutoff:
                channel.will_close = True

    def handle_accept(self) -> None:
        if len(self.active_channels) >= self._cap:
            idle = [c for c in self.active_channels.values() if not c.requests]
            if idle:
                min(idle, key=lambda c: c.creation_time).handle_close()
        super().handle_accept()


class Endpoint:
    """Serves in a thread of its own; `health()` says whether the daemon is well.

    The webhook is off unless `secret` is given (not empty): then `POST /hooks/git`
    needs it in `X-Reconciler-Token` or as the key of an `X-Hub-Signature-256`.
    """

    def __init__(
        self,
        listen: str,
        metrics: Metrics,
        on_push: Callable[[], None],
        health: Callable[[], tuple[bool, dict[str, object]]],
        secret: bytes | None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if not port.isdigit() or int(port) > 65535:
            raise OSError(errno.EINVAL, f"{listen!r} is not host:port")
        self._on_push = on_push
        self._health = health
        self._secret = secret or None
        self._metrics_app: WSGIApplication = make_wsgi_app(metrics.registry)
        # Under a flood waitress says so once per queued request: not worth the journal.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, int(port)))
            self._server = _Server(self._app, sock, timeout, max_connections)
        except BaseException:
            sock.close()
            raise
        self._address = sock.getsockname()[:2]
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._address
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        server = self._server

        def close_everything() -> None:
            # In the loop's own thread: an empty map ends the loop.
            for dispatcher in list(server._map.values()):
                dispatcher.close()

        if self._thread.is_alive():
            server.trigger.pull_trigger(close_everything)
            self._thread.join(10)
        else:
            close_everything()
        server.task_dispatcher.shutdown(timeout=5)

    def _authorized(self, environ: WSGIEnvironment, body: bytes) -> bool:
        if self._secret is None:
            return False  # no secret configured: the webhook is off
        # WSGI hands headers over decoded as latin-1: encoding back gives the bytes sent.
        token = str(environ.get("HTTP_X_RECONCILER_TOKEN", "")).encode("latin-1")
        if token and hmac.compare_digest(token, self._secret):
            return True
        # GitHub and Gitea sign the body with the shared secret.
        signature = str(environ.get("HTTP_X_HUB_SIGNATURE_256", "")).encode("latin-1")
        if signature.startswith(b"sha256="):
            expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest().encode()
            return hmac.compare_digest(signature[7:], expected)
        return False

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            return self._route(environ, start_response)
        except Exception as error:  # one line, not waitress's traceback per request
            log.error("http %s: %s", environ.get("PATH_INFO", ""), error)
            return _json(start_response, 500, {"error": "internal error"})

    def _route(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/metrics":
            if method not in ("GET", "HEAD"):
                return _json(start_response, 405, {"error": "method not allowed"})
            return self._metrics_app(environ, start_response)
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                return _json(start_response, 405, {"error": "method not allowed"})
            healthy, details = self._health()
            return _json(start_response, 200 if healthy else 503, details)
        if path == "/hooks/git":
            if method != "POST":
                return _json(start_response, 405, {"error": "method not allowed"})
            # waitress has read the whole body already, and refused one over the cap.
            stream: InputStream = environ["wsgi.input"]
            body = stream.read(MAX_WEBHOOK_BODY + 1)
            if not self._authorized(environ, body):
                return _json(start_response, 403, {"error": "missing or wrong secret"})
            self._on_push()
            return _json(start_response, 202, {"accepted": True})
        return _json(start_response, 404, {"error": "not found"})


def _json(start_response: StartResponse, code: int, document: object) -> list[bytes]:
    body = json.dumps(document).encode() + b"\n"
    start_response(
        f"{code} {HTTPStatus(code).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
