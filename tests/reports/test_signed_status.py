"""A host signs its status commits with its own SSH key (repository.signingKeyFile), so that
hosts verifying history accept them; without a key its commits stay unsigned."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.reports.publish import PublishError, StatusPublisher
from tests.gitrepos import Remote, git
from tests.reports.test_publish import node_file
from tests.signing import SigningKey, allowed_signers


def signature(remote: Remote, signers: Path) -> str:
    """git's verdict on the head and who signed it, as `G hv1`."""
    return git(
        remote.path,
        "-c",
        f"gpg.ssh.allowedSignersFile={signers}",
        "log",
        "-1",
        "--format=%G? %GS",
        remote.branch,
    )


def test_a_status_commit_is_signed_with_the_hosts_key(remote: Remote, tmp_path: Path) -> None:
    key = SigningKey.create(tmp_path / "keys", "hv1")
    hosts = allowed_signers(tmp_path / "host_signers", key)
    publisher = StatusPublisher(
        remote.url, "main", "status", "hv1", tmp_path / "work", signing_key=key.path
    )

    result = publisher.publish(node_file("hv1", "up: true\n"), "1 VM")

    assert result.committed
    assert signature(remote, hosts) == "G hv1"


def test_without_a_signing_key_a_status_commit_is_unsigned(remote: Remote, tmp_path: Path) -> None:
    hosts = allowed_signers(tmp_path / "host_signers", SigningKey.create(tmp_path / "k", "hv1"))
    publisher = StatusPublisher(remote.url, "main", "status", "hv1", tmp_path / "work")

    publisher.publish(node_file("hv1", "up: true\n"), "1 VM")

    assert signature(remote, hosts) == "N"


def test_an_unreadable_signing_key_fails_the_publish_with_the_reason(
    remote: Remote, tmp_path: Path
) -> None:
    publisher = StatusPublisher(
        remote.url, "main", "status", "hv1", tmp_path / "work", signing_key=tmp_path / "missing"
    )

    with pytest.raises(PublishError, match="sign") as failed:
        publisher.publish(node_file("hv1", "up: true\n"), "1 VM")

    assert str(tmp_path / "missing") in str(failed.value)
    assert remote.status_commits() == []
