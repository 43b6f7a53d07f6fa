"""repository.verify: the source checks out only history that git verifies as signed by the
right people, with real SSH signatures (ssh-keygen through git) and real repositories."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.source import UnverifiedHistory, open_source
from reconciler.source.git_source import GitSource
from tests.gitrepos import Remote, git
from tests.hosts import vm_yaml
from tests.signing import PgpKey, SigningKey, allowed_signers
from tests.source.conftest import VM_CLASS, repository

MANIFESTS = {"classes/generic.yaml": VM_CLASS, "vms/web.yaml": vm_yaml("web")}
STATUS_FILE = "status/virtualmachines/default/web.yaml"


@dataclass(frozen=True)
class Keys:
    operator: SigningKey
    host: SigningKey
    stranger: SigningKey
    allowed: Path
    hosts: Path


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    operator = SigningKey.create(tmp_path / "keys", "operator@example.com")
    host = SigningKey.create(tmp_path / "keys", "hv-a")
    stranger = SigningKey.create(tmp_path / "keys", "stranger@example.com")
    return Keys(
        operator,
        host,
        stranger,
        allowed_signers(tmp_path / "trust" / "allowed_signers", operator),
        allowed_signers(tmp_path / "trust" / "host_signers", host),
    )


def verifying(remote: Remote, cache_dir: Path, keys: Keys, **verify: object) -> GitSource:
    settings = {"allowedSigners": str(keys.allowed), "hostSigners": str(keys.hosts), **verify}
    source = open_source(repository(remote.url, verify=settings), cache_dir, "status")
    assert isinstance(source, GitSource)
    return source


@pytest.fixture
def signed(remote: Remote, keys: Keys) -> str:
    """Signed history: the class and a VM, committed by the operator with their key."""
    return remote.commit(MANIFESTS, "signed manifests", keys.operator.config)


def test_signed_history_is_applied(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    revision = verifying(remote, cache_dir, keys).update()

    assert revision.sha == signed
    assert revision.unverified == ""


def test_an_unsigned_manifest_commit_is_not_applied_and_the_verified_revision_stays(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    source = verifying(remote, cache_dir, keys)
    source.update()

    unsigned = remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)}, "unsigned")
    revision = source.update()

    assert revision.sha == signed
    assert (revision.root / "vms" / "web.yaml").read_text() == vm_yaml("web")
    assert revision.unverified.startswith(f"commit {unsigned[:12]} (unsigned) changes vms/web.yaml")
    assert "needs an allowed signer" in revision.unverified


def test_signing_the_refused_commit_applies_the_head(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    source = verifying(remote, cache_dir, keys)
    source.update()
    remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)}, "unsigned")
    source.update()

    git(remote.author, *keys.operator.config, "commit", "--quiet", "--amend", "--no-edit")
    git(remote.author, "push", "--quiet", "--force", "origin", "HEAD:main")
    revision = source.update()

    assert revision.sha == git(remote.author, "rev-parse", "HEAD")
    assert revision.unverified == ""
    assert (revision.root / "vms" / "web.yaml").read_text() == vm_yaml("web", cores=2)


def test_a_signed_revert_of_the_refused_commit_applies_the_head(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    source = verifying(remote, cache_dir, keys)
    source.update()
    remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)}, "unsigned")
    source.update()

    reverted = remote.commit({"vms/web.yaml": vm_yaml("web")}, "revert", keys.operator.config)
    revision = source.update()

    assert revision.head == reverted
    assert revision.unverified == ""


def test_a_signed_commit_on_top_does_not_vouch_for_an_unsigned_change_it_kept(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    source = verifying(remote, cache_dir, keys)
    source.update()
    unsigned = remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)}, "unsigned")

    remote.commit({"vms/db.yaml": vm_yaml("db")}, "signed, on top", keys.operator.config)
    revision = source.update()

    assert revision.sha == signed
    assert revision.unverified.startswith(f"commit {unsigned[:12]} (unsigned)")


def test_a_status_commit_signed_by_a_host_key_is_accepted(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    source = verifying(remote, cache_dir, keys)
    source.update()

    status = remote.commit({STATUS_FILE: "status: {}\n"}, "status(hv-a)", keys.host.config)
    revision = source.update()

    assert (revision.head, revision.sha) == (status, signed)
    assert revision.unverified == ""


def test_the_same_status_commit_signed_by_an_unknown_key_is_refused(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    source = verifying(remote, cache_dir, keys)
    source.update()

    status = remote.commit({STATUS_FILE: "status: {}\n"}, "status(hv-a)", keys.stranger.config)
    revision = source.update()

    assert revision.head == signed
    assert revision.unverified.startswith(f"commit {status[:12]} (unknown key")
    assert "needs a host key" in revision.unverified


def test_a_status_commit_signed_by_an_operator_needs_a_host_key(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    source = verifying(remote, cache_dir, keys)
    source.update()

    remote.commit({STATUS_FILE: "status: {}\n"}, "edited report", keys.operator.config)
    revision = source.update()

    assert "(needs host key by operator@example.com)" in revision.unverified


def test_a_manifest_commit_signed_by_a_host_key_needs_an_allowed_signer(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    source = verifying(remote, cache_dir, keys)
    source.update()

    remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)}, "host", keys.host.config)
    revision = source.update()

    assert revision.sha == signed
    assert "(needs allowed signer by hv-a)" in revision.unverified


def test_a_force_push_to_an_unsigned_head_is_refused_until_an_allowed_signer_signs_it(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    source = verifying(remote, cache_dir, keys)
    source.update()
    git(remote.author, "commit", "--quiet", "--amend", "-m", "rewritten", "--no-gpg-sign")
    git(remote.author, "push", "--quiet", "--force", "origin", "HEAD:main")

    refused = source.update()
    git(remote.author, *keys.operator.config, "commit", "--quiet", "--amend", "--no-edit")
    git(remote.author, "push", "--quiet", "--force", "origin", "HEAD:main")
    anchored = source.update()

    assert refused.head == signed
    assert "no longer contains the last verified revision" in refused.unverified
    assert "(unsigned)" in refused.unverified
    assert anchored.head == git(remote.author, "rev-parse", "HEAD") != signed
    assert anchored.unverified == ""


def test_the_last_verified_revision_outlives_a_restart(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    verifying(remote, cache_dir, keys).update()
    unsigned = remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)}, "unsigned")

    revision = verifying(remote, cache_dir, keys).update()

    assert revision.sha == signed
    assert revision.unverified.startswith(f"commit {unsigned[:12]} (unsigned)")


def test_on_first_start_an_unsigned_head_leaves_nothing_to_serve(
    remote: Remote, cache_dir: Path, keys: Keys
) -> None:
    remote.commit(MANIFESTS, "unsigned")

    with pytest.raises(UnverifiedHistory, match=r"first verification.*\(unsigned\)"):
        verifying(remote, cache_dir, keys).update()


def test_on_first_start_history_before_the_newest_signed_manifest_commit_is_trusted(
    remote: Remote, cache_dir: Path, keys: Keys
) -> None:
    remote.commit(MANIFESTS, "unsigned, long ago")
    remote.commit({"vms/db.yaml": vm_yaml("db")}, "signed", keys.operator.config)
    status = remote.commit({STATUS_FILE: "status: {}\n"}, "status(hv-a)", keys.host.config)

    revision = verifying(remote, cache_dir, keys).update()

    assert revision.head == status
    assert revision.unverified == ""


def test_a_range_longer_than_max_commits_is_refused_with_the_count(
    remote: Remote, cache_dir: Path, keys: Keys, signed: str
) -> None:
    source = verifying(remote, cache_dir, keys, maxCommits=2)
    source.update()
    for cores in (2, 4, 6):
        remote.commit({"vms/web.yaml": vm_yaml("web", cores=cores)}, "signed", keys.operator.config)

    revision = source.update()

    assert revision.sha == signed
    assert revision.unverified.startswith("3 commits since the last verified revision")
    assert "maxCommits (2)" in revision.unverified


@pytest.fixture
def pgp(tmp_path: Path) -> Iterator[PgpKey]:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (make deps installs it)")
    key = PgpKey.create(tmp_path / "pgp", "pgp@example.com")
    yield key
    key.close()


def test_an_unreadable_keyring_refuses_the_head_with_gpgs_reason(
    remote: Remote, cache_dir: Path, keys: Keys, pgp: PgpKey, tmp_path: Path
) -> None:
    signed = remote.commit(MANIFESTS, "signed", keys.operator.config)
    keyring = tmp_path / "trust" / "keyring.asc"
    keyring.write_text("not a key\n", encoding="utf-8")
    source = verifying(remote, cache_dir, keys)
    source.update()

    later = remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)}, "s", keys.operator.config)
    revision = verifying(remote, cache_dir, keys, gpgKeyring=str(keyring)).update()

    assert later != signed
    assert revision.head == signed
    assert revision.unverified == (
        f"cannot verify {later[:12]}: gpgKeyring {keyring}: gpg cannot import it:"
        " gpg: no valid OpenPGP data found."
    )


def test_an_openpgp_signature_by_a_key_of_the_keyring_is_applied(
    remote: Remote, cache_dir: Path, keys: Keys, pgp: PgpKey
) -> None:
    head = remote.commit(MANIFESTS, "signed with gpg", pgp.config)

    revision = verifying(remote, cache_dir, keys, gpgKeyring=str(pgp.exported)).update()

    assert revision.head == head
    assert revision.unverified == ""


def test_a_key_rotated_out_of_the_keyring_no_longer_signs_for_anyone(
    remote: Remote, cache_dir: Path, keys: Keys, pgp: PgpKey, tmp_path: Path
) -> None:
    remote.commit(MANIFESTS, "signed with gpg", pgp.config)
    keyring = tmp_path / "trust" / "keyring.asc"
    shutil.copy(pgp.exported, keyring)
    source = verifying(remote, cache_dir, keys, gpgKeyring=str(keyring))
    signed = source.update().head

    successor = PgpKey.create(tmp_path / "pgp-2", "successor@example.com")
    try:
        shutil.copy(successor.exported, keyring)  # the team rotated the old key out
    finally:
        successor.close()
    later = remote.commit({"vms/web.yaml": vm_yaml("web", cores=2)}, "old key", pgp.config)
    revision = source.update()

    assert revision.head == signed
    assert revision.unverified.startswith(f"commit {later[:12]} (unknown key")
