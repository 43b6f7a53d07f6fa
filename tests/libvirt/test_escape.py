"""Definitions and volumes are escaped as html.escape escapes them (libvirt/escape.py):
the XML a host sends libvirt stays byte for byte what it was."""

from __future__ import annotations

import html

from hypothesis import given
from hypothesis import strategies as st

from reconciler.libvirt.escape import escape

NASTY = st.text(alphabet=st.sampled_from("&<>\"'; a#x27\\\n\u00e9\u2028")) | st.text()


@given(NASTY, st.booleans())
def test_text_is_escaped_as_html_escape_escapes_it(text: str, quote: bool) -> None:
    assert escape(text, quote) == html.escape(text, quote)


def test_every_special_character_is_escaped() -> None:
    assert escape("<a href=\"x\" title='&amp;'>") == (
        "&lt;a href=&quot;x&quot; title=&#x27;&amp;amp;&#x27;&gt;"
    )
    assert escape("\"'&", quote=False) == "\"'&amp;"
