"""The pieces every widget's static form (its printed stand-in) is made of: a caption and a
table of what the engine computed, in the styles ``nb-sim-trace`` and
``nb-sim-trace-caption``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from docutils import nodes

Cell = str | Sequence[str] | nodes.Node  # a paragraph, one paragraph per line, or as it is


def caption(text: str) -> nodes.paragraph:
    return nodes.paragraph("", text, classes=["nb-sim-trace-caption"])


def table(widths: Sequence[int], head: Sequence[Cell], rows: Iterable[Sequence[Cell]],
          classes: Sequence[str] = (), colwidths_given: bool = False) -> nodes.table:
    """A header row and body rows, columns in the proportions ``widths``. With
    ``colwidths_given`` the HTML and LaTeX writers keep those proportions; otherwise they fit
    the columns to their text."""
    given = ["colwidths-given"] if colwidths_given else []
    result = nodes.table(classes=[*given, "nb-sim-trace", *classes])
    group = nodes.tgroup(cols=len(widths))
    result += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    for part, part_rows in ((nodes.thead(), [head]), (nodes.tbody(), rows)):
        group += part
        for cells in part_rows:
            row = nodes.row()
            for cell in cells:
                row += _entry(cell)
            part += row
    return result


def _entry(cell: Cell) -> nodes.entry:
    entry = nodes.entry()
    if isinstance(cell, nodes.Node):
        entry += cell
    else:
        for line in [cell] if isinstance(cell, str) else cell:
            entry += nodes.paragraph("", line)
    return entry
