"""The host's private keys at start: one that other users can read, or an age identity
that is not there, is said once with its fix; a key kept to its owner says nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler.config import Config, load_config
from reconciler.daemon.key_files import key_file_warnings, warn_about_key_files


def configured(tmp_path: Path, age: Path | None = None, signing: Path | None = None) -> Config:
    lines = ["repository:", "  url: file:///srv/vms.git"]
    if signing is not None:
        lines.append(f"  signingKeyFile: {signing}")
    lines.append("nodeName: hv1")
    if age is not None:
        lines.append(f"ageKeyFile: {age}")
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path, environ={})


def key(tmp_path: Path, name: str, mode: int) -> Path:
    path = tmp_path / name
    path.write_text("AGE-SECRET-KEY-1EXAMPLE\n", encoding="utf-8")
    path.chmod(mode)
    return path


def test_keys_only_their_owner_reads_say_nothing(tmp_path: Path) -> None:
    config = configured(
        tmp_path, age=key(tmp_path, "age.key", 0o600), signing=key(tmp_path, "id", 0o400)
    )

    assert key_file_warnings(config, tmp_path / "config.yaml") == []


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_an_age_identity_others_can_read_is_said_with_its_fix(tmp_path: Path, mode: int) -> None:
    age = key(tmp_path, "age.key", mode)

    warnings = key_file_warnings(configured(tmp_path, age=age), tmp_path / "config.yaml")

    assert warnings == [
        f"{tmp_path / 'config.yaml'}: ageKeyFile {age} is a private key that other users of"
        f" this host can read (mode {mode:04o}): chmod 600 {age}"
    ]


def test_a_signing_key_others_can_read_is_said(tmp_path: Path) -> None:
    signing = key(tmp_path, "id_ed25519", 0o644)

    (warning,) = key_file_warnings(configured(tmp_path, signing=signing), tmp_path / "c.yaml")

    assert f"repository.signingKeyFile {signing} is a private key" in warning
    assert f"chmod 600 {signing}" in warning


def test_a_symlinked_key_is_judged_by_the_file_it_leads_to(tmp_path: Path) -> None:
    target = key(tmp_path, "real.key", 0o644)
    link = tmp_path / "age.key"
    link.symlink_to(target)

    (warning,) = key_file_warnings(configured(tmp_path, age=link), tmp_path / "c.yaml")

    assert "mode 0644" in warning


def test_a_missing_age_identity_is_said_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "age.key"

    (warning,) = key_file_warnings(configured(tmp_path, age=missing), tmp_path / "c.yaml")

    assert f"ageKeyFile {missing} does not exist" in warning
    assert f"age-keygen -o {missing}" in warning


def test_a_directory_is_no_key(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)

    (warning,) = key_file_warnings(configured(tmp_path, age=folder), tmp_path / "c.yaml")

    assert warning.endswith(f"ageKeyFile {folder} is not a regular file")


def test_the_warnings_go_to_the_daemons_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    age = key(tmp_path, "age.key", 0o644)

    with caplog.at_level(logging.WARNING, logger="reconciler.daemon"):
        warn_about_key_files(configured(tmp_path, age=age), tmp_path / "c.yaml")

    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "chmod 600" in caplog.records[0].getMessage()
