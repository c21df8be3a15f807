"""Every page of the built book in headless Chromium: no console errors, no failed or
remote requests (math pages checked after MathJax has typeset them), no missing assets; the
light/dark toggle works; math and figures follow it."""

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
    report, typeset = {}, []
    for name in pages:
        context, page, problems = visit(browser, f"{base}/{name}")
        if wait_for_math(page):
            typeset.append(name)
        broken = page.evaluate(
            "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        if problems or broken:
            report[name] = problems + [f"broken image: {src}" for src in broken]
        context.close()
    assert report == {}
    # A page with math is among them, checked after MathJax has typeset it (it could fetch
    # fonts or components only then).
    assert "how-this-book-is-built.html" in typeset


def wait_for_math(page) -> bool:
    """Wait until MathJax has typeset the page and the network is idle; False: no math here."""
    if not page.evaluate("() => !!(window.MathJax && window.MathJax.startup)"):
        return False
    page.evaluate("() => window.MathJax.startup.promise")
    page.wait_for_load_state("networkidle")
    return True


def test_math_and_figures_render_in_both_themes(site, browser):
    base, _ = site
    context, page, problems = visit(browser, f"{base}/how-this-book-is-built.html")
    assert wait_for_math(page)
    # Every formula became SVG; none is a TeX error.
    formulas = page.locator("span.math, div.math").count()
    assert formulas >= 2 and page.locator("mjx-container > svg").count() == formulas
    assert page.locator("mjx-container [data-mml-node='merror']").count() == 0
    # Each figure is an image named by its alt text.
    names = page.evaluate("""() => [...document.querySelectorAll('figure.nb-plot svg[role=img]')]
        .map(s => document.getElementById(s.getAttribute('aria-labelledby')).textContent)""")
    assert len(names) >= 3 and all(len(name) > 60 for name in names), names
    # Text in figures and formulas takes the page's text colour, in light and in dark mode.
    colours = {}
    for mode in ("light", "dark"):
        page.evaluate(f"document.documentElement.dataset.theme = '{mode}'")
        colours[mode] = page.evaluate("""() => ({
            page: getComputedStyle(document.querySelector('article p')).color,
            figure: getComputedStyle(document.querySelector('figure.nb-plot svg text')).fill,
            math: getComputedStyle(document.querySelector('mjx-container svg')).color})""")
        assert colours[mode]["figure"] == colours[mode]["page"] == colours[mode]["math"], colours
    assert colours["light"]["page"] != colours["dark"]["page"]
    assert problems == []
    context.close()


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


def test_no_page_is_wider_than_a_phone(site, browser):
    """At 390 CSS pixels nothing widens the page: wide tables and code scroll in their own
    boxes, long paths and hashes in prose break."""
    base, root = site
    pages = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                   if not p.relative_to(root).as_posix().startswith("_"))
    wide = {}
    for name in pages:
        context, page, _ = visit(browser, f"{base}/{name}", viewport={"width": 390, "height": 800})
        width = page.evaluate("() => document.documentElement.scrollWidth")
        if width > 390:
            wide[name] = width
        context.close()
    assert wide == {}
