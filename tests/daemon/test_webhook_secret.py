"""The webhook secret of a live `reconciler run`: a file that is set must hold a secret.

An empty file once meant "webhook off" in the log while a POST signed with the empty
key was accepted; now an empty or unreadable file stops the daemon at start, and is
refused at reload with the running secret kept.
"""

from __future__ import annotations

import hashlib
import hmac
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.daemonlab import WEBHOOK_SECRET, Daemon, Remote, Workspace, settings, wait_until
from tests.hosts import vm_yaml


def post_hook(daemon: Daemon, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{daemon.port}/hooks/git", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def signed(body: bytes, key: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.write_bytes(b""), "the file is empty"),
        (lambda path: path.write_bytes(b" \n\t\n"), "the file is empty"),
        (lambda path: path.mkdir(), "cannot read the webhook secret: Is a directory"),
        (lambda path: None, "cannot read the webhook secret: No such file or directory"),
    ],
    ids=["empty", "blank", "a-directory", "missing"],
)
def test_an_empty_or_unreadable_secret_file_stops_the_daemon_at_start(
    remote: Remote, operator: Workspace, tmp_path: Path, make: object, message: str
) -> None:
    operator.commit_and_push("a class")
    secret_file = tmp_path / "secret"
    make(secret_file)  # type: ignore[operator]
    daemon = Daemon(tmp_path / "hv", settings(remote, "hv", webhookSecretFile=str(secret_file)))
    daemon.start()
    try:
        assert daemon.process is not None
        assert daemon.process.wait(60) == 2
    finally:
        daemon.close()
    log = daemon.log_text()
    assert f"config.yaml: webhookSecretFile {secret_file}: {message}" in log
    assert "Traceback" not in log


def test_a_secret_emptied_before_a_reload_is_refused_and_the_running_one_kept(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    operator.commit_and_push("a class")
    daemon = Daemon(tmp_path / "hv", settings(remote, "hv"))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    (daemon.workdir / "webhook-secret").write_bytes(b"")

    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    wait_until("the reload refused", lambda: "reload refused" in daemon.log_text(), 15)

    assert "webhookSecretFile" in daemon.log_text()
    assert post_hook(daemon, b"{}", signed(b"{}", b"")) == 403
    assert daemon.push_hook() == 202, "the running secret still opens the webhook"
    assert daemon.terminate() == 0


def test_a_valid_token_or_signature_starts_a_pass_and_a_wrong_one_is_forbidden(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    operator.commit_and_push("a class")
    # No interval pass in the test's time: a pass for a push is the webhook's doing.
    hourly = {"url": remote.url, "intervalSeconds": 3600}
    daemon = Daemon(tmp_path / "hv", settings(remote, "hv", repository=hourly))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()
    wait_until("the first pass", lambda: "pass (" in daemon.log_text(), 30)
    body = b'{"ref": "refs/heads/main"}'
    key = WEBHOOK_SECRET.encode()

    assert post_hook(daemon, body, {"X-Reconciler-Token": "wrong"}) == 403
    assert post_hook(daemon, body, signed(body, b"wrong")) == 403
    assert post_hook(daemon, body, signed(body + b" ", key)) == 403

    operator.write("vms/vm.yaml", vm_yaml(name="vm"))
    operator.commit_and_push("a VM")
    assert post_hook(daemon, body, signed(body, key)) == 202
    wait_until("a pass for the signed push", lambda: "pass (push)" in daemon.log_text(), 30)

    operator.write("vms/vm.yaml", vm_yaml(name="vm", cores=2))
    operator.commit_and_push("two cores")
    assert daemon.push_hook() == 202  # the token header
    wait_until(
        "a pass for the push with the token",
        lambda: daemon.log_text().count("pass (push)") == 2,
        30,
    )
    assert daemon.terminate() == 0
