"""Git in: fetch a branch, name the revision, tell which manifests changed."""

from reconciler.source.cache import ManifestCache
from reconciler.source.git_source import GitSource
from reconciler.source.local import LocalDirectorySource
from reconciler.source.location import Source, open_source
from reconciler.source.revision import Revision, SourceError
from reconciler.source.verified import UnverifiedHistory

__all__ = [
    "GitSource",
    "LocalDirectorySource",
    "ManifestCache",
    "Revision",
    "Source",
    "SourceError",
    "UnverifiedHistory",
    "open_source",
]
