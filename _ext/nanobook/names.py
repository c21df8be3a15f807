"""The names an author gives a quiz, a simulator or a slice with ``:name:``.

A name becomes an HTML ``id`` and the ids derived from it, a link's ``#fragment``,
a LaTeX label and the key under which the reader's browser keeps a quiz score. One
strict pattern keeps it plain text in every one of those places: lowercase letters,
digits and ``-``, starting with a letter or a digit. Anything else (a quote, a ``<``,
a space) is an error that names the directive and the page, never markup.
"""

from __future__ import annotations

import re

NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
ALLOWED = "lowercase letters, digits and '-', starting with a letter or a digit"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a ``:name:``, or None when it can."""
    if NAME.fullmatch(name):
        return None
    return f":name: {name!r} is not allowed; a name may hold only {ALLOWED}"
