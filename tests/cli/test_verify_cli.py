"""`reconciler verify [REV-RANGE]` on a real repository with real signatures: a line per
commit (sha, verdict, signer, what it touched) and validate's exit codes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.gitrepos import Remote, git
from tests.signing import PgpKey, SigningKey, allowed_signers

STATUS_FILE = "status/nodes/hv-a.yaml"


@dataclass(frozen=True)
class Signed:
    remote: Remote
    operator: SigningKey
    host: SigningKey
    stranger: SigningKey
    allowed: Path
    hosts: Path

    def verify(self, cli: Cli, *argv: str | Path) -> tuple[int, list[list[str]], str]:
        """The exit code, the commit lines split into columns, and the last line."""
        run = cli(
            "verify",
            "--dir",
            self.remote.author,
            "--allowed-signers",
            self.allowed,
            "--host-signers",
            self.hosts,
            *argv,
        )
        lines = run.out.splitlines()
        rows = [line.split("  ") for line in lines[1:-1]]
        return (
            run.code,
            [[cell.strip() for cell in row if cell.strip()] for row in rows],
            (lines[-1] if lines else run.err),
        )


@pytest.fixture
def signed(tmp_path: Path) -> Signed:
    remote = Remote.create(tmp_path / "remote.git", author=tmp_path / "author")
    keys = tmp_path / "keys"
    operator = SigningKey.create(keys, "operator@example.com")
    host = SigningKey.create(keys, "hv-a")
    stranger = SigningKey.create(keys, "stranger@example.com")
    remote.commit({"vms/web.yaml": "kind: VirtualMachine\n"}, "web", operator.config)
    return Signed(
        remote,
        operator,
        host,
        stranger,
        allowed_signers(tmp_path / "allowed_signers", operator),
        allowed_signers(tmp_path / "host_signers", host),
    )


def test_a_signed_range_prints_each_commit_ok_and_exits_0(cli: Cli, signed: Signed) -> None:
    base = signed.remote.head()
    manifest = signed.remote.commit({"vms/db.yaml": "kind: X\n"}, "db", signed.operator.config)
    status = signed.remote.commit({STATUS_FILE: "up: true\n"}, "status", signed.host.config)

    code, rows, last = signed.verify(cli, f"{base}..HEAD")

    assert code == 0
    assert rows == [
        [manifest[:12], "ok", "operator@example.com", "manifests: vms/db.yaml"],
        [status[:12], "ok", "hv-a", f"status only: {STATUS_FILE}"],
    ]
    assert last == "ok: 2 commit(s) verified"


def test_each_refused_commit_says_why_and_the_command_exits_1(cli: Cli, signed: Signed) -> None:
    base = signed.remote.head()
    unsigned = signed.remote.commit({"vms/web.yaml": "kind: Y\n"}, "unsigned")
    stranger = signed.remote.commit({STATUS_FILE: "x: 1\n"}, "s", signed.stranger.config)
    operator = signed.remote.commit({STATUS_FILE: "x: 2\n"}, "s", signed.operator.config)
    host = signed.remote.commit({"vms/web.yaml": "kind: Z\n"}, "h", signed.host.config)

    code, rows, last = signed.verify(cli, f"{base}..HEAD")

    assert code == 1
    assert [row[:2] for row in rows] == [
        [unsigned[:12], "unsigned"],
        [stranger[:12], "unknown key"],
        [operator[:12], "needs host key"],
        [host[:12], "needs allowed signer"],
    ]
    assert rows[1][2].startswith("SHA256:")  # an unknown key is named by its fingerprint
    assert last == "4 of 4 commit(s) would not be applied"


def test_a_merge_needs_an_allowed_signer_whatever_it_touched(cli: Cli, signed: Signed) -> None:
    author = signed.remote.author
    git(author, "checkout", "--quiet", "-b", "side")
    (author / "status" / "nodes").mkdir(parents=True)
    (author / STATUS_FILE).write_text("x: 1\n", encoding="utf-8")
    git(author, "add", "-A")
    git(author, *signed.host.config, "commit", "--quiet", "-m", "status")
    git(author, "checkout", "--quiet", "main")
    signed.remote.commit({"vms/db.yaml": "kind: X\n"}, "db", signed.operator.config)
    git(author, *signed.host.config, "merge", "--quiet", "--no-edit", "side")
    merge = git(author, "rev-parse", "HEAD")

    code, rows, _last = signed.verify(cli, "HEAD^!")

    assert code == 1
    assert rows == [[merge[:12], "needs allowed signer", "hv-a", f"merge: {STATUS_FILE}"]]


def test_a_range_longer_than_max_commits_is_a_usage_error(cli: Cli, signed: Signed) -> None:
    signed.remote.commit({"vms/db.yaml": "kind: X\n"}, "db", signed.operator.config)

    run = cli(
        "verify",
        "--dir",
        signed.remote.author,
        "--allowed-signers",
        signed.allowed,
        "--max-commits",
        "1",
    )

    assert run.code == 2
    assert "2 commits in HEAD, more than 1 (--max-commits)" in run.err


def test_without_any_signers_the_command_is_a_usage_error(cli: Cli, signed: Signed) -> None:
    run = cli("verify", "--dir", signed.remote.author)

    assert run.code == 2
    assert "--allowed-signers or --gpg-keyring" in run.err


def test_an_unknown_revision_is_a_usage_error_with_gits_reason(cli: Cli, signed: Signed) -> None:
    run = cli(
        "verify", "--dir", signed.remote.author, "--allowed-signers", signed.allowed, "nope..HEAD"
    )

    assert run.code == 2
    assert "nope" in run.err


def test_the_signers_come_from_the_hosts_configuration(
    cli: Cli, signed: Signed, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "repository:\n"
        "  url: /nowhere\n"
        "  verify:\n"
        f"    allowedSigners: {signed.allowed}\n"
        f"    hostSigners: {signed.hosts}\n",
        encoding="utf-8",
    )

    run = cli("verify", "--dir", signed.remote.author, "--config", config)

    assert run.code == 0
    assert "operator@example.com" in run.out


@pytest.fixture
def pgp(tmp_path: Path) -> Iterator[PgpKey]:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (make deps installs it)")
    key = PgpKey.create(tmp_path / "pgp", "pgp@example.com")
    yield key
    key.close()


def test_an_openpgp_signature_by_a_key_of_the_keyring_is_ok(
    cli: Cli, signed: Signed, pgp: PgpKey
) -> None:
    signed_by_pgp = signed.remote.commit({"vms/db.yaml": "kind: X\n"}, "db", pgp.config)

    run = cli("verify", "--dir", signed.remote.author, "--gpg-keyring", pgp.exported, "HEAD^!")
    without = cli(
        "verify", "--dir", signed.remote.author, "--allowed-signers", signed.allowed, "HEAD^!"
    )

    assert run.code == 0
    assert signed_by_pgp[:12] in run.out and "Operator <pgp@example.com>" in run.out
    assert without.code == 1 and "unknown key" in without.out
