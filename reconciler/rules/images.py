"""Images come only from the directories the host allows (imageDirectories).

An image's `file://` URL or path names a file of every host that runs a VM from it;
without this rule a manifest could import `/etc/shadow`, or the host's deploy key,
into a volume a guest reads. The path is taken as the host would open it: `..` and
symlinks resolved (on the machine that checks, which for `validate` is the CI
runner: the daemon checks again on the host, and again when it opens the file).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain

from reconciler.api import ClusterVirtualImage, VirtualImage
from reconciler.api.storage import DataSourceType
from reconciler.confined import resolve_inside
from reconciler.findings import Finding, Rule
from reconciler.loader import LoadedObject
from reconciler.model.volumes import local_path
from reconciler.rules.inventory import Inventory

URL_FIELD = ("spec", "dataSource", "http", "url")


def outside_message(location: str, directories: Sequence[str]) -> str:
    listed = ", ".join(directories) or "none"
    return (
        f"image source {location} is not a file inside the allowed image directories"
        f" ({listed}); put the file there, or add its directory to imageDirectories"
    )


def image_source_findings(inventory: Inventory, directories: Sequence[str]) -> Iterator[Finding]:
    images: Iterator[tuple[LoadedObject, VirtualImage | ClusterVirtualImage]] = chain(
        inventory.of_kind(VirtualImage), inventory.of_kind(ClusterVirtualImage)
    )
    for loaded, model in images:
        source = model.spec.data_source
        if source.type is not DataSourceType.HTTP or source.http is None:
            continue
        location = source.http.url
        path = local_path(location)
        if path is None:
            continue  # not a file of this host: the planner says it cannot be imported
        if resolve_inside(path, directories) is None:
            yield loaded.finding(
                URL_FIELD, outside_message(location, directories), Rule.IMAGE_SOURCE
            )
