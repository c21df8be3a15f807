"""Every page of the built book in headless Chromium: no console errors, no failed or
remote requests, no missing assets; the light/dark toggle works."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from tests.conftest import require_tool

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="session")
def site(built_html: Path):
    handler = functools.partial(QuietHandler, directory=str(built_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", built_html
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    chromium = require_tool("/usr/bin/chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def visit(browser, url: str):
    """Open a page in a fresh context; return the page and the problems seen while loading."""
    context = browser.new_context()
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


def test_every_page_loads_cleanly(site, browser):
    base, root = site
    # Pages, not the theme's template fragments that it copies into _static/.
    pages = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                   if not p.relative_to(root).as_posix().startswith("_"))
    assert "index.html" in pages
    report = {}
    for name in pages:
        context, page, problems = visit(browser, f"{base}/{name}")
        broken = page.evaluate(
            "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        if problems or broken:
            report[name] = problems + [f"broken image: {src}" for src in broken]
        context.close()
    assert report == {}


def test_theme_toggle_switches_light_and_dark(site, browser):
    base, _ = site
    context, page, problems = visit(browser, f"{base}/index.html")
    page.emulate_media(color_scheme="light")
    background = {}
    for mode in ("dark", "light", "dark"):
        page.locator("button.theme-switch-button:visible").first.click()
        page.locator(f'.theme-change-button[data-mode="{mode}"]:visible').first.click()
        assert page.evaluate("document.documentElement.dataset.theme") == mode
        background[mode] = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background["light"] != background["dark"]
    # The choice survives a reload (the theme keeps it in the browser's storage).
    page.reload(wait_until="networkidle")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert problems == []
    context.close()
