"""The host decrypts the SOPS-encrypted Secrets its VMs are provisioned from, with the
real `sops` and its age key, in memory; a Secret it cannot decrypt is refused with the
reason its VMs report, naming the Secret's recipients and never any of its content."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.api import ObjectId, Secret
from reconciler.loader import load_text
from reconciler.model.conditions import VMReason
from reconciler.model.secrets import SecretRefusal
from reconciler.source.secrets import SecretOpener
from tests.agekeys import AgeKey, cloud_init_secret, encrypt, sops, user_data_ref
from tests.hosts import vm_yaml

MARKER = "plaintext-marker-b7e2"
USER_DATA = f"#cloud-config\npassword: {MARKER}\n"
WEB_SECRET = ObjectId("Secret", "default", "web-cloud-init")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AgeKey]:
    directory = tmp_path_factory.mktemp("keys")
    return {name: AgeKey.create(directory, name) for name in ("hv1", "hv2", "stranger")}


@pytest.fixture(scope="module")
def encrypted(keys: dict[str, AgeKey]) -> str:
    """The web VM's Secret, for hosts hv1 and hv2."""
    secret = cloud_init_secret("web-cloud-init", USER_DATA)
    return encrypt(secret, keys["hv1"].recipient, keys["hv2"].recipient)


def revision(*documents: str) -> str:
    return "\n---\n".join(documents)


def web(secret: str) -> str:
    return revision(user_data_ref(vm_yaml("web"), "web-cloud-init"), secret)


def refusal(opener: SecretOpener, text: str) -> SecretRefusal:
    opened = opener.open(load_text(text, "all.yaml"))
    assert WEB_SECRET not in opened.opened
    return opened.refused[WEB_SECRET]


def test_the_host_key_decrypts_the_secret_in_memory(
    keys: dict[str, AgeKey], encrypted: str
) -> None:
    opened = SecretOpener(keys["hv2"].path).open(load_text(web(encrypted), "all.yaml"))

    secret = opened.opened[WEB_SECRET]
    assert isinstance(secret, Secret) and secret.sops is None
    assert secret.value("userData") == USER_DATA.encode()
    assert not opened.refused
    assert MARKER not in repr(opened)


def test_a_secret_after_other_documents_of_its_file_decrypts(
    keys: dict[str, AgeKey], encrypted: str
) -> None:
    # the Secret is the fourth document of the file (vm_yaml is a VM and its disk)
    text = revision(vm_yaml("db"), user_data_ref(vm_yaml("web"), "web-cloud-init"), encrypted)

    opened = SecretOpener(keys["hv1"].path).open(load_text(text, "all.yaml"))

    assert opened.opened[WEB_SECRET].value("userData") == USER_DATA.encode()


def test_a_key_that_is_no_recipient_is_refused_naming_the_recipients(
    keys: dict[str, AgeKey], encrypted: str
) -> None:
    refused = refusal(SecretOpener(keys["stranger"].path), web(encrypted))

    assert refused.reason is VMReason.SECRET_NOT_DECRYPTED
    assert "Secret web-cloud-init in namespace default cannot be decrypted" in refused.message
    assert keys["hv1"].recipient in refused.message and keys["hv2"].recipient in refused.message
    assert keys["stranger"].recipient not in refused.message  # the key file is not read
    assert "sops updatekeys" in refused.message
    assert MARKER not in refused.message


def test_a_missing_key_file_is_refused_saying_which_file(
    keys: dict[str, AgeKey], encrypted: str, tmp_path: Path
) -> None:
    missing = tmp_path / "age.key"

    refused = refusal(SecretOpener(missing), web(encrypted))

    assert refused.reason is VMReason.SECRET_NOT_DECRYPTED
    assert f"the age key file {missing} does not exist" in refused.message
    assert keys["hv1"].recipient in refused.message


def test_a_host_without_a_key_file_says_so(encrypted: str) -> None:
    refused = refusal(SecretOpener(None), web(encrypted))

    assert "this host has no age key file (ageKeyFile)" in refused.message


def test_a_value_changed_after_encryption_fails_the_mac(
    keys: dict[str, AgeKey], encrypted: str
) -> None:
    # another encrypted value in place of the real one: well-formed, but not what sops
    # encrypted with this data key and MAC
    start = encrypted.index("userData: ENC[") + len("userData: ")
    end = encrypted.index("\n", start)
    other = encrypt(cloud_init_secret("web-cloud-init", "#cloud-config\n"), keys["hv1"].recipient)
    other_start = other.index("userData: ENC[") + len("userData: ")
    forged = encrypted[:start] + other[other_start : other.index("\n", other_start)]
    forged += encrypted[end:]

    refused = refusal(SecretOpener(keys["hv1"].path), web(forged))

    assert refused.reason is VMReason.SECRET_NOT_DECRYPTED
    assert "cannot be decrypted" in refused.message


