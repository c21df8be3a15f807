"""Reading time of a page, computed from its words at build time.

The rate is the average silent reading rate of English non-fiction measured by
Brysbaert (2019), 238 words per minute (see the references page). Code blocks
count like prose: a listing takes at least as long to read as its words. The code of a
check that hides it (``:hide-code:``) is not on the page, and does not count.

Chapters get a "N min read" line under their title; the ``reading-time`` role
prints the time of any page (the landing page's chapter grid uses it). The
numbers are filled in after every page has been read, so a page can show the
reading time of another one.
"""

from __future__ import annotations

import math
import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util.docutils import SphinxRole

from .warnings import BookWarning

WORDS_PER_MINUTE = 238
_WORD = re.compile(r"\w+")


class reading_time(nodes.inline):
    """Placeholder for the reading time of ``target``; replaced once all pages are read."""


def count_words(doctree: nodes.Node) -> int:
    """Words in the page's text, code included, comments and placeholders excluded."""
    total = 0
    for text in doctree.findall(nodes.Text):
        if any(isinstance(a, (nodes.comment, nodes.raw, reading_time)) for a in _ancestors(text)):
            continue
        if _hidden_code(text):
            continue
        total += len(_WORD.findall(text.astext()))
    return total


def _hidden_code(text: nodes.Text) -> bool:
    """Inside the code part (the first child) of a check marked ``hide_code``."""
    child = text
    for parent in _ancestors(text):
        if isinstance(parent, nodes.Element) and parent.get("hide_code"):
            return bool(parent.children) and parent.children[0] is child
        child = parent
    return False


def _ancestors(node: nodes.Node):
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def minutes_for(words: int) -> int:
    """Whole minutes, rounded up, never zero."""
    return max(1, math.ceil(words / WORDS_PER_MINUTE))


class ReadingTimeRole(SphinxRole):
    """``{reading-time}`docname``` prints "N min read" for that page (empty: this page)."""

    def run(self):
        target = self.text.strip() or self.env.docname
        node = reading_time("", "", target=target)
        self.set_source_info(node)
        return [node], []


def on_doctree_read(app: Sphinx, doctree: nodes.document) -> None:
    env = app.env
    env.nanobook_words = getattr(env, "nanobook_words", {})
    env.nanobook_words[env.docname] = count_words(doctree)
    if re.match(app.config.nanobook_reading_time_docs, env.docname):
        _insert_under_title(doctree, env.docname)


def _insert_under_title(doctree: nodes.document, docname: str) -> None:
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not section.children:
        return
    line = nodes.paragraph("", "", classes=["reading-time"])
    line += reading_time("", "", target=docname)
    section.insert(1, line)


def on_doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    words = getattr(app.env, "nanobook_words", {})
    for node in list(doctree.findall(reading_time)):
        target = node["target"]
        if target not in words:
            BookWarning.READING_TIME.warn(
                f"reading-time: no page named {target!r}", location=node
            )
            node.replace_self(nodes.Text("?"))
            continue
        count = words[target]
        node.replace_self(
            nodes.inline("", f"{minutes_for(count)} min read", classes=["reading-time-value"],
                         title=f"{count} words at {WORDS_PER_MINUTE} words per minute")
        )


def on_env_purge_doc(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    getattr(env, "nanobook_words", {}).pop(docname, None)


def on_env_merge_info(app: Sphinx, env: BuildEnvironment, docnames, other: BuildEnvironment):
    env.nanobook_words = getattr(env, "nanobook_words", {})
    env.nanobook_words.update(getattr(other, "nanobook_words", {}))


def setup(app: Sphinx) -> dict:
    # Pages whose name matches get a "N min read" line under their title: the chapters.
    app.add_config_value("nanobook_reading_time_docs", r"^\d\d-", "env", types=[str])
    app.add_node(reading_time)
    app.add_role("reading-time", ReadingTimeRole())
    app.connect("doctree-read", on_doctree_read)
    app.connect("doctree-resolved", on_doctree_resolved)
    app.connect("env-purge-doc", on_env_purge_doc)
    app.connect("env-merge-info", on_env_merge_info)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
