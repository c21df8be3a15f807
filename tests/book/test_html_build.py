"""The real book's HTML build: no warnings, every page present, nothing from other hosts."""

from __future__ import annotations

import re
import runpy
from html.parser import HTMLParser
from pathlib import Path

from tests.conftest import ROOT

# Attributes through which a page loads something (as opposed to linking to it).
LOADING = {
    ("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src"), ("audio", "src"),
    ("video", "src"), ("embed", "src"), ("object", "data"), ("input", "src"), ("track", "src"),
}
LOADING_LINK_RELS = {"stylesheet", "icon", "preload", "prefetch", "modulepreload", "manifest",
                     "preconnect", "dns-prefetch", "apple-touch-icon"}
REMOTE = re.compile(r"^(https?:)?//", re.I)
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])([^'")\s]+)""", re.I)


class ResourceCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.resources: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for (t, attr) in LOADING:
            if tag == t and attrs.get(attr):
                self.resources.append(attrs[attr])
        if tag == "link" and set((attrs.get("rel") or "").lower().split()) & LOADING_LINK_RELS:
            self.resources.append(attrs.get("href") or "")
        if attrs.get("srcset"):
            self.resources += [part.split()[0] for part in attrs["srcset"].split(",") if part.strip()]
        if attrs.get("style"):
            self.resources += CSS_URL.findall(attrs["style"])


def book_config() -> dict:
    return runpy.run_path(str(ROOT / "conf.py"))


def test_build_has_no_warnings(html_build):
    out, proc = html_build
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr


def test_every_page_is_built(built_html: Path):
    pdf_only = {"book", *book_config()["nanobook_latex_only_docs"]}
    pages = {p.stem for p in (ROOT / "source").glob("*.md")} - pdf_only
    for page in pages:
        assert (built_html / f"{page}.html").is_file(), page
    for page in pdf_only:
        assert not (built_html / f"{page}.html").exists(), f"the PDF-only page {page} leaked"


def test_every_sliced_engine_file_has_its_own_page(built_html: Path):
    """Slices link to code/<path>.html#L<line>; those pages exist and have the anchors."""
    links = set()
    for html in built_html.glob("*.html"):
        links |= set(re.findall(r'href="(code/[^"#]+)#L(\d+)"', html.read_text(encoding="utf-8")))
    assert links, "the guide shows at least one slice"
    for target, line in links:
        assert f'id="L{line}"' in (built_html / target).read_text(encoding="utf-8"), target


def test_toc_lists_exactly_the_written_chapters(built_html: Path):
    index = (built_html / "index.html").read_text()
    for chapter in book_config()["nanobook_chapters"]:
        written = (ROOT / "source" / f"{chapter['doc']}.md").exists()
        linked = f'href="{chapter["doc"]}.html"' in index
        assert linked == written, chapter["doc"]


def test_landing_page_has_a_card_per_chapter(built_html: Path):
    index = (built_html / "index.html").read_text()
    cards = re.findall(r'<li class="chapter-card (written|in-preparation)" id="chapter-card-(\d\d)"', index)
    assert [number for _, number in cards] == [f"{n:02d}" for n in range(1, 12)]


def test_no_page_loads_anything_from_another_host(built_html: Path):
    offenders = []
    for page in built_html.rglob("*.html"):
        collector = ResourceCollector()
        collector.feed(page.read_text(encoding="utf-8"))
        offenders += [(page.name, r) for r in collector.resources if REMOTE.match(r.strip())]
    for sheet in built_html.rglob("*.css"):
        offenders += [(sheet.name, u) for u in CSS_URL.findall(sheet.read_text(errors="replace"))
                      if REMOTE.match(u)]
    assert offenders == []


def test_collector_sees_remote_resources():
    """The check above would catch a CDN script, a web font and a remote image."""
    collector = ResourceCollector()
    collector.feed('<script src="https://cdn.example/x.js"></script>'
                   '<link rel="stylesheet" href="//fonts.example/f.css">'
                   '<img srcset="https://img.example/a.png 2x">'
                   '<a href="https://example.org/">a link loads nothing</a>')
    assert [r for r in collector.resources if REMOTE.match(r)] == [
        "https://cdn.example/x.js", "//fonts.example/f.css", "https://img.example/a.png"]
