"""A Node's `spec.libvirtUri` (issue 14): where the fleet's other hosts reach its libvirt.

`reconciler validate` accepts the URIs of libvirt's QEMU system daemon over its
transports, and names file, line, object and rule for anything else: another driver
or path, a network transport without a host, spaces or control characters, an
absurd length, or query parameters that would make libvirt run a program.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import Cli, ManifestRepo, validate_json

NODE = """\
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: hv2
spec:
  capacity:
    cpu: 8
  libvirtUri: {uri}
"""


def node_yaml(uri: str) -> str:
    # JSON strings are YAML strings: any character reaches the model as written.
    return NODE.format(uri=json.dumps(uri))


@pytest.mark.parametrize(
    "uri",
    [
        "qemu:///system",
        "qemu+tls://hv2/system",
        "qemu+tls://hv2.example.org:16514/system?pkipath=/etc/pki/hv2",
        "qemu+tcp://10.0.0.2:16509/system",
        "qemu+tcp://[fd00::2]:16509/system",
        "qemu+ssh://root@hv2/system?keyfile=/root/.ssh/fleet&known_hosts=/etc/ssh/fleet",
        "qemu+unix:///system?socket=/var/tmp/lab/hostB/run/libvirt-sock",
    ],
)
def test_a_node_with_a_libvirt_uri_of_the_system_daemon_is_valid(
    cli: Cli, repo: ManifestRepo, uri: str
) -> None:
    repo.write("nodes/hv2.yaml", node_yaml(uri))

    assert validate_json(cli, repo) == (0, [])


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("xen://hv2/", "not a libvirt URI of the QEMU driver"),
        ("hv2", "not a libvirt URI of the QEMU driver"),
        ("qemu:///session", "path /system"),
        ("qemu+tls://hv2/", "path /system"),
        ("qemu+tls:///system", "names no host"),
        ("qemu://hv2/system", "names no host"),
        ("qemu+tcp://hv 2/system", "without spaces or control characters"),
        ("qemu+tcp://hv2/system\n", "without spaces or control characters"),
        ("qemu+tcp://hv2\x00/system", "without spaces or control characters"),
        ("qemu+tcp://hv2:0/system", "port '0'"),
        ("qemu+tcp://hv2:http/system", "port 'http'"),
        ("qemu+tcp://root@hv2/system", "only qemu+ssh takes a user name"),
        ("qemu+tcp://hv_2/system", "not a host name"),
        ("qemu+tcp://[fd00::zz]/system", "IPv6 address"),
        ("qemu+tcp://[fd00::2/system", "is not a URI"),
        ("qemu+ssh://hv2/system?command=/bin/sh", "not 'command'"),
        ("qemu+ssh://hv2/system?netcat=/tmp/nc", "not 'netcat'"),
        ("qemu+unix:///system?socket=run/sock", "absolute path"),
        ("qemu+unix:///system?socket=/a&socket=/b", "more than once"),
        ("qemu+tls://hv2/system?no_verify=yes", "no_verify is 0 or 1"),
        ("qemu+tls://hv2/system#x", "fragment"),
        ("qemu+tls://" + "h" * 600 + "/system", "at most 512"),
    ],
)
def test_a_bad_libvirt_uri_is_a_finding_at_its_line(
    cli: Cli, repo: ManifestRepo, uri: str, says: str
) -> None:
    text = node_yaml(uri)
    repo.write("nodes/hv2.yaml", text)

    code, findings = validate_json(cli, repo)

    assert code == 1
    assert len(findings) == 1, findings
    finding = findings[0]
    assert finding["path"] == "nodes/hv2.yaml"
    assert finding["line"] == repo.line_of("nodes/hv2.yaml", "libvirtUri:")
    assert finding["object"] == "Node/hv2"
    assert finding["rule"] == "schema"
    assert says in str(finding["message"])


def test_a_node_without_a_libvirt_uri_is_valid(cli: Cli, repo: ManifestRepo) -> None:
    repo.write("nodes/hv2.yaml", NODE.replace("  libvirtUri: {uri}\n", ""))

    assert validate_json(cli, repo) == (0, [])
