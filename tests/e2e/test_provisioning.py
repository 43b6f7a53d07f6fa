"""Provisioning, for real: the tiny guest mounts the `cidata` seed the engine built from a
Secret and reads back exactly the user-data it was given (issue 6)."""

from __future__ import annotations

import base64

import libvirt
import pytest

from tests.hosts import Host, vm_yaml

from .lab import TestGuest, agent_command, wait_for_agent, wait_until

pytestmark = pytest.mark.e2e

USER_DATA = "#cloud-config\nruncmd:\n  - echo provisioned-by-vm-reconciler\n"


def read_guest_file(domain: libvirt.virDomain, path: str) -> bytes:
    handle = agent_command(domain, "guest-file-open", path=path, mode="r")
    try:
        chunks = []
        while True:
            part = agent_command(domain, "guest-file-read", handle=handle, count=65536)
            chunks.append(base64.b64decode(part["buf-b64"]))
            if part.get("eof"):
                return b"".join(chunks)
    finally:
        agent_command(domain, "guest-file-close", handle=handle)


def test_the_guest_reads_the_user_data_of_its_secret_from_the_cidata_seed(
    host: Host, e2e_namespace: str, guest: TestGuest
) -> None:
    encoded = base64.b64encode(USER_DATA.encode()).decode()
    host.write(
        "secret.yaml",
        f"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: web-cloud-init
          namespace: {e2e_namespace}
        type: provisioning.virtualization.deckhouse.io/cloud-init
        data:
          userData: {encoded}
        """,
    )
    manifest = vm_yaml("web", namespace=e2e_namespace, kernel_boot=guest.kernel_boot())
    manifest = manifest.replace(
        "  virtualMachineClassName: generic",
        "  virtualMachineClassName: generic\n  provisioning:\n    type: UserDataRef\n"
        "    userDataRef:\n      kind: Secret\n      name: web-cloud-init",
        1,
    )
    host.write("vm.yaml", manifest)
    result, _ = host.reconcile()
    assert not result.errors, [f"{e.action.describe()}: {e.error}" for e in result.errors]

    domain = host.domain(f"web.{e2e_namespace}")
    wait_for_agent(domain)
    mounted = wait_until(
        "the guest's init looking for its seed",
        lambda: read_guest_file(domain, "/run/test-guest/cidata") or None,
        30,
        interval=0.5,
    )
    assert mounted.startswith(b"mounted /dev/"), mounted
    assert read_guest_file(domain, "/mnt/cidata/user-data") == USER_DATA.encode()
    meta_data = read_guest_file(domain, "/mnt/cidata/meta-data").decode()
    assert 'local-hostname: "web"' in meta_data
    assert agent_command(domain, "guest-get-host-name")["host-name"] == "web"
