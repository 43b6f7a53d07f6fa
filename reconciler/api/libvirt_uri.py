"""A Node's `spec.libvirtUri`: where the other hosts of the fleet reach its libvirt.

The source host's libvirtd opens it for a peer-to-peer live migration, so it must be
a URI of the QEMU driver's system daemon (https://libvirt.org/uri.html,
https://libvirt.org/remote.html): `qemu:///system`, `qemu+tls://hv2/system`,
`qemu+tcp://hv2:16509/system`, `qemu+ssh://root@hv2/system`,
`qemu+unix:///system?socket=/run/libvirt/libvirt-sock`.

It comes from a manifest in Git, and libvirt acts on what it says, so it is held to
what a fleet needs: printable ASCII without spaces, a bounded length, a host for the
network transports, and only the query parameters that pick a socket, certificates or
keys (not `command` or `netcat`, which make libvirt run a program on the peer).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit

MAX_LENGTH = 512
# The query parameters each transport takes (libvirt's remote.html), and no others.
QUERY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "qemu": (),
    "qemu+unix": ("socket",),
    "qemu+tls": ("pkipath", "no_verify"),
    "qemu+tcp": (),
    "qemu+ssh": ("keyfile", "known_hosts", "no_verify", "sshauth"),
}
NETWORK_TRANSPORTS = ("qemu+tls", "qemu+tcp", "qemu+ssh")
_PATH_PARAMETERS = ("socket", "pkipath", "keyfile", "known_hosts")
_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")  # an IPv4 address is one too
_USER = re.compile(r"^[A-Za-z0-9_][-A-Za-z0-9_.]*$")


def check_libvirt_uri(value: str) -> str:
    """`value` when it is a URI the fleet can migrate to; ValueError saying why not."""
    if len(value) > MAX_LENGTH:
        raise ValueError(f"is {len(value)} characters long; a libvirt URI has at most {MAX_LENGTH}")
    if not value.isascii() or any(not char.isprintable() or char.isspace() for char in value):
        raise ValueError("must be printable ASCII without spaces or control characters")
    scheme, separator, _rest = value.partition("://")
    if not separator or scheme not in QUERY_PARAMETERS:
        raise ValueError(
            f"{value!r} is not a libvirt URI of the QEMU driver: it starts with "
            + ", ".join(f"{name}://" for name in QUERY_PARAMETERS)
        )
    try:
        parts = urlsplit(value)
    except ValueError as error:  # an unbalanced or invalid [IPv6] host
        raise ValueError(f"is not a URI: {error}") from None
    if parts.path != "/system":
        example = f"{scheme}://{'hv2' if scheme in NETWORK_TRANSPORTS else ''}/system"
        raise ValueError(
            f"names {parts.path or 'no path'!r}; a host's libvirt is its system daemon,"
            f" path /system, as in {example}"
        )
    if "#" in value:
        raise ValueError("has a fragment (#...); a libvirt URI has none")
    _check_authority(scheme, parts.netloc)
    _check_query(scheme, parts.query)
    return value


def _check_authority(scheme: str, netloc: str) -> None:
    if scheme not in NETWORK_TRANSPORTS:
        if netloc:
            raise ValueError(f"{scheme}:// reaches the local daemon and names no host")
        return
    if not netloc:
        raise ValueError(f"{scheme}:// names no host: write {scheme}://HOST/system")
    user, at, host_port = netloc.rpartition("@")
    if at and (scheme != "qemu+ssh" or not _USER.match(user)):
        raise ValueError(f"{user + at!r}: only qemu+ssh takes a user name, letters and digits")
    if host_port.startswith("["):
        host, _bracket, rest = host_port[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{host_port!r} is not a host and port")
        has_port, port = bool(rest), rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, colon, port = host_port.partition(":")
        has_port = bool(colon)
        if len(host) > 253 or not _HOST_NAME.match(host):
            raise ValueError(f"{host!r} is not a host name or IPv4 address")
    if has_port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"port {port!r} is not a number from 1 to 65535")


def _check_query(scheme: str, query: str) -> None:
    if not query:
        return
    allowed = QUERY_PARAMETERS[scheme]
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError(f"query {query!r} is not name=value pairs joined by &") from None
    names = [name for name, _value in pairs]
    for name, parameter in pairs:
        if name not in allowed:
            takes = ", ".join(allowed) if allowed else "no parameters"
            raise ValueError(f"{scheme}:// takes {takes}, not {name!r}")
        if names.count(name) > 1:
            raise ValueError(f"{name!r} is given more than once")
        if name in _PATH_PARAMETERS and not parameter.startswith("/"):
            raise ValueError(f"{name} must be an absolute path, not {parameter!r}")
        if name == "no_verify" and parameter not in ("0", "1"):
            raise ValueError(f"no_verify is 0 or 1, not {parameter!r}")
