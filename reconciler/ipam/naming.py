"""Names and hashes every host must compute identically (no Python `hash()`: it is salted)."""

from __future__ import annotations

import hashlib
import ipaddress

# socket's C half: the socket module makes enums of all its constants as it is imported,
# two milliseconds of every command's start (issue 16), for this one function.
from _socket import AF_INET, inet_pton

# Kubernetes' generateName alphabet (apimachinery util/rand): no vowels, no 0/1/3,
# so `linux-vm-7prpx` style suffixes never spell words or look ambiguous.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SUFFIX_LENGTH = 5
# Kubernetes object names are at most 253 characters; keep room for "-" + suffix.
_MAX_NAME = 253


def digest(*parts: str) -> int:
    """A stable 256-bit integer for the parts; NUL-joined so ("a", "bc") != ("ab", "c")."""
    data = "\0".join(parts).encode()
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def generated_vmip_name(namespace: str, vm_name: str, attempt: int = 0) -> str:
    """`<vm>-<5 chars>`, as the controller's generateName makes, but derived from the VM
    so every host (and every run) names the same VM's vmip the same way."""
    parts = (namespace, vm_name) if attempt == 0 else (namespace, vm_name, str(attempt))
    value = digest("vmip", *parts)
    suffix = []
    for _ in range(SUFFIX_LENGTH):
        value, index = divmod(value, len(_ALPHABET))
        suffix.append(_ALPHABET[index])
    prefix = vm_name[: _MAX_NAME - SUFFIX_LENGTH - 1]
    return f"{prefix}-{''.join(suffix)}"


def lease_name(address: str | ipaddress.IPv4Address) -> str:
    """dvp-api.md §6.2: `10.66.10.14` -> `ip-10-66-10-14`."""
    return "ip-" + str(address).replace(".", "-")


def lease_address(name: str) -> str | None:
    """The inverse of `lease_name`, or None when the name does not decode to an IPv4 address."""
    if not name.startswith("ip-"):
        return None
    text = name[3:].replace("-", ".")
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def probe_start(namespace: str, vmip_name: str, size: int) -> int:
    """Where an Auto vmip starts looking in a pool of `size` usable addresses: spread over
    the pool so fresh vmips rarely probe far, and the same on every host."""
    return digest("offset", namespace, vmip_name) % size


def address_int(text: str | None) -> int | None:
    """A dotted-quad IPv4 address as an int, None if it is not one. inet_pton is C and
    several times faster than ipaddress (tens of thousands of leases per call); the
    round trip makes it exactly as strict as IPv4Address on every libc (no leading
    zeros, no short forms)."""
    if not text:
        return None
    try:
        value = int.from_bytes(inet_pton(AF_INET, text), "big")
    except (OSError, ValueError):
        return None
    return value if address_text(value) == text else None


def address_text(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
