"""What the command line prints: nothing it did not write itself may steer a terminal.

Reports under `status/` are anyone's who can push to the repository, and manifests
(file names included) anyone's who opens a pull request. A value from them holding
an escape sequence (`ESC ] 0 ; … BEL` retitles the window, `ESC [ 2 J` clears it,
others rewrite what was printed) would reach the operator's terminal through `get`,
`describe` or `plan`. Every control character of such a value (C0, line breaks
included, so a value cannot fake a line or a table row; DEL; C1) is shown as a
visible escape such as `\\x1b`. JSON output needs nothing: `json.dumps` escapes
them all. `emit` is the last line of defence for all text output: whatever still
holds a control character other than the command's own line breaks is escaped there.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

from reconciler.api import ObjectId

if TYPE_CHECKING:  # the tables are get's and describe's, not validate's or apply's
    from reconciler.cli.tables import Listed

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINE_BREAK = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    character = match.group()
    return _NAMED.get(character) or f"\\x{ord(character):02x}"


def escaped(value: object) -> str:
    """One value (a name, a phase, a message, a file name) as a terminal may show it."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub(_visible, text)


def escaped_tree(value: Any) -> Any:
    """Plain data (a report, a manifest) with every string in it, keys too, `escaped`."""
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, Mapping):
        return {escaped_tree(key): escaped_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escaped_tree(item) for item in value]
    return value


def escaped_listed(listed: Listed) -> Listed:
    """An object as `get` and `describe` print it, every value from outside `escaped`."""
    object_id = ObjectId(*(escaped(part) for part in listed.object_id))
    return replace(
        listed,
        object_id=object_id,
        manifest=escaped_tree(listed.manifest),
        status=escaped_tree(listed.status),
        created=escaped(listed.created),
    )


def emit(text: str, file: TextIO | None = None, *, flush: bool = False) -> None:
    """Print the command's output: its own line breaks kept, any other control
    character escaped."""
    print(_CONTROL_BUT_LINE_BREAK.sub(_visible, text), file=file or sys.stdout, flush=flush)