def test_a_replaced_key_file_is_used_from_the_next_pass(
    keys: dict[str, AgeKey], encrypted: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "age.key"
    key_file.write_bytes(keys["stranger"].path.read_bytes())
    opener = SecretOpener(key_file)
    assert refusal(opener, web(encrypted)).reason is VMReason.SECRET_NOT_DECRYPTED

    key_file.write_bytes(keys["hv1"].path.read_bytes())
    os.utime(key_file, ns=(0, 1))  # a different file, whatever the clock's resolution
    opened = opener.open(load_text(web(encrypted), "all.yaml"))

    assert opened.opened[WEB_SECRET].value("userData") == USER_DATA.encode()


def test_a_secret_no_vm_uses_is_not_decrypted(keys: dict[str, AgeKey], encrypted: str) -> None:
    opened = SecretOpener(keys["stranger"].path).open(load_text(encrypted, "secret.yaml"))

    assert not opened.opened and not opened.refused


def test_required_encryption_refuses_a_secret_in_the_clear() -> None:
    text = web(cloud_init_secret("web-cloud-init", USER_DATA))

    assert not SecretOpener(None).open(load_text(text, "all.yaml")).refused
    refused = refusal(SecretOpener(None, require_encrypted=True), text)

    assert refused.reason is VMReason.SECRET_NOT_ENCRYPTED
    assert "requireEncryptedSecrets" in refused.message and MARKER not in refused.message


def sops_config(repo: Path, *keys: AgeKey) -> None:
    """The repository's .sops.yaml, as docs/install.md §9 writes it."""
    recipients = ",\n      ".join(key.recipient for key in keys)
    (repo / ".sops.yaml").write_text(
        "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n"
        f"    encrypted_regex: ^(data|stringData)$\n    age: >-\n      {recipients}\n",
        encoding="utf-8",
    )


def test_a_team_adds_a_host_and_retires_another_as_the_install_guide_says(
    keys: dict[str, AgeKey], tmp_path: Path
) -> None:
    # given a repository whose Secret hv1 and an operator can open, by .sops.yaml
    ops = AgeKey.create(tmp_path / "keys", "ops")
    repo = tmp_path / "repo"
    (repo / "secrets").mkdir(parents=True)
    secret_file = repo / "secrets" / "web.yaml"
    secret_file.write_text(cloud_init_secret("web-cloud-init", USER_DATA), encoding="utf-8")
    sops_config(repo, keys["hv1"], ops)
    sops("--encrypt", "--in-place", "secrets/web.yaml", cwd=repo)
    hv1, hv2 = SecretOpener(keys["hv1"].path), SecretOpener(keys["hv2"].path)

    def opened_by(opener: SecretOpener) -> bool:
        text = web(secret_file.read_text(encoding="utf-8"))
        secret = opener.open(load_text(text, "all.yaml")).opened.get(WEB_SECRET)
        return secret is not None and secret.value("userData") == USER_DATA.encode()

    assert opened_by(hv1) and not opened_by(hv2)
    # when the operator adds hv2 to .sops.yaml and updates the Secret's keys
    sops_config(repo, keys["hv1"], keys["hv2"], ops)
    sops("updatekeys", "-y", "secrets/web.yaml", cwd=repo, key=ops)
    assert opened_by(hv1) and opened_by(hv2)
    # and retires hv1, with a new data key
    sops_config(repo, keys["hv2"], ops)
    sops("updatekeys", "-y", "secrets/web.yaml", cwd=repo, key=ops)
    sops("rotate", "--in-place", "secrets/web.yaml", cwd=repo, key=ops)
    # then only hv2 opens it, to the same values
    assert not opened_by(hv1) and opened_by(hv2)


def test_a_secret_naming_a_network_key_service_is_not_handed_to_sops(
    keys: dict[str, AgeKey], encrypted: str
) -> None:
    # a writer adds a Vault beside the age recipients: sops would contact it, and whatever
    # the address, when the host's age key did not open the file
    vault = (
        "sops:\n    hc_vault:\n        - vault_address: http://127.0.0.1:9\n"
        "          engine_path: sops\n          key_name: hosts\n"
        "          created_at: '2026-01-01T00:00:00Z'\n          enc: vault:v1:abc\n"
    )
    text = web(encrypted.replace("sops:\n", vault, 1))

    refused = refusal(SecretOpener(keys["stranger"].path), text)

    assert refused.reason is VMReason.SECRET_NOT_DECRYPTED
    assert "key services besides age (hc_vault)" in refused.message


def test_the_same_revision_again_is_not_decrypted_again(
    keys: dict[str, AgeKey], encrypted: str
) -> None:
    opener = SecretOpener(keys["hv1"].path)
    first = opener.open(load_text(web(encrypted), "all.yaml")).opened[WEB_SECRET]

    # loaded anew, as the next pass of the same revision: the very same object (the
    # engine's memo of desired domains holds, and no sops runs)
    again = opener.open(load_text(web(encrypted), "all.yaml")).opened[WEB_SECRET]

    assert again is first
