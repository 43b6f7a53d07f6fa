"""A Secret encrypted by the real `sops` with age recipients loads as it is, without a
key: its structure is checked (the sops block, the encrypted values), never decrypted."""

from __future__ import annotations

import pytest

from reconciler.api import Secret
from reconciler.loader import load_text
from tests.agekeys import AgeKey, cloud_init_secret, encrypt

MARKER = "plaintext-marker-4f1c"
USER_DATA = f"#cloud-config\npassword: {MARKER}\n"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[AgeKey, AgeKey]:
    directory = tmp_path_factory.mktemp("keys")
    return AgeKey.create(directory, "hv1"), AgeKey.create(directory, "hv2")


@pytest.fixture(scope="module")
def encrypted(keys: tuple[AgeKey, AgeKey]) -> str:
    return encrypt(cloud_init_secret("web", USER_DATA), *(key.recipient for key in keys))


def test_an_encrypted_secret_loads_with_its_recipients_and_no_value(
    encrypted: str, keys: tuple[AgeKey, AgeKey]
) -> None:
    result = load_text(encrypted, "secret.yaml")

    assert result.findings == []
    (loaded,) = result.objects
    secret = loaded.model
    assert isinstance(secret, Secret) and secret.sops is not None
    assert secret.sops.recipients == tuple(key.recipient for key in keys)
    assert secret.data_keys() == {"userData"}
    assert secret.value("userData") is None
    assert MARKER not in repr(secret)


def test_a_value_in_the_clear_beside_encrypted_ones_is_refused_at_its_line(
    encrypted: str,
) -> None:
    text = encrypted.replace("\ndata:\n", "\ndata:\n    clear: aGVsbG8=\n", 1)

    (finding,) = load_text(text, "secret.yaml").findings

    assert finding.path == "secret.yaml" and finding.object == "Secret/default/web"
    assert finding.line == text.splitlines().index("    clear: aGVsbG8=") + 1
    assert "data.clear: in the clear in a SOPS-encrypted Secret" in finding.message


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("    mac: ENC[", "    mac: XENC["), "sops.mac: mac is not a value sops encrypted"),
        (("        - recipient:", "        - other:"), "sops.age.0.recipient"),
        (("-----BEGIN AGE ENCRYPTED FILE-----", "-----BEGIN PGP MESSAGE-----"), "no age armor"),
        (("    version:", "    versio:"), "missing required field sops.version"),
    ],
)
def test_a_broken_sops_block_is_a_schema_finding_naming_the_field(
    encrypted: str, edit: tuple[str, str], problem: str
) -> None:
    text = encrypted.replace(*edit, 1)

    findings = load_text(text, "secret.yaml").findings

    assert findings and problem in findings[0].message, findings


def test_a_sops_block_without_age_recipients_says_the_host_decrypts_with_age(
    encrypted: str,
) -> None:
    start = encrypted.index("    age:\n")
    end = encrypted.index("    lastmodified:")
    text = encrypted[:start] + encrypted[end:]

    (finding,) = load_text(text, "secret.yaml").findings

    assert "names no age recipient" in finding.message
    assert "--encrypted-regex" in finding.message


def test_the_sops_block_is_refused_on_other_kinds(encrypted: str) -> None:
    sops_block = encrypted[encrypted.index("sops:\n") :]
    text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: plain\n" + sops_block
    vmclass = text.replace(
        "apiVersion: v1\nkind: Secret",
        "apiVersion: virtualization.deckhouse.io/v1alpha2\nkind: VirtualMachineClass",
        1,
    )

    assert load_text(text, "a.yaml").findings == []  # a Secret with no data at all
    findings = load_text(vmclass, "b.yaml").findings
    assert any("unknown field sops" in f.message for f in findings)


def test_a_message_names_a_few_recipients_each_of_a_sensible_length(encrypted: str) -> None:
    # given a sops block a writer filled with recipients, one of them very long
    secret = load_text(encrypted, "secret.yaml").objects[0].model
    assert isinstance(secret, Secret) and secret.sops is not None
    stanza = secret.sops.age[0].model_dump()
    stanzas = [{**stanza, "recipient": f"age1{'x' * (500 if i == 0 else 58)}{i}"} for i in range(9)]
    block = secret.sops.model_copy(update={"age": []}).model_dump() | {"age": stanzas}

    named = type(secret.sops).model_validate(block).named_recipients()

    assert named.endswith(" and 4 more")
    assert len(named) < 5 * 125 + 20
