"""Chapter references: ``{chapter}`7``` prints "Chapter 7, Prefix Caching" and links to it.

Syntax (MyST role)::

    Blocks that hold the same prompt prefix are shared ({chapter}`7`).

The number is the chapter's number in ``nanobook_chapters`` (``conf.py``), with or without a
leading zero; the title comes from the same list, so a renamed chapter is renamed everywhere.
A number that is not in the list, or text that is not a number, fails the build
(``nanobook.chapter_ref``) and names the chapters that exist.

A chapter that is listed but not written yet (its page does not exist, and the landing page
shows it as "in preparation") prints the same words followed by "(in preparation)", without a
link, on the web and in the PDF: chapters are written in any order and refer to each other
ahead, so a forward reference must not fail the build, but the book never links to a page
that is not there. When the chapter's page appears, the pages that refer to it are read
again and the reference becomes a link.

The link is a cross-reference to the chapter's page (``std:doc``), so HTML gets an ``<a>``
and LaTeX a ``\\hyperref`` to the chapter.
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxRole

from .warnings import BookWarning

_NUMBER = re.compile(r"\d{1,3}")


def chapter_words(number: int, title: str) -> str:
    """How a chapter is named in prose."""
    return f"Chapter {number}, {title}"


def listed_chapters(config) -> dict[int, dict]:
    """The chapters of ``nanobook_chapters`` by number (entries without a number, page or
    title are the chapter grid's to report)."""
    out = {}
    for chapter in config.nanobook_chapters:
        number = str(chapter.get("number", ""))
        if _NUMBER.fullmatch(number) and chapter.get("doc") and chapter.get("title"):
            out[int(number)] = chapter
    return out


def known(chapters: dict[int, dict]) -> str:
    numbers = sorted(chapters)
    if not numbers:
        return "nanobook_chapters in conf.py lists no chapters"
    if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 2:
        return f"the chapters are {numbers[0]} to {numbers[-1]}"
    listed = [str(n) for n in numbers]
    return "the chapters are " + (listed[0] if len(listed) == 1 else
                                  ", ".join(listed[:-1]) + " and " + listed[-1])


class ChapterRole(SphinxRole):
    def run(self):
        text = self.text.strip()
        chapters = listed_chapters(self.config)
        if not _NUMBER.fullmatch(text):
            return self.fail(f"{text!r} is not a chapter number; write the number alone, as in "
                             f"{{chapter}}`7` ({known(chapters)})")
        number = int(text)
        if number not in chapters:
            return self.fail(f"no chapter {number} in nanobook_chapters (conf.py); "
                             f"{known(chapters)}")
        chapter = chapters[number]
        words = chapter_words(number, chapter["title"])
        _note_referring_page(self.env)
        if chapter["doc"] not in self.env.found_docs:
            node = nodes.inline(self.rawtext, f"{words} (in preparation)",
                                classes=["nb-chapter-ref", "nb-in-preparation"])
            self.set_source_info(node)
            return [node], []
        ref = addnodes.pending_xref(self.rawtext, refdomain="std", reftype="doc",
                                    reftarget="/" + chapter["doc"], refexplicit=True,
                                    refwarn=True, refdoc=self.env.docname)
        ref += nodes.inline(words, words, classes=["nb-chapter-ref"])
        self.set_source_info(ref)
        return [ref], []

    def fail(self, message: str):
        BookWarning.CHAPTER_REF.error(f"chapter reference in {self.env.docname!r}: {message}",
                                      env=self.env, location=self.get_location())
        return [nodes.problematic(self.rawtext, self.rawtext)], []


# -- reading a page again when a chapter appears or goes ---------------------------------------
# Only then: a chapter's title comes from conf.py (whose change rebuilds everything), so an edit
# inside a chapter leaves the pages that refer to it as they are.

def _note_referring_page(env) -> None:
    env.nanobook_chapter_refs = getattr(env, "nanobook_chapter_refs", set()) | {env.docname}


def _outdated(app: Sphinx, env, added, changed, removed) -> list[str]:
    chapters = {c.get("doc") for c in app.config.nanobook_chapters}
    if not chapters & (set(added) | set(removed)):
        return []
    return sorted(getattr(env, "nanobook_chapter_refs", set()) & env.found_docs)


def _purge(app: Sphinx, env, docname: str) -> None:
    getattr(env, "nanobook_chapter_refs", set()).discard(docname)


def _merge(app: Sphinx, env, docnames, other) -> None:
    env.nanobook_chapter_refs = (getattr(env, "nanobook_chapter_refs", set())
                                 | getattr(other, "nanobook_chapter_refs", set()))


def setup(app: Sphinx) -> dict:
    app.setup_extension("nanobook.warnings")
    app.setup_extension("nanobook.chapter_grid")  # declares nanobook_chapters
    app.add_role("chapter", ChapterRole())
    app.connect("env-get-outdated", _outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
