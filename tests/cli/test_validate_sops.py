"""`reconciler validate` on SOPS-encrypted Secrets, without any key, as a pull request's CI
runs it; `--require-encrypted-secrets` (or the config's requireEncryptedSecrets) refuses a
Secret whose data is in the clear, naming file, line and object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli import main
from tests.agekeys import AgeKey, cloud_init_secret, encrypt, user_data_ref
from tests.hosts import CLASS, vm_yaml

MARKER = "plaintext-marker-c3a8"
USER_DATA = f"#cloud-config\npassword: {MARKER}\n"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> AgeKey:
    return AgeKey.create(tmp_path_factory.mktemp("keys"), "hv1")


def repository(root: Path, secret: str) -> Path:
    root.mkdir()
    (root / "class.yaml").write_text(CLASS, encoding="utf-8")
    (root / "web.yaml").write_text(user_data_ref(vm_yaml("web"), "web-cloud-init"))
    (root / "secret.yaml").write_text(secret, encoding="utf-8")
    return root


def validate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["validate", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_an_encrypted_secret_validates_without_a_key_even_when_required(
    tmp_path: Path, key: AgeKey, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = encrypt(cloud_init_secret("web-cloud-init", USER_DATA), key.recipient)
    root = repository(tmp_path / "repo", secret)

    assert validate(capsys, str(root))[0] == 0
    code, output = validate(capsys, str(root), "--require-encrypted-secrets")
    assert code == 0, output


def test_an_encrypted_secret_without_the_key_its_vm_needs_is_a_reference_finding(
    tmp_path: Path, key: AgeKey, capsys: pytest.CaptureFixture[str]
) -> None:
    clear = cloud_init_secret("web-cloud-init", USER_DATA).replace("userData:", "other:")
    root = repository(tmp_path / "repo", encrypt(clear, key.recipient))

    code, output = validate(capsys, str(root))

    assert code == 1
    assert "Secret web-cloud-init has no userData or userdata key [reference]" in output
    assert MARKER not in output


def test_required_encryption_refuses_a_secret_in_the_clear_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repository(tmp_path / "repo", cloud_init_secret("web-cloud-init", USER_DATA))
    assert validate(capsys, str(root))[0] == 0

    code, output = validate(capsys, str(root), "--require-encrypted-secrets", "--format", "json")

    assert code == 1
    (finding,) = json.loads(output)
    assert finding["path"] == "secret.yaml" and finding["line"] == 8
    assert finding["object"] == "Secret/default/web-cloud-init"
    assert finding["rule"] == "secret-encryption"
    assert "data is in the clear" in finding["message"] and "sops --encrypt" in finding["message"]
    assert MARKER not in output


def test_the_configs_require_encrypted_secrets_means_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repository(tmp_path / "repo", cloud_init_secret("web-cloud-init", USER_DATA))
    config = tmp_path / "config.yaml"
    config.write_text("requireEncryptedSecrets: true\n", encoding="utf-8")

    code, output = validate(capsys, str(root), "--config", str(config))

    assert code == 1
    assert "secret.yaml:8:3: Secret/default/web-cloud-init: data is in the clear" in output
