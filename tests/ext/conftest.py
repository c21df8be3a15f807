"""The extension's tests: small test books under roots/, built with sphinx.testing.

Each test book is ``roots/test-NAME``; a test asks for one with
``@pytest.mark.sphinx("html", testroot="NAME", freshenv=True)`` and gets the
``app`` fixture. Snapshots of HTML and LaTeX fragments are files under
``snapshots/``; ``NANOBOOK_UPDATE_SNAPSHOTS=1 pytest tests/ext`` rewrites them
(review the diff before committing).
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# (sphinx.testing's fixtures are loaded in tests/conftest.py: pytest wants plugins declared there.)

SNAPSHOTS = Path(__file__).parent / "snapshots"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="session")
def rootdir() -> Path:
    return Path(__file__).parent / "roots"


def warnings_of(app) -> str:
    return _ANSI.sub("", app.warning.getvalue())


def messages_of(app) -> list[str]:
    """Each warning or error as one string (a message may span several lines)."""
    text = warnings_of(app)
    return [m.rstrip() for m in re.split(r"\n(?=\S*(?:WARNING|ERROR): |\S+:\d+: (?:WARNING|ERROR): )",
                                          text) if m.strip()]


def page(app, name: str = "index") -> str:
    return (Path(app.outdir) / f"{name}.html").read_text(encoding="utf-8")


def latex(app) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(Path(app.outdir).glob("*.tex")))


class _Element(HTMLParser):
    """Finds the first element with a given tag and class, and where it ends."""

    def __init__(self, tag: str, cls: str, nth: int = 0) -> None:
        super().__init__(convert_charrefs=False)
        self.tag, self.cls, self.nth = tag, cls, nth
        self.seen = 0
        self.depth = 0
        self.start: tuple[int, int] | None = None
        self.end: tuple[int, int] | None = None

    def handle_starttag(self, tag, attrs):
        if self.end is not None:
            return
        if self.start is None:
            classes = (dict(attrs).get("class") or "").split()
            if tag == self.tag and self.cls in classes:
                if self.seen == self.nth:
                    self.start = self.getpos()
                    self.depth = 1
                self.seen += 1
            return
        if tag == self.tag:
            self.depth += 1

    def handle_endtag(self, tag):
        if self.start is not None and self.end is None and tag == self.tag:
            self.depth -= 1
            if self.depth == 0:
                self.end = self.getpos()


def fragment(html: str, tag: str, cls: str, nth: int = 0) -> str:
    """The HTML of the nth element ``<tag class="... cls ...">``, up to its closing tag."""
    finder = _Element(tag, cls, nth)
    finder.feed(html)
    assert finder.start and finder.end, f"no <{tag} class={cls!r}> number {nth}"
    lines = html.splitlines(keepends=True)

    def offset(pos):
        line, col = pos
        return sum(len(x) for x in lines[: line - 1]) + col

    start, end = offset(finder.start), offset(finder.end)
    return html[start: html.index(">", end) + 1]


def assert_snapshot(name: str, text: str) -> None:
    """Compare with snapshots/NAME; NANOBOOK_UPDATE_SNAPSHOTS=1 writes it instead."""
    text = "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"
    path = SNAPSHOTS / name
    if os.environ.get("NANOBOOK_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"no snapshot {name}; run with NANOBOOK_UPDATE_SNAPSHOTS=1 to create it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from its snapshot; if the change is intended, rerun with "
        "NANOBOOK_UPDATE_SNAPSHOTS=1 and review the diff")
