"""resolve_provisioning: a VM's provisioning read from manifests, and what it refuses."""

from __future__ import annotations

import base64
import json
import textwrap
import traceback

import pytest

from reconciler.api import VirtualMachine
from reconciler.loader import load_text
from reconciler.model.errors import NotReady
from reconciler.provisioning import ProvisioningKind, ProvisioningPayload, resolve_provisioning
from reconciler.rules.inventory import Inventory

# Recognisable, so that a leak into any message or repr is found by a plain search.
SECRET = "s3cr3t-value-9f2a"
CLOUD_INIT = "provisioning.virtualization.deckhouse.io/cloud-init"
SYSPREP = "provisioning.virtualization.deckhouse.io/sysprep"


def vm_manifest(provisioning: str | None, namespace: str = "prod") -> str:
    text = textwrap.dedent(
        f"""\
        apiVersion: virtualization.deckhouse.io/v1alpha2
        kind: VirtualMachine
        metadata:
          name: web
          namespace: {namespace}
        spec:
          virtualMachineClassName: generic
          cpu:
            cores: 1
          memory:
            size: 1Gi
          blockDeviceRefs:
            - kind: VirtualDisk
              name: web-root
        """
    )
    if provisioning is not None:
        text += "  provisioning:\n" + textwrap.indent(textwrap.dedent(provisioning), "    ")
    return text


