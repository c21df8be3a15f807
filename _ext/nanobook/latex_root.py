"""A separate root page for the PDF, and pages that exist only in the PDF.

The web site opens on a landing page whose sections (who the book is for, the
chapter grid, how to run the engine) make sense on screen but would become
numbered chapters in a LaTeX book. So the PDF starts from its own page,
``nanobook_latex_root``, and every other builder leaves that page out.

``nanobook_latex_only_docs`` lists further pages that only the PDF has (the
answer key of the quizzes: on the web, each quiz answers for itself).

LaTeX numbers chapters in the order they come, so while some chapters are unwritten,
chapter 4 would be printed as chapter 2 beside cross-references that say "Chapter 4".
Each chapter page therefore sets LaTeX's chapter counter to its number in
``nanobook_chapters`` just before its heading.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx


def exclude_latex_pages(app: Sphinx) -> None:
    if app.builder.format == "latex":
        return
    pages = [app.config.nanobook_latex_root, *app.config.nanobook_latex_only_docs]
    patterns = [f"{page}{suffix}" for page in pages if page for suffix in (".md", ".rst")]
    app.config.exclude_patterns = [*app.config.exclude_patterns, *patterns]


def number_chapter(app: Sphinx, doctree: nodes.document) -> None:
    """Before a chapter's heading, LaTeX's counter is set so that it gets its book number."""
    for chapter in app.config.nanobook_chapters:
        if chapter.get("doc") == app.env.docname and str(chapter.get("number", "")).isdigit():
            command = f"\\setcounter{{chapter}}{{{int(chapter['number']) - 1}}}"
            doctree.insert(0, nodes.raw("", command, format="latex"))


def setup(app: Sphinx) -> dict:
    app.add_config_value("nanobook_latex_root", "", "env", types=[str])
    app.add_config_value("nanobook_latex_only_docs", [], "env", types=[list, tuple])
    app.connect("builder-inited", exclude_latex_pages)
    app.connect("doctree-read", number_chapter)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
