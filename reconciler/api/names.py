"""Object names: what the platform allows, and how names derived from them fit a host.

The platform (dvp-api.md §1; its `pkg/common/validate/validate.go` at the reference
snapshot): a namespace is a DNS-1123 label (at most 63 characters), a VirtualMachine
name at most 63 characters, every other object name a DNS-1123 subdomain (at most
253). Disks and images may use all 253: the platform shortens the names it derives
from them, and so does this project.

A host has limits of its own: a file name (a status report, a volume of a `dir`
storage pool) is at most 255 bytes on every Linux file system. A derived name that
would not fit, or that is not made of name characters (the name of an invalid
manifest, which still gets a report), is `fitted`: a readable prefix, `_` and a hash
of the whole name. Every name that fits is kept as it is, so no existing volume or
report moves, and every host derives the same name. No valid name contains `_`, so
a fitted name never meets a name kept as it is.
"""

from __future__ import annotations

import hashlib
import re

DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
VM_NAME_MAX = 63
# NAME_MAX of ext4, xfs, btrfs and tmpfs, in bytes.
FILE_NAME_MAX = 255

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

FITTED_MARK = "_"
# 128 bits: two different names sharing a fitted name would share a volume, so the
# hash must be out of reach of a birthday search by whoever writes the manifests.
_DIGEST_CHARS = 32
# What a derived name may be made of and be kept as written: name characters, never
# starting with a dot (a hidden file, or `.`/`..`).
_PLAIN = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_NOT_PLAIN = re.compile(r"[^a-z0-9.-]")


def is_dns_label(text: str) -> bool:
    return len(text) <= DNS_LABEL_MAX and DNS_LABEL.match(text) is not None


def is_dns_subdomain(text: str) -> bool:
    return len(text) <= DNS_SUBDOMAIN_MAX and DNS_SUBDOMAIN.match(text) is not None


def fitted(text: str, budget: int) -> str:
    """`text` itself when it is made of name characters and fits in `budget` bytes;
    otherwise at most `budget` bytes: a readable prefix of it, `_` and 32 hex digits of
    the SHA-256 of the whole text. Never `.`, `..`, empty, or holding a `/`."""
    if budget <= len(FITTED_MARK) + _DIGEST_CHARS:
        raise ValueError(f"a budget of {budget} bytes leaves no room for a fitted name")
    if len(text) <= budget and _PLAIN.match(text):
        return text  # ASCII only, so characters are bytes
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_CHARS]
    room = budget - len(FITTED_MARK) - _DIGEST_CHARS
    readable = _NOT_PLAIN.sub("-", text.lower()).lstrip(".-")[:room]
    return f"{readable}{FITTED_MARK}{digest}"
