"""Git in: fetch a branch, name the revision, tell which manifests changed.

A name is imported when first asked for (PEP 562): `reconciler apply` and `plan` use
only `reconciler.source.secrets` (SOPS), and importing a submodule runs this file
first; GitPython alone would add 30 ms to their start (issue 16). The secrets module
asks here for sops's names too: running sops needs subprocess, 2 ms more of every
start, and only a repository with an encrypted Secret runs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.source.cache import ManifestCache
    from reconciler.source.git_source import GitSource
    from reconciler.source.local import LocalDirectorySource
    from reconciler.source.location import Source, open_source
    from reconciler.source.revision import Revision, SourceError
    from reconciler.source.sops import Failure, SopsError, decrypt
    from reconciler.source.verified import UnverifiedHistory

_HOMES = {
    "ManifestCache": "cache",
    "GitSource": "git_source",
    "LocalDirectorySource": "local",
    "Source": "location",
    "open_source": "location",
    "Revision": "revision",
    "SourceError": "revision",
    "UnverifiedHistory": "verified",
    "Failure": "sops",
    "SopsError": "sops",
    "decrypt": "sops",
}


def __getattr__(name: str) -> Any:
    """A name of one of this package's modules, imported on first use (start-up speed)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # GitPython only when a Git source is used, sops (subprocess) only when a Secret is
    # decrypted: imported here, for start-up speed.
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Failure",
    "GitSource",
    "LocalDirectorySource",
    "ManifestCache",
    "Revision",
    "SopsError",
    "Source",
    "SourceError",
    "UnverifiedHistory",
    "decrypt",
    "open_source",
]