def secret_manifest(
    name: str,
    secret_type: str,
    *,
    data: dict[str, str] | None = None,
    string_data: dict[str, str] | None = None,
    namespace: str = "prod",
) -> str:
    """A Secret; `data` values are given in clear and written base64-encoded."""
    lines = [
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {namespace}",
        f"type: {secret_type}",
    ]
    if data:
        lines.append("data:")
        lines += [f"  {k}: {base64.b64encode(v.encode()).decode()}" for k, v in data.items()]
    if string_data:
        lines.append("stringData:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in string_data.items()]
    return "\n".join(lines) + "\n"


def resolve(*documents: str) -> ProvisioningPayload | None:
    """Loads the documents as one revision and resolves the VM named `web`'s provisioning."""
    result = load_text("---\n".join(documents), "manifests.yaml")
    inventory = Inventory(result)
    vms = [model for _, model in inventory.of_kind(VirtualMachine)]
    assert len(vms) == 1, result.findings
    return resolve_provisioning(vms[0], inventory)


def not_ready(*documents: str) -> NotReady:
    with pytest.raises(NotReady) as caught:
        resolve(*documents)
    assert caught.value.condition == "ProvisioningReady"
    assert caught.value.reason == "ProvisioningNotReady"
    return caught.value


def user_data_ref(name: str = "web-init") -> str:
    return f"type: UserDataRef\nuserDataRef:\n  kind: Secret\n  name: {name}\n"


def sysprep_ref(name: str = "web-unattend") -> str:
    return f"type: SysprepRef\nsysprepRef:\n  kind: Secret\n  name: {name}\n"


def everything_shown(error: BaseException) -> str:
    """Every way an error reaches a log: str, repr, args and the formatted traceback."""
    return "\n".join(
        [str(error), repr(error), repr(error.args), *traceback.format_exception(error)]
    )


# --- no provisioning, inline userData


def test_vm_without_provisioning_has_no_payload() -> None:
    assert resolve(vm_manifest(None)) is None


def test_inline_user_data_becomes_the_user_data_file() -> None:
    payload = resolve(
        vm_manifest("type: UserData\nuserData: |\n  #cloud-config\n  hostname: web\n")
    )

    assert payload is not None
    assert payload.kind is ProvisioningKind.CLOUD_INIT
    assert payload.content("user-data") == b"#cloud-config\nhostname: web\n"
    assert [f.name for f in payload.files] == ["user-data"]


def test_inline_user_data_of_exactly_2048_bytes_is_accepted() -> None:
    body = "#" * 2047  # plus the newline of the block scalar: 2048 bytes
    payload = resolve(vm_manifest(f"type: UserData\nuserData: |\n  {body}\n"))

    assert payload is not None
    assert len(payload.content("user-data") or b"") == 2048


def test_inline_user_data_over_the_limit_is_not_ready_naming_size_and_limit() -> None:
    body = SECRET * 130  # 2,211 bytes with the newline
    error = not_ready(vm_manifest(f"type: UserData\nuserData: |\n  {body}\n"))

    assert "2211 bytes" in str(error)
    assert "2048-byte limit" in str(error)
    assert "userDataRef" in str(error)
    assert SECRET not in everything_shown(error)


def test_inline_user_data_limit_counts_bytes_not_characters() -> None:
    # 1,100 two-byte characters: 1,101 characters, which the CRD's CEL rule would pass.
    error = not_ready(vm_manifest(f"type: UserData\nuserData: |\n  {'é' * 1100}\n"))

    assert "2201 bytes" in str(error)


# --- userDataRef


def test_user_data_ref_reads_the_base64_user_data_of_the_secret() -> None:
    payload = resolve(
        vm_manifest(user_data_ref()),
        secret_manifest("web-init", CLOUD_INIT, data={"userData": f"#cloud-config\n# {SECRET}\n"}),
    )

    assert payload is not None
    assert payload.kind is ProvisioningKind.CLOUD_INIT
    assert payload.content("user-data") == f"#cloud-config\n# {SECRET}\n".encode()
    assert payload.source == "Secret web-init"


def test_user_data_ref_reads_string_data() -> None:
    payload = resolve(
        vm_manifest(user_data_ref()),
        secret_manifest("web-init", CLOUD_INIT, string_data={"userData": "#cloud-config\n"}),
    )

    assert payload is not None
    assert payload.content("user-data") == b"#cloud-config\n"


def test_user_data_ref_accepts_the_lower_case_userdata_key() -> None:
    payload = resolve(
        vm_manifest(user_data_ref()),
        secret_manifest("web-init", CLOUD_INIT, data={"userdata": "#cloud-config\n"}),
    )

    assert payload is not None
    assert payload.content("user-data") == b"#cloud-config\n"


def test_user_data_ref_to_a_missing_secret_is_not_ready_naming_it() -> None:
    error = not_ready(vm_manifest(user_data_ref("web-init")))

    assert "Secret web-init in namespace prod" in str(error)
    assert "does not exist" in str(error)


def test_secret_of_another_namespace_is_not_found() -> None:
    error = not_ready(
        vm_manifest(user_data_ref()),
        secret_manifest("web-init", CLOUD_INIT, data={"userData": SECRET}, namespace="staging"),
    )

    assert "Secret web-init in namespace prod" in str(error)
    assert "does not exist" in str(error)


def test_secret_that_failed_to_load_is_not_ready_as_invalid() -> None:
    broken = secret_manifest("web-init", CLOUD_INIT).replace(
        "type:", f"data:\n  userData: '{SECRET}!'\ntype:"
    )
    error = not_ready(vm_manifest(user_data_ref()), broken)

    assert "Secret web-init in namespace prod" in str(error)
    assert "is invalid" in str(error)
    assert SECRET not in everything_shown(error)


def test_secret_of_the_wrong_type_is_not_ready_naming_both_types() -> None:
    error = not_ready(
        vm_manifest(user_data_ref()),
        secret_manifest("web-init", "Opaque", data={"userData": SECRET}),
    )

    assert "Secret web-init in namespace prod" in str(error)
    assert "unexpected type 'Opaque'" in str(error)
    assert CLOUD_INIT in str(error)


def test_cloud_init_secret_without_user_data_key_is_not_ready_listing_its_keys() -> None:
    error = not_ready(
        vm_manifest(user_data_ref()),
        secret_manifest("web-init", CLOUD_INIT, data={"user-data": SECRET}),
    )

    assert "Secret web-init in namespace prod has no userData or userdata key" in str(error)
    assert "its keys: user-data" in str(error)


# --- sysprepRef


def test_sysprep_secret_gives_both_answer_files_under_their_names() -> None:
    payload = resolve(
        vm_manifest(sysprep_ref()),
        secret_manifest(
            "web-unattend",
            SYSPREP,
            data={"autounattend.xml": "<unattend>setup</unattend>", "unattend.xml": "<u/>"},
        ),
    )

    assert payload is not None
    assert payload.kind is ProvisioningKind.SYSPREP
    assert payload.content("autounattend.xml") == b"<unattend>setup</unattend>"
    assert payload.content("unattend.xml") == b"<u/>"


def test_sysprep_secret_with_unattend_only_gives_that_file() -> None:
    payload = resolve(
        vm_manifest(sysprep_ref()),
        secret_manifest("web-unattend", SYSPREP, string_data={"unattend.xml": "<u/>"}),
    )

    assert payload is not None
    assert [f.name for f in payload.files] == ["unattend.xml"]


def test_sysprep_secret_without_answer_file_is_not_ready() -> None:
    error = not_ready(
        vm_manifest(sysprep_ref()),
        secret_manifest("web-unattend", SYSPREP, data={"answer.xml": SECRET}),
    )

    assert "Secret web-unattend in namespace prod" in str(error)
    assert "has no unattend.xml or autounattend.xml key" in str(error)
    assert "its keys: answer.xml" in str(error)


def test_sysprep_ref_to_a_cloud_init_secret_is_the_wrong_type() -> None:
    error = not_ready(
        vm_manifest(sysprep_ref("web-init")),
        secret_manifest("web-init", CLOUD_INIT, data={"unattend.xml": SECRET}),
    )

    assert "unexpected type" in str(error)
    assert SYSPREP in str(error)


# --- the digest, and where secret content must never appear


def test_digest_is_stable_and_follows_the_content() -> None:
    def digest(user_data: str) -> str:
        payload = resolve(
            vm_manifest(user_data_ref()),
            secret_manifest("web-init", CLOUD_INIT, data={"userData": user_data}),
        )
        assert payload is not None
        return payload.digest

    assert digest("#cloud-config\n") == digest("#cloud-config\n")
    assert digest("#cloud-config\n") != digest("#cloud-config\nhostname: x\n")
    assert len(digest("#cloud-config\n")) == 16


@pytest.mark.parametrize(
    "documents",
    [
        pytest.param(
            [
                vm_manifest(user_data_ref()),
                secret_manifest("web-init", CLOUD_INIT, data={"userData": SECRET}),
            ],
            id="userDataRef data",
        ),
        pytest.param(
            [
                vm_manifest(user_data_ref()),
                secret_manifest("web-init", CLOUD_INIT, string_data={"userdata": SECRET}),
            ],
            id="userDataRef stringData",
        ),
        pytest.param(
            [
                vm_manifest(sysprep_ref()),
                secret_manifest("web-unattend", SYSPREP, data={"unattend.xml": SECRET}),
            ],
            id="sysprepRef",
        ),
        pytest.param([vm_manifest(f"type: UserData\nuserData: {SECRET}\n")], id="inline"),
    ],
)
def test_payload_repr_and_str_never_show_the_content(documents: list[str]) -> None:
    payload = resolve(*documents)

    assert payload is not None
    assert any(f.content == SECRET.encode() for f in payload.files)
    for shown in (repr(payload), str(payload), f"{payload}", repr(payload.files)):
        assert SECRET not in shown
        assert base64.b64encode(SECRET.encode()).decode() not in shown
    assert payload.digest in repr(payload)


@pytest.mark.parametrize(
    "documents",
    [
        pytest.param(
            [
                vm_manifest(user_data_ref()),
                secret_manifest("web-init", "Opaque", data={"userData": SECRET}),
            ],
            id="wrong type",
        ),
        pytest.param(
            [
                vm_manifest(user_data_ref()),
                secret_manifest("web-init", CLOUD_INIT, data={"cloud-config": SECRET}),
            ],
            id="no userData key",
        ),
        pytest.param(
            [
                vm_manifest(sysprep_ref()),
                secret_manifest("web-unattend", SYSPREP, string_data={"answer.xml": SECRET}),
            ],
            id="no answer file",
        ),
        pytest.param(
            [
                vm_manifest(sysprep_ref("web-init")),
                secret_manifest("web-init", CLOUD_INIT, data={"unattend.xml": SECRET}),
            ],
            id="sysprep wrong type",
        ),
        pytest.param(
            [vm_manifest(f"type: UserData\nuserData: {SECRET * 200}\n")],
            id="inline too large",
        ),
    ],
)
def test_errors_never_show_the_secret_content(documents: list[str]) -> None:
    error = not_ready(*documents)

    shown = everything_shown(error)
    assert SECRET not in shown
    assert base64.b64encode(SECRET.encode()).decode() not in shown
