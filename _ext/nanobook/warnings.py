"""Every warning the extension emits has a type and a subtype, listed here.

Sphinx prints them with ``[nanobook.<subtype>]`` at the end and ``suppress_warnings`` can
silence one kind by name; the book itself silences none (it builds with ``-W``).

Two severities:

* ``warn``: something drifted (a stale GPU record, say). The book builds with
  ``-W``, so CI still fails, but a writer's local ``sphinx-build`` without
  ``-W`` goes on and shows the page.
* ``error``: the page cannot be right (an annotation that points nowhere, a
  quiz without a correct answer, a check whose output changed). The build fails
  even without ``-W``: the message is kept in the environment until the page is
  fixed, the page is read again on every build while it has errors, and the
  build's exit status is 1.
"""

from __future__ import annotations

import ast
from enum import Enum
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

WARNING_TYPE = "nanobook"

logger = logging.getLogger("nanobook")


class BookWarning(Enum):
    """One member per kind of problem the extension can find in the book."""

    CHAPTER_GRID = "chapter_grid"
    """The chapter list in ``conf.py`` is malformed."""
    READING_TIME = "reading_time"
    """A reading-time reference names a page that does not exist."""
    CHAPTER_REF = "chapter_ref"
    """A chapter reference (``{chapter}`7```) names a chapter that is not in
    ``nanobook_chapters``, or is not a number."""

    SLICE_SYNTAX = "slice_syntax"
    """An ``engine-slice`` directive is malformed (argument, options, annotation lines)."""
    SLICE_FILE = "slice_file"
    """The engine file of a slice does not exist, is not UTF-8 text or cannot be parsed."""
    SLICE_PATH = "slice_path"
    """A slice names a file outside the folders slices may show (the engine packages and this
    extension, inside the repository): an absolute path, a ``..`` that leads out, a link to a
    file elsewhere."""
    SLICE_OBJECT = "slice_object"
    """The class, method or function named by a slice is not in its file."""
    SLICE_MARKER = "slice_marker"
    """The ``# region NAME`` / ``# endregion NAME`` pair named by a slice is missing or broken."""
    SLICE_PATTERN = "slice_pattern"
    """An annotation's pattern matches no line of its slice."""
    SLICE_AMBIGUOUS = "slice_ambiguous"
    """An annotation's pattern matches more than one line of its slice."""

    CHECK_SYNTAX = "check_syntax"
    """A ``check`` directive is malformed (options, name, separator)."""
    CHECK_FAILED = "check_failed"
    """An executed check raised an exception it did not declare with ``:raises:``
    (``KeyboardInterrupt`` and ``SystemExit`` included), or did not raise the one it declared."""
    CHECK_TIMEOUT = "check_timeout"
    """An executed check ran longer than its time limit (``:timeout:``, 60 s by default) and was
    stopped."""
    CHECK_MISMATCH = "check_mismatch"
    """An executed check printed something other than its expected output."""
    RECORD_MISSING = "record_missing"
    """A GPU check cannot run here and has no record in ``source/_records/``."""
    RECORD_STALE = "record_stale"
    """A GPU check's record was made for an earlier version of the block or the engine."""
    RECORD_INVALID = "record_invalid"
    """A record file cannot be read (bad JSON, missing fields)."""
    GPU_CHECK = "gpu_check"
    """``make gpu-check`` cannot do what it was asked (no GPU, nothing selected)."""

    QUIZ_SYNTAX = "quiz_syntax"
    """A quiz or question is malformed (no options, more options than letters, an option without
    feedback, a ``:name:`` that is not a plain name, ...)."""
    QUIZ_COUNT = "quiz_count"
    """A quiz has a different number of questions than it declares."""
    QUIZ_BALANCE = "quiz_balance"
    """Over all quizzes, one answer position holds too many of the correct answers."""

    SIMULATOR = "simulator"
    """A simulator directive names an unknown widget, gives bad parameters or a ``:name:`` that is
    not a plain name, or the engine refuses the scenario its options describe (a request that
    could never fit the pool, a setting the engine's ``Config`` rejects, a run too long)."""
    CALLOUT = "callout"
    """A callout (analogy, why it matters, misconceptions, takeaways) is malformed."""
    VALUE = "value"
    """A ``value`` role names an unknown value or its computation failed."""

    FIGURE = "figure"
    """A ``figure-plot`` is malformed (no ``:alt:`` text, a bad ``:name:``, ``:size:`` or
    ``:timeout:``), its code failed or drew nothing, or it used a colour outside the book's
    palette."""
    RECORD_TABLE = "record_table"
    """A ``record-table`` is malformed (no ``:records:``, a column line that is not
    ``header = field | format``, a bad ``:name:``), or names a record outside
    ``source/_records/``, a record or a field that does not exist, or a format that does not
    fit its value."""
    MATH = "math"
    """Math would be loaded from another host (``mathjax_path`` is a web address), or the
    MathJax file it names is not in the book's static files."""

    def warn(self, message: str, *, location: object = None) -> None:
        """Emit this warning with its type and subtype, at a node or ``(docname, line)``."""
        logger.warning(
            message,
            type=WARNING_TYPE,
            subtype=self.value,
            location=location,
        )

    def error(self, message: str, *, env, location: object = None,
              docname: str | None = None) -> None:
        """Emit this problem as an error that fails the build (see the module docstring).

        ``docname`` is the page the error is kept for (default: the page being read).
        """
        logger.error(
            message,
            type=WARNING_TYPE,
            subtype=self.value,
            location=location,
        )
        errors = getattr(env, "nanobook_errors", None)
        if errors is None:
            errors = env.nanobook_errors = {}
        errors.setdefault(docname or env.docname, []).append(f"{self.value}: {message}")


