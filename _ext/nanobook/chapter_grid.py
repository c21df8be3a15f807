"""The landing page's grid of chapters.

The chapter list lives in ``conf.py`` (``nanobook_chapters``) so that the grid,
the reading times and the table of contents agree. A chapter whose page does not
exist yet is shown as "in preparation", without a link: the book never links to
an empty page.

The grid is made of generic nodes (a bullet list of paragraphs), so every
builder renders it without help: HTML styles it as cards (``book.css``), LaTeX
prints a plain list.
"""

from __future__ import annotations

from docutils import nodes
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.directives.other import TocTree
from sphinx.util.docutils import SphinxDirective

from .reading_time import reading_time
from .warnings import BookWarning

REQUIRED_KEYS = ("number", "doc", "title", "topic")


class ChapterGridDirective(SphinxDirective):
    """``{chapter-grid}``: one card per chapter of ``nanobook_chapters``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        grid = nodes.bullet_list(classes=["chapter-grid"])
        for chapter in self.config.nanobook_chapters:
            missing = [key for key in REQUIRED_KEYS if key not in chapter]
            if missing:
                BookWarning.CHAPTER_GRID.warn(
                    f"chapter-grid: chapter entry {chapter!r} lacks {', '.join(missing)}",
                    location=self.get_location(),
                )
                continue
            grid += self._card(chapter)
        note_chapter_page(self.env)
        return [grid]

    def _card(self, chapter: dict) -> nodes.list_item:
        written = chapter["doc"] in self.env.found_docs
        item = nodes.list_item(
            classes=["chapter-card", "written" if written else "in-preparation"],
            ids=[f"chapter-card-{chapter['number']}"],
        )
        heading = nodes.paragraph(classes=["chapter-card-title"])
        heading += nodes.inline("", f"{chapter['number']} ", classes=["chapter-number"])
        title = nodes.strong("", chapter["title"])
        if written:
            ref = addnodes.pending_xref(
                "", refdomain="std", reftype="doc", reftarget="/" + chapter["doc"],
                refexplicit=True, refwarn=True,
            )
            ref += title
            heading += ref
        else:
            heading += title
        item += heading
        item += nodes.paragraph("", chapter["topic"], classes=["chapter-card-topic"])
        status = nodes.paragraph(classes=["chapter-card-status"])
        if written:
            status += reading_time("", "", target=chapter["doc"])
        else:
            status += nodes.Text("In preparation")
        item += status
        return item


class ChapterTocDirective(TocTree):
    """``{chapter-toctree}``: a toctree of the chapters whose pages exist, in book order.

    Takes the options of ``toctree`` (``:caption:``, ``:hidden:`` ...); the entries come
    from ``nanobook_chapters``, so an unwritten chapter never appears as an empty page.
    """

    has_content = False

    def run(self) -> list[nodes.Node]:
        written = [c["doc"] for c in self.config.nanobook_chapters if c.get("doc") in self.env.found_docs]
        self.content = StringList(written, source=self.get_source_info()[0])
        note_chapter_page(self.env)
        return super().run()


def outdated_grid_pages(app: Sphinx, env, added, changed, removed) -> list[str]:
    """Rebuild the pages with a grid or chapter toctree when a chapter appears, changes or goes away."""
    chapters = {c.get("doc") for c in app.config.nanobook_chapters}
    if not chapters & (set(added) | set(changed) | set(removed)):
        return []
    return sorted(getattr(env, "nanobook_grid_pages", set()))


def note_chapter_page(env) -> None:
    """Remember that this page lists the chapters, so it is rebuilt when they change."""
    env.nanobook_grid_pages = getattr(env, "nanobook_grid_pages", set()) | {env.docname}


def forget_page(app: Sphinx, env, docname: str) -> None:
    getattr(env, "nanobook_grid_pages", set()).discard(docname)


def merge_pages(app: Sphinx, env, docnames, other) -> None:
    env.nanobook_grid_pages = getattr(env, "nanobook_grid_pages", set()) | getattr(
        other, "nanobook_grid_pages", set()
    )


def setup(app: Sphinx) -> dict:
    if "nanobook_chapters" not in app.config:
        app.add_config_value("nanobook_chapters", [], "env", types=[list, tuple])
    app.add_directive("chapter-grid", ChapterGridDirective)
    app.add_directive("chapter-toctree", ChapterTocDirective)
    app.connect("env-purge-doc", forget_page)
    app.connect("env-merge-info", merge_pages)
    app.connect("env-get-outdated", outdated_grid_pages)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
