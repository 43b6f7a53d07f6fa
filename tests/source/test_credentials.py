"""Credentials reach git through the environment only, and never show in messages."""

from __future__ import annotations

import base64
import shlex
from pathlib import Path

import pytest

from reconciler.source import SourceError, open_source
from reconciler.source.git_source import GitSource
from reconciler.source.gitcli import Credentials, Redactor, redact_url
from tests.gitrepos import Remote
from tests.hosts import vm_yaml
from tests.source.conftest import repository

TOKEN = "ghp_s3cr3tT0kenValue"


def test_token_stays_out_of_errors_and_git_config(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    cache_dir = tmp_path / "cache"
    source = open_source(
        repository("https://127.0.0.1:1/x.git", token_file=str(token_file)), cache_dir, "status"
    )

    with pytest.raises(SourceError) as raised:
        source.update()

    message = str(raised.value)
    assert "cannot fetch https://127.0.0.1:1/x.git (main)" in message
    assert TOKEN not in message
    written = [p.read_text(errors="replace") for p in cache_dir.rglob("*") if p.is_file()]
    assert not any(TOKEN in text for text in written)


def test_token_is_passed_as_an_extra_header_in_the_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    credentials = Credentials("https://git.example.com/fleet.git", token_file=token_file)

    env = credentials.environment(credentials.read_token())

    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert env["GIT_CONFIG_COUNT"] == "1"
    assert env["GIT_CONFIG_KEY_0"] == "http.https://git.example.com/.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {basic}"
    assert env["GIT_TERMINAL_PROMPT"] == "0"


def test_token_is_read_again_at_each_use(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    credentials = Credentials("https://git.example.com/fleet.git", token_file=token_file)
    token_file.write_text("first")
    token_file.write_text("rotated")

    assert credentials.read_token() == "rotated"


def test_ssh_key_goes_into_the_ssh_command(tmp_path: Path) -> None:
    key = tmp_path / "id ed25519"
    source = open_source(
        repository("git@git.example.com:ops/fleet.git", ssh_key_file=str(key)),
        tmp_path / "cache",
        "status",
    )
    assert isinstance(source, GitSource)

    command = shlex.split(source.git_env()["GIT_SSH_COMMAND"])

    assert command[:3] == ["ssh", "-i", str(key)]
    for option in (
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        "StrictHostKeyChecking=accept-new",
        f"UserKnownHostsFile={tmp_path / 'cache' / 'known_hosts'}",
    ):
        assert option in command


def test_url_userinfo_is_redacted() -> None:
    assert redact_url("https://bot:pa55@git.example.com/x.git") == "https://git.example.com/x.git"
    assert redact_url("git@git.example.com:ops/fleet.git") == "git@git.example.com:ops/fleet.git"


def test_redactor_hides_token_and_userinfo_in_git_output() -> None:
    url = "https://bot:pa55@git.example.com/x.git"
    redact = Redactor(url, TOKEN)

    text = redact(f"fatal: unable to access '{url}': token {TOKEN} refused")

    assert "pa55" not in text and TOKEN not in text
    assert "https://git.example.com/x.git" in text and "***" in text


def test_userinfo_in_the_url_stays_out_of_the_error(tmp_path: Path) -> None:
    source = open_source(
        repository("https://bot:pa55@127.0.0.1:1/x.git"), tmp_path / "cache", "status"
    )

    with pytest.raises(SourceError) as raised:
        source.update()

    assert "pa55" not in str(raised.value)
    assert "https://127.0.0.1:1/x.git" in str(raised.value)


def test_token_never_reaches_the_clone(remote: Remote, tmp_path: Path) -> None:
    remote.commit({"vms/web.yaml": vm_yaml("web")})
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    cache_dir = tmp_path / "cache"
    source = open_source(repository(remote.url, token_file=str(token_file)), cache_dir, "status")

    source.update()
    source.update()

    config = (cache_dir / "worktree" / ".git" / "config").read_text()
    assert TOKEN not in config and "extraHeader" not in config
    written = [p.read_bytes() for p in cache_dir.rglob("*") if p.is_file()]
    assert not any(TOKEN.encode() in data for data in written)
