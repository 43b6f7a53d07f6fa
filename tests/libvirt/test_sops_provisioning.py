"""SOPS-encrypted Secrets through whole passes on libvirt's test driver (issue 15): the
host decrypts one with its age key into the VM's cidata seed; a Secret it cannot decrypt
blocks only the VMs using it, with the condition saying whose key is missing; and the
plaintext is in no report, cache file, log line or command output."""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import libvirt
import pycdlib
import pytest

from reconciler.cli import main
from reconciler.model.actions import EnsureSeedVolume
from reconciler.model.conditions import VMReason
from reconciler.source.secrets import SecretOpener
from tests.agekeys import AgeKey, cloud_init_secret, encrypt, files_containing, user_data_ref
from tests.hosts import CLASS, Host, host_options, vm_yaml
from tests.libvirt.conftest import HOST_XML

MARKER = "plaintext-marker-5d09"
USER_DATA = f"#cloud-config\npassword: {MARKER}\nchpasswd: {{expire: false}}\n"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AgeKey]:
    directory = tmp_path_factory.mktemp("keys")
    return {name: AgeKey.create(directory, name) for name in ("hv1", "stranger")}


def write_fleet(host: Host, keys: dict[str, AgeKey]) -> None:
    """web, provisioned from a Secret encrypted for hv1, and db, without provisioning."""
    secret = encrypt(cloud_init_secret("web-cloud-init", USER_DATA), keys["hv1"].recipient)
    host.write("secret.yaml", secret)
    host.write("web.yaml", user_data_ref(vm_yaml("web"), "web-cloud-init"))
    host.write("db.yaml", vm_yaml("db"))


def seed_user_data(image: bytes) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path="/user-data")
        return out.getvalue()
    finally:
        iso.close()


def test_the_host_key_decrypts_the_secret_into_the_vms_seed(
    host: Host, keys: dict[str, AgeKey]
) -> None:
    write_fleet(host, keys)
    host.secrets = SecretOpener(keys["hv1"].path)

    result, _ = host.reconcile()

    assert not result.errors
    (seed,) = [a for a in result.plan.actions if isinstance(a, EnsureSeedVolume)]
    assert seed_user_data(seed.content) == USER_DATA.encode()
    assert host.domain("web.default").isActive() and host.domain("db.default").isActive()
    again, mutations = host.reconcile()
    assert mutations == 0 and not again.plan.has_changes


@pytest.mark.parametrize("key", ["stranger", "missing"])
def test_a_secret_the_host_cannot_decrypt_blocks_only_its_vm(
    host: Host, keys: dict[str, AgeKey], tmp_path: Path, key: str
) -> None:
    write_fleet(host, keys)
    key_file = keys[key].path if key in keys else tmp_path / "no-such.agekey"
    host.secrets = SecretOpener(key_file)

    result, _ = host.reconcile()

    assert not result.errors
    statuses = {vm_id.name: status for vm_id, status in result.statuses_plan.statuses.items()}
    ready = statuses["web"].get("ProvisioningReady")
    assert ready is not None and not ready.status
    assert ready.reason == VMReason.SECRET_NOT_DECRYPTED
    assert "Secret web-cloud-init" in ready.message
    assert keys["hv1"].recipient in ready.message and str(key_file) in ready.message
    assert MARKER not in ready.message
    assert statuses["web"].phase == "Pending"
    with pytest.raises(libvirt.libvirtError):
        host.domain("web.default")
    # everything else converges
    assert statuses["db"].phase == "Running" and host.domain("db.default").isActive()


def test_the_plaintext_is_in_no_report_cache_file_log_line_or_command_output(
    tmp_path: Path,
    keys: dict[str, AgeKey],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = tmp_path / "repo"
    host = Host(repo, libvirt.open(f"test://{HOST_XML}"))
    host.write("class.yaml", CLASS)
    write_fleet(host, keys)
    # a second VM on a Secret no key of this host opens: its refusal is reported too
    stranger = encrypt(cloud_init_secret("other-cloud-init", USER_DATA), keys["stranger"].recipient)
    host.write("other-secret.yaml", stranger)
    host.write("other.yaml", user_data_ref(vm_yaml("other"), "other-cloud-init"))
    cache = tmp_path / "cache"
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"cacheDir": str(cache)}), encoding="utf-8")
    caplog.set_level(logging.DEBUG)
    common = [*host_options(f"test://{HOST_XML}", "hv1"), "--age-key-file", str(keys["hv1"].path)]
    outputs = []
    for argv in (
        ["validate", str(repo)],
        ["plan", str(repo), *common],
        ["plan", str(repo), *common, "--format", "json"],
        [
            "apply",
            str(repo),
            *common,
            "--config",
            str(config),
            "--status-dir",
            str(repo / "status"),
        ],
        ["get", "vm", "-A", "-o", "yaml", "--dir", str(repo)],
        ["describe", "vm", "web", "--dir", str(repo)],
        ["get", "secret", "-A", "-o", "yaml", "--dir", str(repo)],
    ):
        main(argv)
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)

    # the apply decrypted web's Secret and used it
    assert "write cloud-init seed" in outputs[3]
    web = (repo / "status" / "virtualmachines" / "default" / "web.yaml").read_text()
    other = (repo / "status" / "virtualmachines" / "default" / "other.yaml").read_text()
    assert "reason: ProvisioningReady" in web and "SecretNotDecrypted" in other
    assert any(cache.iterdir()), "the apply kept nothing in its cache directory"
    # as it is, and as the base64 of a Secret's data
    leaks = (MARKER, base64.b64encode(USER_DATA.encode()).decode())
    assert files_containing(repo / "status", *leaks) == []
    assert files_containing(cache, *leaks) == []
    for text in (*outputs, *(r.getMessage() for r in caplog.records)):
        assert not any(leak in text for leak in leaks)
    host.connection.close()
