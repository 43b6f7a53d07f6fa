"""`reconciler run` with SOPS-encrypted Secrets on the test driver (issue 15): the host
decrypts a Secret with its ageKeyFile and provisions the VM; a Secret it cannot decrypt
(or one in the clear, with requireEncryptedSecrets) blocks only the VMs using it, and the
plaintext is in no commit, no file of its cache directory and no line of its log."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

from tests.agekeys import AgeKey, cloud_init_secret, encrypt, files_containing, user_data_ref
from tests.daemon.test_daemon_process import vm_reports
from tests.daemonlab import Daemon, Remote, Workspace, settings, wait_until
from tests.hosts import vm_yaml

MARKER = "plaintext-marker-e61f"
USER_DATA = f"#cloud-config\npassword: {MARKER}\n"
LEAKS = (MARKER, base64.b64encode(USER_DATA.encode()).decode())
# The Secret the operator left in the clear: in Git already, of no concern here.
CLEAR_USER_DATA = "#cloud-config\nhostname: other\n"


def provisioning(status: dict[str, Any]) -> dict[str, Any]:
    conditions = status.get("conditions", [])
    return next((c for c in conditions if c["type"] == "ProvisioningReady"), {})


def push_fleet(operator: Workspace, recipient: str) -> None:
    """web on a Secret encrypted for `recipient` (its user data holds MARKER), other on a
    Secret in the clear, db on none."""
    operator.write("secrets/web.yaml", encrypt(cloud_init_secret("web-ci", USER_DATA), recipient))
    operator.write("secrets/other.yaml", cloud_init_secret("other-ci", CLEAR_USER_DATA))
    operator.write("vms/web.yaml", user_data_ref(vm_yaml("web", run_policy="AlwaysOn"), "web-ci"))
    operator.write(
        "vms/other.yaml", user_data_ref(vm_yaml("other", run_policy="AlwaysOn"), "other-ci")
    )
    operator.write("vms/db.yaml", vm_yaml("db", run_policy="AlwaysOn"))
    operator.commit_and_push("three VMs, two Secrets")


def everything_in_git(remote: Remote) -> str:
    """Every commit of every branch, with its full diff: what the hosts ever pushed."""
    return subprocess.run(
        ["git", "log", "--all", "-p", "--format=%H %s"],
        cwd=remote.path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_host_decrypts_with_its_key_and_the_plaintext_stays_in_memory(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    key = AgeKey.create(tmp_path / "keys", "hv")
    push_fleet(operator, key.recipient)
    daemon = Daemon(tmp_path / "hv", settings(remote, "hv", ageKeyFile=str(key.path)))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()

    reports = wait_until(
        "web, other and db Running",
        lambda: (
            (r := vm_reports(remote))
            and all(r.get(name, {}).get("phase") == "Running" for name in ("web", "other", "db"))
            and r
        ),
        60,
        interval=0.3,
    )

    assert provisioning(reports["web"])["reason"] == "ProvisioningReady"
    assert daemon.terminate() == 0
    assert not any(leak in everything_in_git(remote) for leak in LEAKS)
    assert files_containing(daemon.workdir / "cache", *LEAKS) == []
    assert not any(leak in daemon.log_text() for leak in LEAKS)


def test_an_undecryptable_or_clear_secret_blocks_only_its_vm(
    remote: Remote, operator: Workspace, daemons: list[Daemon], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    owner, stranger = AgeKey.create(keys, "owner"), AgeKey.create(keys, "hv")
    push_fleet(operator, owner.recipient)
    config = settings(remote, "hv", ageKeyFile=str(stranger.path), requireEncryptedSecrets=True)
    daemon = Daemon(tmp_path / "hv", config)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_ready()

    reports = wait_until(
        "db Running, web and other Pending",
        lambda: (
            (r := vm_reports(remote))
            and r.get("db", {}).get("phase") == "Running"
            and r.get("web", {}).get("phase") == "Pending"
            and r.get("other", {}).get("phase") == "Pending"
            and r
        ),
        60,
        interval=0.3,
    )

    web, other = provisioning(reports["web"]), provisioning(reports["other"])
    assert web["status"] == "False" and web["reason"] == "SecretNotDecrypted"
    assert "Secret web-ci" in web["message"] and owner.recipient in web["message"]
    assert other["status"] == "False" and other["reason"] == "SecretNotEncrypted"
    assert "Secret other-ci" in other["message"]
    assert daemon.terminate() == 0
    assert not any(leak in everything_in_git(remote) for leak in LEAKS)
    assert files_containing(daemon.workdir / "cache", *LEAKS) == []
