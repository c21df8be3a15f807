"""Every warning the extension emits has a type and a subtype, listed here.

Sphinx prints them as ``[nanobook.<subtype>]`` and ``suppress_warnings`` can
silence one kind by name; the book itself silences none (it builds with ``-W``).
"""

from __future__ import annotations

from enum import Enum

from docutils import nodes
from sphinx.util import logging

WARNING_TYPE = "nanobook"

logger = logging.getLogger("nanobook")


class BookWarning(Enum):
    """One member per kind of problem the extension can find in the book."""

    CHAPTER_GRID = "chapter_grid"
    """The chapter list in ``conf.py`` is malformed."""
    READING_TIME = "reading_time"
    """A reading-time reference names a page that does not exist."""

    def warn(self, message: str, *, location: object = None) -> None:
        """Emit this warning with its type and subtype, at a node or ``(docname, line)``."""
        logger.warning(
            f"{message} [{WARNING_TYPE}.{self.value}]",
            type=WARNING_TYPE,
            subtype=self.value,
            location=location,
        )


def node_location(node: nodes.Node) -> tuple[str | None, int | None]:
    """Source file and line of a node, for messages that must name the chapter."""
    return nodes.get_source_line(node)
