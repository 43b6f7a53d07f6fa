"""The daemon's HTTP endpoint: /metrics, /healthz and the push webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reconciler.daemon.metrics import Metrics

MAX_WEBHOOK_BODY = 1 << 20


class Endpoint:
    """Serves in a thread of its own; `health()` says whether the daemon is well."""

    def __init__(
        self,
        listen: str,
        metrics: Metrics,
        on_push: Callable[[], None],
        health: Callable[[], tuple[bool, dict[str, object]]],
        secret: bytes | None,
    ) -> None:
        host, _, port = listen.rpartition(":")
        self._metrics = metrics
        self._on_push = on_push
        self._health = health
        self._secret = secret
        self._server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _authorized(self, headers: dict[str, str], body: bytes) -> bool:
        if self._secret is None:
            return False  # no secret configured: the webhook is off
        token = headers.get("x-reconciler-token", "")
        if token and hmac.compare_digest(token.encode(), self._secret):
            return True
        # GitHub and Gitea sign the body with the shared secret.
        signature = headers.get("x-hub-signature-256", "")
        if signature.startswith("sha256="):
            expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            return hmac.compare_digest(signature[7:], expected)
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "vm-reconciler"

            def log_message(self, format: str, *args: object) -> None:
                return None  # requests are not worth a journal line each

            def _reply(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, document: object) -> None:
                self._reply(code, json.dumps(document).encode() + b"\n", "application/json")

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    text = generate_latest(endpoint._metrics.registry)
                    self._reply(200, text, CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    healthy, details = endpoint._health()
                    self._json(200 if healthy else 503, details)
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                if self.path != "/hooks/git":
                    self._json(404, {"error": "not found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_WEBHOOK_BODY:
                    self._json(413, {"error": "body too large"})
                    return
                body = self.rfile.read(length) if length else b""
                headers = {key.lower(): value for key, value in self.headers.items()}
                if not endpoint._authorized(headers, body):
                    self._json(403, {"error": "missing or wrong secret"})
                    return
                endpoint._on_push()
                self._json(202, {"accepted": True})

        return Handler
