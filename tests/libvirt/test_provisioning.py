"""Provisioning through whole passes on libvirt's test driver: the seed image in the pool,
attached as a CD-ROM, and a Secret's content nowhere in what the project prints or writes
(issue 6)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import libvirt
import pytest

from reconciler.cli import main
from reconciler.engine.plan import Outcome
from reconciler.libvirt.facts import parse_definition
from reconciler.model.actions import DeleteSeedVolume, EnsureSeedVolume
from tests.hosts import CLASS, Host, host_options, vm_yaml
from tests.libvirt.conftest import HOST_XML

SECRET_VALUE = "s3cr3t-value-9f2a"
USER_DATA = f"#cloud-config\npassword: {SECRET_VALUE}\nchpasswd: {{expire: false}}\n"
SECRET = """
apiVersion: v1
kind: Secret
metadata:
  name: web-cloud-init
  namespace: default
type: provisioning.virtualization.deckhouse.io/cloud-init
data:
  userData: {encoded}
"""


def with_provisioning(text: str, provisioning: str) -> str:
    return text.replace(
        "  virtualMachineClassName: generic",
        "  virtualMachineClassName: generic\n  provisioning:\n" + provisioning,
        1,
    )


def secret_vm(name: str = "web", **spec: object) -> str:
    return with_provisioning(
        vm_yaml(name, **spec),  # type: ignore[arg-type]
        "    type: UserDataRef\n    userDataRef:\n      kind: Secret\n      name: web-cloud-init\n",
    )


def write_secret(host: Host, user_data: str = USER_DATA) -> None:
    encoded = base64.b64encode(user_data.encode()).decode()
    host.write("secret.yaml", SECRET.format(encoded=encoded))


def seed_volumes(host: Host) -> list[str]:
    pool = host.connection.storagePoolLookupByName("default-pool")
    return sorted(v.name() for v in pool.listAllVolumes() if v.name().startswith("cidata-"))


def cdrom_sources(host: Host, name: str = "web.default", live: bool = False) -> list[str]:
    flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
    facts = parse_definition(host.domain(name).XMLDesc(flags)).facts
    return [source for _target, source, device in facts.disks if device == "cdrom"]


def test_a_seed_is_written_once_and_attached_as_a_cdrom(host: Host) -> None:
    write_secret(host)
    host.write("web.yaml", secret_vm())
    result, _ = host.reconcile()
    assert not result.errors
    seeds = [a for a in result.plan.actions if isinstance(a, EnsureSeedVolume)]
    assert len(seeds) == 1
    assert seed_volumes(host) == [seeds[0].volume]
    assert cdrom_sources(host) == [f"default-pool/{seeds[0].volume}"]
    again, mutations = host.reconcile()
    assert mutations == 0
    assert not again.plan.has_changes


def test_a_missing_secret_keeps_the_vm_pending_and_says_which(host: Host) -> None:
    host.write("web.yaml", secret_vm())
    result, _ = host.reconcile()
    status = result.statuses_plan.statuses[next(iter(result.statuses_plan.statuses))]
    ready = status.get("ProvisioningReady")
    assert ready is not None and not ready.status
    assert "web-cloud-init" in ready.message
    assert status.phase == "Pending"
    with pytest.raises(libvirt.libvirtError):
        host.domain("web.default")


def test_changed_user_data_is_a_new_seed_for_the_next_boot_and_the_old_one_goes_after(
    host: Host,
) -> None:
    write_secret(host)
    host.write("web.yaml", secret_vm(approval="Automatic"))
    host.reconcile()
    (first,) = seed_volumes(host)
    write_secret(host, USER_DATA + "runcmd: [true]\n")
    result, _ = host.reconcile()
    assert not result.errors
    (second,) = cdrom_sources(host)
    assert second != f"default-pool/{first}"
    # The running guest booted from the first seed: it stays until that boot ends.
    assert cdrom_sources(host, live=True) == [f"default-pool/{first}"]
    assert first in seed_volumes(host)
    host.domain("web.default").destroy()
    result, _ = host.reconcile()  # started again (run policy) from the new definition
    assert not result.errors
    assert seed_volumes(host) == [second.split("/", 1)[1]]
    assert any(isinstance(a, DeleteSeedVolume) for a in result.plan.actions)


def test_a_deleted_vm_takes_its_seed_but_never_its_disk(host: Host) -> None:
    write_secret(host)
    host.write("web.yaml", secret_vm())
    host.write("db.yaml", vm_yaml("db"))
    host.reconcile()
    host.remove("web.yaml")
    result, _ = host.reconcile()
    assert not result.errors
    assert [p.outcome for p in result.plan.vms if p.object_id.name == "web"] == [Outcome.DELETED]
    assert seed_volumes(host) == []
    pool = host.connection.storagePoolLookupByName("default-pool")
    assert pool.storageVolLookupByName("vd-default-web-root.qcow2")


def test_the_secret_appears_in_no_status_file_log_line_or_plan_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    host = Host(repo, libvirt.open(f"test://{HOST_XML}"))
    repo.mkdir()
    host.write("class.yaml", CLASS)
    write_secret(host)
    host.write("web.yaml", secret_vm())
    # Inline user-data is plain text in Git already (only Secrets are secret): beside one.
    inline = with_provisioning(
        vm_yaml("inline"),
        "    type: UserData\n    userData: |\n      #cloud-config\n      hostname: inline\n",
    )
    host.write("inline.yaml", inline)
    # A second Secret of the wrong type: its error message must not show it either.
    host.write(
        "wrong.yaml",
        SECRET.format(encoded=base64.b64encode(SECRET_VALUE.encode()).decode())
        .replace("web-cloud-init", "wrong-type")
        .replace("provisioning.virtualization.deckhouse.io/cloud-init", "Opaque"),
    )
    host.write(
        "other.yaml",
        with_provisioning(
            vm_yaml("other"),
            "    type: UserDataRef\n    userDataRef:\n      kind: Secret\n      name: wrong-type\n",
        ),
    )
    caplog.set_level(logging.DEBUG)
    common = [
        *host_options(f"test://{HOST_XML}", "hv1"),
        "--cidr",
        "192.168.122.0/24",
    ]
    outputs = []
    for argv in (
        ["validate", str(repo)],
        ["plan", str(repo), *common],
        ["plan", str(repo), *common, "--format", "json"],
        ["plan", str(repo), *common, "--format", "markdown"],
        ["apply", str(repo), *common, "--status-dir", str(repo / "status")],
        ["get", "vm", "-A", "-o", "yaml", "--dir", str(repo)],
        ["describe", "vm", "web", "--dir", str(repo)],
    ):
        main(argv)
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
    written = [p.read_text(encoding="utf-8") for p in (repo / "status").rglob("*") if p.is_file()]
    assert written, "the apply wrote no reports"
    assert any("web" in text for text in outputs)
    forms = {
        SECRET_VALUE,
        base64.b64encode(USER_DATA.encode()).decode(),
        base64.b64encode(SECRET_VALUE.encode()).decode(),
    }
    haystacks = {
        "status files": "\n".join(written),
        "command output": "\n".join(outputs),
        "log lines": "\n".join(r.getMessage() for r in caplog.records),
    }
    for where, text in haystacks.items():
        for form in forms:
            assert form not in text, f"secret content found in {where}"
    host.connection.close()
