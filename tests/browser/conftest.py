"""Fixtures of the browser tests: the built book served locally, a small site with one page per
registered widget, and headless Chromium."""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve a folder on a free local port; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def site(built_html: Path):
    with serve(built_html) as base:
        yield base, built_html


@pytest.fixture(scope="session")
def browser():
    chromium = require_tool("/usr/bin/chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def visit(browser, url: str, **context_options):
    """Open a page in a fresh context; return the context, the page and the problems seen."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.on("request", lambda r: r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            or problems.append(f"remote request: {r.url}"))
    page.goto(url, wait_until="networkidle")
    return context, page, problems


# Text from page data that must stay text: a scheduler scenario's prompts hold it.
HOSTILE_PROMPTS = '["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"]'


def write_widget_site(srcdir: Path) -> list[str]:
    """A book with the real theme and one page per registered widget, with its defaults; and
    a page whose scenario prompts are markup. Returns the widget names."""
    from nanobook.sims import registry

    shutil.copytree(ROOT / "tests" / "ext" / "roots" / "test-site", srcdir)
    names = sorted(registry())
    pages = [f"widget-{name}" for name in names] + ["hostile-prompts"]
    (srcdir / "index.md").write_text("# Widgets\n\n```{toctree}\n" + "\n".join(pages) + "\n```\n")
    (srcdir / "01-memory.md").unlink()
    for name in names:
        (srcdir / f"widget-{name}.md").write_text(
            f"# The widget {name}\n\n```{{simulator}} {name}\n```\n")
    (srcdir / "hostile-prompts.md").write_text(
        "# Prompts that are markup\n\n```{simulator} scheduler-replay\n"
        f":prompts: {HOSTILE_PROMPTS}\n:max-tokens: 2\n```\n")
    return names


@pytest.fixture(scope="session")
def widget_site(tmp_path_factory):
    """The widget site, built and served: (base URL, widget names)."""
    from sphinx.testing.util import SphinxTestApp

    srcdir = tmp_path_factory.mktemp("widgets") / "src"
    names = write_widget_site(srcdir)
    app = SphinxTestApp("html", srcdir=srcdir, freshenv=True)
    try:
        app.build()
        assert app.statuscode == 0 and app.warning.getvalue() == "", app.warning.getvalue()
    finally:
        # The pages stay; cleaning up now lets other test books be built in this session
        # (Sphinx's global state would otherwise warn about nodes registered twice).
        app.cleanup()
    with serve(Path(app.outdir)) as base:
        yield base, names