def node_location(node: nodes.Node) -> tuple[str | None, int | None]:
    """Source file and line of a node, for messages that must name the chapter."""
    return nodes.get_source_line(node)


# -- keeping errors until they are fixed ---------------------------------------------------------

def _purge(app: Sphinx, env, docname: str) -> None:
    getattr(env, "nanobook_errors", {}).pop(docname, None)


def _merge(app: Sphinx, env, docnames, other) -> None:
    mine = getattr(env, "nanobook_errors", None)
    if mine is None:
        mine = env.nanobook_errors = {}
    for docname, messages in getattr(other, "nanobook_errors", {}).items():
        if docname in docnames:
            mine[docname] = messages


def _reread_pages_with_errors(app: Sphinx, env, added, changed, removed) -> list[str]:
    """A page with errors is read again on every build, so its errors are reported again."""
    return sorted(set(getattr(env, "nanobook_errors", {})) & env.found_docs)


def _fail_build(app: Sphinx, exception: Exception | None) -> None:
    errors = {doc: msgs for doc, msgs in getattr(app.env, "nanobook_errors", {}).items() if msgs}
    if exception is None and errors:
        total = sum(len(m) for m in errors.values())
        logger.info(f"nanobook: {total} error(s) on {len(errors)} page(s); the build fails")
        app.statuscode = 1


# -- the list of warnings, for the authoring guide ----------------------------------------------

def documented_members() -> list[tuple[str, str]]:
    """(subtype, description) of every member, descriptions read from this file's source."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "BookWarning")
    out, body = [], cls.body
    for stmt, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):
            doc = ""
            if (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                doc = " ".join(following.value.value.split())
            out.append((stmt.value.value, doc))
    return out


class WarningListDirective(SphinxDirective):
    """``{nanobook-warnings}``: a table of every warning subtype and what it means."""

    def run(self) -> list[nodes.Node]:
        table = nodes.table(classes=["nb-warning-list"])
        group = nodes.tgroup(cols=2)
        table += group
        group += nodes.colspec(colwidth=30)
        group += nodes.colspec(colwidth=70)
        head, body = nodes.thead(), nodes.tbody()
        group += head
        group += body
        def add_row(into, first: nodes.Node, second: list[nodes.Node]) -> None:
            row = nodes.row()
            for content in ([first], second):
                entry = nodes.entry()
                entry += nodes.paragraph("", "", *content)
                row += entry
            into += row

        add_row(head, nodes.Text("subtype"), [nodes.Text("the problem")])
        for subtype, description in documented_members():
            inline, _messages = self.parse_inline(description, lineno=self.lineno)
            add_row(body, nodes.literal("", f"nanobook.{subtype}"), inline)
        self.env.note_dependency(__file__)
        return [table]


def setup(app: Sphinx) -> dict:
    app.add_directive("nanobook-warnings", WarningListDirective)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-get-outdated", _reread_pages_with_errors)
    app.connect("build-finished", _fail_build)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
