"""Every page of the built book in headless Chromium: no console errors, no failed or
remote requests, no missing assets; the light/dark toggle works."""

from __future__ import annotations

import pytest

from tests.browser.conftest import visit

pytestmark = pytest.mark.browser


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
