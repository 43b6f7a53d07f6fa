"""The project's `<metadata>` element: to XML and back.

It is the daemon's only memory (SPEC §5), so parsing is strict about what it
needs and tolerant of what it does not: an element written by a newer version
with extra children still reads.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from reconciler.model.domain import METADATA_NAMESPACE, METADATA_PREFIX, DomainMetadata

ET.register_namespace(METADATA_PREFIX, METADATA_NAMESPACE)

ROOT_TAG = f"{{{METADATA_NAMESPACE}}}domain"


def metadata_fields(meta: DomainMetadata) -> list[tuple[str, str]]:
    """The element's children but the completed operations, in order, as (name, text)."""
    fields = [
        ("kind", meta.kind),
        ("namespace", meta.namespace),
        ("name", meta.name),
        ("revision", meta.revision),
        ("digest", meta.digest),
        ("spec", meta.spec_json()),
        ("stoppedManually", "true" if meta.stopped_manually else "false"),
        ("lastRunPolicy", meta.last_run_policy),
    ]
    if meta.created:
        fields.append(("created", meta.created))
    return fields


OPERATIONS = "completedOperations"
OPERATION = "operation"


def metadata_element(meta: DomainMetadata, *, namespaced: bool = True) -> ET.Element:
    """The element; `namespaced=False` leaves the namespace for libvirt to add.

    virDomainSetMetadata puts the element into the namespace it is given and
    refuses one that already declares it.
    """
    prefix = f"{{{METADATA_NAMESPACE}}}" if namespaced else ""
    root = ET.Element(prefix + "domain")
    for name, text in metadata_fields(meta):
        ET.SubElement(root, prefix + name).text = text
    operations = ET.SubElement(root, prefix + OPERATIONS)
    for operation in meta.completed_operations:
        ET.SubElement(operations, prefix + OPERATION).text = operation
    return root


def metadata_xml(meta: DomainMetadata) -> str:
    """The element alone, as `virDomainSetMetadata` takes it."""
    return ET.tostring(metadata_element(meta, namespaced=False), encoding="unicode")


def _text(root: ET.Element, name: str) -> str:
    found = root.find(f"{{{METADATA_NAMESPACE}}}{name}")
    return (found.text or "") if found is not None else ""


def parse_metadata(element: ET.Element | None) -> DomainMetadata | None:
    """The metadata under a domain's `<metadata>`; None when the domain is not ours."""
    if element is None:
        return None
    root = element.find(ROOT_TAG) if element.tag != ROOT_TAG else element
    if root is None:
        return None
    kind, namespace, name = _text(root, "kind"), _text(root, "namespace"), _text(root, "name")
    if not (kind and name):
        return None
    try:
        spec = json.loads(_text(root, "spec") or "{}")
    except json.JSONDecodeError:
        # A hand-edited, unreadable baseline: treated as unknown, which makes
        # the planner redefine the domain from Git.
        spec = {}
    operations = root.find(f"{{{METADATA_NAMESPACE}}}completedOperations")
    return DomainMetadata(
        kind=kind,
        namespace=namespace,
        name=name,
        revision=_text(root, "revision"),
        digest=_text(root, "digest"),
        spec=spec if isinstance(spec, dict) else {},
        stopped_manually=_text(root, "stoppedManually") == "true",
        last_run_policy=_text(root, "lastRunPolicy"),
        created=_text(root, "created"),
        completed_operations=tuple(
            op.text or "" for op in (operations if operations is not None else ()) if op.text
        ),
    )
