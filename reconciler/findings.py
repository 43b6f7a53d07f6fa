"""A problem found in the manifests, pointing at its file, line and object."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Rule(StrEnum):
    """The closed vocabulary of what a finding breaks; tools match on it."""

    YAML = "yaml"
    SCHEMA = "schema"
    REFERENCE = "reference"
    DUPLICATE = "duplicate"
    TOPOLOGY = "topology"
    SIZING_POLICY = "sizing-policy"
    USERDATA_SIZE = "userdata-size"
    IP_RANGE = "ip-range"
    CONFLICT = "conflict"
    IMAGE_SOURCE = "image-source"
    SYMLINK = "symlink"
    LIMITS = "limits"
    # A Secret whose data is in the clear, with --require-encrypted-secrets.
    SECRET_ENCRYPTION = "secret-encryption"


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    column: int
    object: str
    message: str
    rule: Rule

    def __str__(self) -> str:
        subject = f" {self.object}:" if self.object else ""
        return f"{self.path}:{self.line}:{self.column}:{subject} {self.message} [{self.rule}]"

    def as_dict(self) -> dict[str, str | int]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "object": self.object,
            "message": self.message,
            "rule": str(self.rule),
        }
