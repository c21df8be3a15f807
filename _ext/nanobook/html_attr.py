"""Attribute values in the HTML the extension writes by hand.

The quiz, the slice and the simulator write their HTML as strings. Every value
put between the quotes of an attribute goes through ``attr``, whatever its origin
(a name an author chose, a page name, a number the extension computed), so no value
can end the attribute or open a tag. ``tests/ext/test_bad_input.py`` holds the
modules to that: in their HTML strings, every ``{...}`` inside an attribute is an
``attr(...)`` call.
"""

from __future__ import annotations

import html


def attr(value: object) -> str:
    """``value`` as text for a quoted HTML attribute (``&``, ``<``, ``>``, both quotes escaped)."""
    return html.escape(str(value), quote=True)
