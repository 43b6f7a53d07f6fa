"""Encrypted Secrets, for real (issue 15): a Secret encrypted with the real `sops` for an
age key reaches the tiny guest's cidata seed, decrypted by the host in memory; its
plaintext is in no status report, no file of the cache directory, no log line and no
command output."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.reports.known import KNOWN, keep_known_reports, save_known_reports
from reconciler.source.secrets import SecretOpener
from tests.agekeys import AgeKey, cloud_init_secret, encrypt, files_containing, user_data_ref
from tests.hosts import Host, vm_yaml

from .lab import TestGuest, agent_command, wait_for_agent, wait_until
from .test_provisioning import read_guest_file

pytestmark = pytest.mark.e2e

MARKER = "sops-decrypted-by-the-host-7a41"
USER_DATA = f"#cloud-config\nruncmd:\n  - echo {MARKER}\n"
LEAKS = (MARKER, base64.b64encode(USER_DATA.encode()).decode())


def test_the_guest_reads_the_user_data_of_its_encrypted_secret_and_nothing_else_does(
    host: Host,
    e2e_namespace: str,
    guest: TestGuest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    key = AgeKey.create(tmp_path / "keys", "host")
    secret = cloud_init_secret("web-cloud-init", USER_DATA, namespace=e2e_namespace)
    host.write("secret.yaml", encrypt(secret, key.recipient))
    manifest = vm_yaml("web", namespace=e2e_namespace, kernel_boot=guest.kernel_boot())
    host.write("vm.yaml", user_data_ref(manifest, "web-cloud-init"))
    host.secrets = SecretOpener(key.path)
    # the reports written as `reconciler apply` writes them, with its cache directory
    cache = tmp_path / "cache"
    before = KNOWN.path
    keep_known_reports(cache)
    try:
        result, _ = host.reconcile()
        assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]
        host.write_statuses(result)
        save_known_reports()
    finally:
        KNOWN.use(before)
    assert main(["validate", str(host.repo), "--require-encrypted-secrets"]) == 0

    domain = host.domain(f"web.{e2e_namespace}")
    wait_for_agent(domain)
    mounted = wait_until(
        "the guest's init looking for its seed",
        lambda: read_guest_file(domain, "/run/test-guest/cidata") or None,
        30,
        interval=0.5,
    )
    assert mounted.startswith(b"mounted /dev/"), mounted
    assert read_guest_file(domain, "/mnt/cidata/user-data") == USER_DATA.encode()
    assert agent_command(domain, "guest-get-host-name")["host-name"] == "web"

    status = host.repo / "status"
    assert (status / "virtualmachines" / e2e_namespace / "web.yaml").is_file()
    assert any(cache.iterdir()), "nothing was kept in the cache directory"
    assert files_containing(status, *LEAKS) == []
    assert files_containing(cache, *LEAKS) == []
    captured = capsys.readouterr()
    output = captured.out + captured.err + "\n".join(r.getMessage() for r in caplog.records)
    assert not any(leak in output for leak in LEAKS)
