"""Text for XML, escaped as html.escape escapes it, without the html package.

Importing html loads html.entities, a table of some 2,000 named entities nothing here
uses: a millisecond or more of every start of a command that may talk to libvirt
(issue 16). The definitions and volumes written stay byte for byte what they were.
"""

from __future__ import annotations


def escape(text: str, quote: bool = True) -> str:
    """What html.escape returns: &, < and > replaced, and " and ' too with `quote`."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if quote:
        text = text.replace('"', "&quot;").replace("'", "&#x27;")
    return text
